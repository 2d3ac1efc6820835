//! The pure core: lifecycle states, commands, events, `decide` and `evolve`.
//!
//! Nothing here does I/O, touches a clock or draws random numbers: ids, timestamps and
//! resolved catalog data come in with the command, so the state machine can be tested
//! exhaustively and a replay of the log is deterministic. Types derive their JSON Schema
//! (`schemars`, for the stored events) and OpenAPI schema (`utoipa`): metadata only.

pub mod catalog;
pub mod error;
pub mod identity;
pub mod instance;
pub mod lifecycle;
pub mod short_id;

pub use error::DomainError;
