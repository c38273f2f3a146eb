//! warden-core integration tests. Index:
//!
//! - `corpus`: the golden corpus — every Acme scenario and every trace in `corpus/` replayed,
//!   its decisions (outcome, reasons, policies, exposure, flow) snapshot-tested with insta, and
//!   every `expect` checked.
//! - `config_errors`: invalid configurations, catalogs, policies and directories are reported
//!   with file and line, all at once.
//! - `identity_config`: `[identity.oidc]`, `[identity.proxy]` and `[users.NAME]` parsed into
//!   typed settings; shared-secret and unsigned algorithms, unknown users and unknown keys are
//!   errors with their line.
//! - `properties`: no input makes `decide` or replay panic, and nothing outside an agent's
//!   ceiling is ever allowed.
//! - `slicing`: sliced evaluation agrees with bare Cedar over the whole policy set.
//! - `audience`: an optional audience argument left out adds no one; an unknown recipient is
//!   an outsider.
//! - `spellings`: a path spelled another way is labelled and bounded as its canonical form.
//! - `encodings`: secrets behind encodings, look-alike letters and invisible characters, split
//!   over calls or read and sent again in part are labelled secret by `decide`.
//! - `links`: URLs are exits — a link in any argument reaches its host with what it carries;
//!   a fetch reaches its host with what the mission holds.
//! - `args`: typed arguments in policy (`context.args`): longs, decimals, sets, records; wrong
//!   types refused; values Cedar cannot hold summarised; unknown arguments refused at load.
//! - `budgets`: records asked for and query fields checked before the call; public text keeps
//!   its label except for secrets.
//! - `provenance`: values inside free text are judged like directing arguments, whatever their
//!   spelling; whole-token matching; negated mentions; `context.origin`.
//! - `narrowing`: a mission narrowed for a sub-agent never allows what its root does not, and
//!   `attenuate` refuses every field that would widen (property tests over the Acme catalog).
//! - `large_sets`: a wrong policy among 10,000 still fails strict validation with its line;
//!   policies validated once per shape still report their own errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod args;
mod audience;
mod budgets;
mod common;
mod config_errors;
mod encodings;
mod identity_config;
mod large_sets;
mod links;
mod narrowing;
mod properties;
mod provenance;
mod slicing;
mod spellings;
