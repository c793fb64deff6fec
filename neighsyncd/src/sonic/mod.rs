//! SONiC's side: where the databases are (`dbconfig`), the ProducerStateTable writer
//! (`producer`, through the `appdb` connection), the consumer orchagent runs (`consumer`, for
//! tests and tools), the CONFIG_DB watch (`config_db`) and warm restart (`warm`).

pub mod appdb;
pub(crate) mod config_db;
pub mod consumer;
pub mod dbconfig;
pub mod lease;
pub(crate) mod producer;
pub(crate) mod warm;
