//! instance-ledger: an event-sourced ledger of cloud VM instances with a REST front end.
//! See ARCHITECTURE.md for the map of modules and how data flows between them.

pub mod api;
pub mod authz;
pub mod domain;
pub mod driver;
pub mod projection;
pub mod server;
pub mod service;
pub mod store;
