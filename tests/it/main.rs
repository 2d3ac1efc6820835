//! The integration suite, one binary so that it links once: black-box tests that start the
//! real server and speak HTTP to it, store-level contract and property tests, and the
//! structure of the source tree. Tests about a backend's behaviour run on both (see
//! `harness::on_each_backend`).

#[macro_use]
mod harness;

mod api_fuzz;
mod as_of;
mod authz;
mod authz_dialects;
mod bad_input;
mod catalog;
mod cloudmc;
mod console;
mod crash_loop;
mod disk_full;
mod durability;
mod history_check;
mod hostile_http;
mod io_faults;
mod journal;
mod launch_provision;
mod ledgerctl;
mod lifecycle;
mod mogan;
mod nodeconductor;
mod openapi;
mod operability;
mod postgres_cluster;
mod postgres_restart;
mod postgres_store;
mod schemas;
mod secrets;
mod server;
mod service;
mod store_contract;
mod structure;
mod time_travel;
mod wakame;
