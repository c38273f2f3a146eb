//! Integration tests of `warden-store`, one binary. Index:
//!
//! - `basics`: append and read back on every backend, checkpoints signed and kept outside,
//!   reopening a file, a corrupt file and a newer schema refused at open.
//! - `model`: the same random operation sequences on memory, SQLite and PostgreSQL, compared
//!   with a model.
//! - `tamper`: records edited, deleted, reordered, inserted, the tail cut, a checkpoint's
//!   signature swapped — with plain SQL on SQLite and PostgreSQL; `verify` names each.
//! - `approvals`: approval requests on every backend: round trips, lists, and a compare-and-swap
//!   that lets exactly one of many concurrent users (two stores on one PostgreSQL) use one.
//! - `grants`: mission grants on every backend: round trips, a taken mission id refused, lists
//!   filtered and newest first; two stores on one PostgreSQL database share them.
//! - `kills`: replicas' heartbeats, kills announced on the feed, their acknowledgements, on
//!   every backend and across two stores on one PostgreSQL schema.
//! - `replicas`: two stores on one PostgreSQL schema: a budget spent concurrently, one chain
//!   from concurrent appends, a revocation seen on the other's feed within 1 s; group commit of
//!   1,000 concurrent appends on every backend.
//! - `outage`: a full disk under SQLite, a stopped PostgreSQL cluster of the test's own: typed
//!   `Unavailable` errors, then the same store value works again.
//!
//! PostgreSQL tests use `WARDEN_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`),
//! each in a schema of its own that is dropped after. They fail, not skip, when it is down.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod approvals;
mod basics;
mod cluster;
mod grants;
mod journal;
mod kills;
mod model;
mod outage;
mod replicas;
mod support;
mod tamper;
