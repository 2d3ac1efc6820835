//! The black-box API suite again, every server on PostgreSQL: the same test files as the
//! embedded runs, each server with a fresh database on `LEDGER_TEST_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`). An unreachable server fails
//! the tests with a message saying so; they never skip.

// Each included file declares the shared harness (`mod common;`) as its own binary does;
// here that compiles it once per file, which is harmless.
#![allow(clippy::duplicate_mod)]

#[path = "authz.rs"]
mod authz;
#[path = "bad_input.rs"]
mod bad_input;
#[path = "durability.rs"]
mod durability;
#[path = "lifecycle.rs"]
mod lifecycle;
#[path = "operability.rs"]
mod operability;
#[path = "time_travel.rs"]
mod time_travel;
