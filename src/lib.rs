//! instance-ledger: an event-sourced ledger of cloud VM instances with a REST front end.
//! See ARCHITECTURE.md for the map of modules and how data flows between them.

pub mod domain;
pub mod projection;
pub mod store;
pub mod service;
