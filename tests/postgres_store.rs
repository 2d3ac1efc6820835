//! The store-level property tests again on PostgreSQL (a fresh database per case on
//! `LEDGER_TEST_POSTGRES_URL`): as-of answers at every position equal a fold of the log
//! prefix, through the same read contract the API uses; and the backend-neutral store
//! contract.

// Each included file declares the shared harness (`mod common;`) as its own binary does.
#![allow(clippy::duplicate_mod)]

#[path = "as_of.rs"]
mod as_of;
#[path = "store_contract.rs"]
mod store_contract;
