//! The management plane: the read model (`view`), REST and gRPC (`api`), the metrics and
//! health endpoints (`http`), and the listeners that keep them up without ever stopping
//! neighbor sync.

pub mod api;
pub(crate) mod http;
pub(crate) mod listeners;
pub(crate) mod profile;
pub mod view;
