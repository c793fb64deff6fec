//! What the core asks of APPL_DB: the operations of one write, in the producer protocol's
//! terms (a key and its fields, or a delete), with no connection attached.

use std::collections::HashMap;

use crate::core::rules::NeighValue;

/// Fields of one APPL_DB hash.
pub type Fields = HashMap<String, String>;

/// One write to a ProducerStateTable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Sets the key's fields to the value's (`neigh`, `family`: [`NeighValue::fields`]); the
    /// writer renders them into the command, with no strings made per operation.
    Set {
        key: String,
        value: NeighValue,
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
