//! instance-ledger: an event-sourced ledger of cloud VM instances with a REST front end.
//!
//! # Code map (dependencies point down)
//!
//! | module | owns | never |
//! |---|---|---|
//! | [`api`] | the HTTP surfaces ("wings"): [`api::native`] (`/v1`), and what they share: request context, token auth, validation, the neutral [`api::Failure`] and the rendering contract | decides a rule, opens a store snapshot, imports another wing |
//! | [`query`] | HTTP-free reads: visibility-scoped lookups and pages, as-of points, diffs, fleet changes, the feed, the digest | writes, knows HTTP |
//! | [`service`] | write preparation (references, body objects authorized), the single writer with group commit, idempotency | reads for a surface, knows HTTP |
//! | [`driver`] | completes requested transitions (simulated), through the writer | touches the store's write side |
//! | [`projection`] | what the projections hold: index keys per filter, the public views | I/O |
//! | [`store`] | the event store contract and its two backends: log, hash chain, projections in the append's transaction, paging rules, maintenance | knows commands or HTTP |
//! | [`authz`] | the one authorization policy, `can(principal, action, object)` | I/O |
//! | [`domain`] | commands, events, the lifecycle state machine, `decide` and `evolve` | I/O, async, clocks, randomness |
//! | [`limits`] | every bound on input and per-request work | — |
//! | [`ops`] | operator commands: verify, rebuild, export/import, history, diff, audit, stats offline; following the live feed | prints, or decides a rule |
//! | [`server`] | process wiring: configuration, start-up, shutdown, offline commands | business rules |
//!
//! # A write
//!
//! A surface parses and validates the body ([`api::validate`]), asks the service to
//! prepare it ([`service::prepare`]: catalog references resolved, the object named in the
//! body authorized) and submits a [`service::WriteRequest`] carrying the request's
//! provenance (actor, request id, `origin` = the surface). The writer thread batches what
//! is queued into one store transaction: for each request it checks idempotency and
//! `If-Match`, folds `domain::instance::decide`/`evolve`, appends the events (sealed and
//! hash-chained by [`store::envelope`]) and updates the projections through
//! [`store::projection`]; one durable commit, then every reply. The surface renders the
//! reply, or the [`api::Failure`] it became, in its own shape.
//!
//! # A read
//!
//! A surface calls [`query::read`] with the caller's principal; the closure gets a
//! [`query::Reader`] over one consistent snapshot, whose every answer is bounded by
//! [`authz`]. Pages come from the index primitives of [`store::Snapshot`] through the
//! paging rules written once in [`store::paging`]; as-of reads use the history tables.

pub mod api;
pub mod authz;
pub mod domain;
pub mod driver;
pub mod limits;
pub mod ops;
pub mod projection;
pub mod query;
pub mod server;
pub mod service;
pub mod store;
