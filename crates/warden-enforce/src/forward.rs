//! How a permitted call leaves Warden.

use std::future::Future;

use warden_core::Call;

use crate::Permitted;

/// What came of one forward: the result for the caller, and what the audit and the mission
/// learn from it.
#[derive(Debug)]
pub struct Forwarded<O, E> {
    /// The result, as the transport will render it.
    pub result: Result<O, E>,
    /// What the audit records: `result`, `tool-error`, or the kind of failure (`timeout`,
    /// `cancelled`, `upstream-error`, …).
    pub outcome: String,
    /// A short reason (a failure's message); empty for a result.
    pub reason: String,
    /// The text of the output that the mission reads (absorbed before the caller gets it);
    /// none when nothing was read.
    pub text: Option<String>,
}

/// Somewhere a permitted call can go: an MCP upstream, a recorded output in a trace, later a
/// report-back API. It consumes the [`Permitted`] call, so nothing can forward a call Warden
/// did not allow and durably record.
pub trait Forward {
    /// What the destination answers.
    type Output;
    /// How the destination fails.
    type Error;

    /// Send the call and report what came of it.
    fn forward(
        self,
        call: Permitted<Call>,
    ) -> impl Future<Output = Forwarded<Self::Output, Self::Error>> + Send;
}
