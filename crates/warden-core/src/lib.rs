//! Warden's pure decision core.
//!
//! Everything that decides lives here, and nothing here does I/O, spawns tasks or reads a clock:
//! time is an argument, files arrive through [`config::Sources`], and session state is plain
//! data behind [`session::SessionStore`]. The gateway, the HTTP server and the store build on
//! these types without changing them.
//!
//! The flow of one call is [`engine::Engine::decide`] → (log the [`model::Decision`]) →
//! [`engine::Engine::commit`] → forward the [`engine::Allowed`] call → [`engine::Engine::absorb`]
//! the output. `warden-enforce` runs these steps, with the log durable before anything leaves.

pub mod anomaly;
pub mod approve;
pub mod args;
pub mod budget;
pub mod canon;
pub mod catalog;
pub mod config;
pub mod detect;
pub mod directory;
pub mod discover;
pub mod engine;
pub mod entity;
pub mod error;
pub mod holds;
pub mod identity;
pub mod links;
pub mod mission;
pub mod model;
pub mod narrow;
pub mod own;
pub mod pattern;
pub mod policy;
pub mod policytest;
pub mod provenance;
pub mod query;
pub mod schema;
pub mod session;
pub mod trace;
mod validation;
pub mod words;

pub use config::{Config, Sources};
pub use engine::{Allowed, Breakers, Call, Decided, Engine, Receipt};
pub use model::{Decision, Effect, Outcome};
