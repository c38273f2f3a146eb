//! Warden's enforcement pipeline, the same for every surface.
//!
//! ```text
//! call ─▶ Enforcer::decide ─▶ Engine::decide ─▶ audit append (durable) ─▶ Engine::commit
//!                                                   │
//!                                                   └ allow ─▶ Permitted<Call>
//! Permitted<Call> ─▶ Enforcer::forward ─▶ Forward::forward ─▶ outcome audited ─▶ Engine::absorb
//!                                                                 (durable in the store) ─▶ agent
//! ```
//!
//! The MCP gateway, `warden replay` and `warden policy test` call an [`Enforcer`]; none
//! re-implements a step. People (principals, approvers) authenticate through
//! [`identity::Authenticator`]: a local user token or an OIDC identity provider's JWT. They
//! grant missions to agents through [`grants::MissionAuthority`], which signs mission tokens
//! ([`token`]) that agents present and narrow for their sub-agents.
//!
//! - **Logged before forwarded is a type.** Only [`Enforcer::decide`] makes a [`Permitted`], and
//!   only once the decision's audit record is committed to the store. It is not `Clone`, and
//!   [`Forward::forward`] consumes it: a call cannot leave twice, nor without its record.
//! - **Mission state lives in the store.** Each mission's state (taint with its sources,
//!   provenance text, fingerprints, counters, history) is kept as a journal of the decisions
//!   committed and the outputs absorbed, folded by every process through the engine, with an
//!   occasional snapshot ([`MissionCell`]), so no replica loses another's taint. An output
//!   reaches the agent only after what it brought in is durable: an agent cannot wash its taint
//!   by reconnecting, and a restart loses nothing. On a shared store (PostgreSQL) every
//!   decision first reads the events added since, so it sees all the taint any replica absorbed
//!   before it began. A mission's call budget is spent by
//!   one conditional statement in the store, so two replicas cannot both spend its last unit.
//! - **Stops reach every replica.** Revocations and breakers are read at start and kept
//!   current by the store's change feed (LISTEN/NOTIFY on PostgreSQL). Each enforcer is a
//!   replica with a heartbeat in the store; a kill ([`kill`]) stops its scope on every live
//!   replica, cancels what is in flight there, and returns once each has confirmed.
//! - **Anomalies trip breakers.** Every decision and every absorbed output feeds the anomaly
//!   detectors ([`warden_core::anomaly`]); a trip holds at once in this process, in the store
//!   for every replica, and in the audit chain, until a member of `[breakers] resetters` resets
//!   it through [`BreakerControl`] ([`breakers`]).
//! - **Fail closed.** When the store cannot be read or written, the call is refused with
//!   [`EnforceError`], whose text says why; nothing is forwarded. Nothing needs a restart when
//!   the store comes back.

pub mod approvals;
mod audit;
pub mod breakers;
mod enforcer;
mod error;
mod forward;
pub mod grants;
pub mod identity;
pub mod kill;
pub mod killswitch;
mod mission;
mod permit;
pub mod policytest;
pub mod replay;
pub mod token;
mod watch;

pub use audit::{decision_body, DECISION_ENTRY, UNEXPOSED_ENTRY};
pub use breakers::{BreakerControl, BreakerError, BreakerState};
pub use enforcer::{Actor, Clock, Enforcer, How, Verdict};
pub use error::EnforceError;
pub use forward::{Forward, Forwarded};
pub use mission::{MissionCell, STATE_KEY};
pub use permit::Permitted;

/// Milliseconds since the Unix epoch, from the system clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
