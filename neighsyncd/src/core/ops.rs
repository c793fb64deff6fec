//! What the core asks of APPL_DB: the operations of one write, in the producer protocol's
//! terms (a key and its fields, or a delete), with no connection attached.

use std::collections::HashMap;

/// Fields of one APPL_DB hash.
pub type Fields = HashMap<String, String>;

/// One write to a ProducerStateTable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Set {
        key: String,
        fields: Vec<(String, String)>,
    },
    Del {
        key: String,
    },
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Set { key, .. } | Op::Del { key } => key,
        }
    }
}
