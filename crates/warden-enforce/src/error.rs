//! Why the pipeline refused to go on.

use warden_core::Decision;
use warden_store::StoreError;

/// Why a call could not go through the pipeline. Every variant means: nothing was forwarded
/// (or, after a forward, the output was withheld from the agent).
#[derive(Debug, thiserror::Error)]
pub enum EnforceError {
    /// The decision could not be durably recorded, so the call was refused. The decision is the
    /// one the engine made, turned into a deny.
    #[error("the decision {id} could not be durably recorded, so the call was refused: {source}", id = decision.id)]
    Audit {
        /// The decision, as a deny.
        decision: Box<Decision>,
        /// What the store said.
        source: StoreError,
    },
    /// The mission's state could not be read or written: deciding without it (or handing over
    /// an output whose taint is not durable) would fail open.
    #[error("the store is unavailable, so Warden refuses the call: {0}")]
    Store(#[from] StoreError),
    /// The configuration cannot be used (a webhook without its secret, …).
    #[error("{0}")]
    Config(String),
    /// The mission's stored state could not be read back.
    #[error("the stored state of mission `{mission}` cannot be read: {reason}")]
    State {
        /// The mission.
        mission: String,
        /// What was wrong.
        reason: String,
    },
}

impl EnforceError {
    /// The decision refused because it could not be recorded, if that is what happened.
    pub fn decision(&self) -> Option<&Decision> {
        match self {
            EnforceError::Audit { decision, .. } => Some(decision),
            _ => None,
        }
    }

    /// A short machine-readable kind: `audit`, `store` or `state`.
    pub fn kind(&self) -> &'static str {
        match self {
            EnforceError::Audit { .. } => "audit",
            EnforceError::Store(_) => "store",
            EnforceError::State { .. } => "state",
            EnforceError::Config(_) => "config",
        }
    }
}
