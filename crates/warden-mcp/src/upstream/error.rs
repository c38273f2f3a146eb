//! Why a forwarded request did not produce a result: one variant per failure, each with a
//! message that says what happened. Only an exit of the upstream, or a restart after it stopped
//! answering, says that Warden is restarting it.

use rmcp::ErrorData;

/// Why a forwarded request did not produce a result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream is not connected (it exited, or has not connected yet).
    #[error("upstream `{name}` is down ({reason}); Warden is restarting it, try again shortly")]
    Down {
        /// The upstream.
        name: String,
        /// Why it is down.
        reason: String,
    },
    /// The upstream stopped answering (a call timed out and a health check failed); it is being
    /// killed and restarted, and calls fail at once until it is back.
    #[error("upstream `{name}` is restarting after it stopped answering; try again shortly")]
    Restarting {
        /// The upstream.
        name: String,
    },
    /// No answer within the timeout; the request was cancelled upstream.
    #[error("upstream `{name}` did not answer within {ms} ms; the request was cancelled")]
    Timeout {
        /// The upstream.
        name: String,
        /// The timeout.
        ms: u128,
    },
    /// The connection closed while the request was in flight: the process exited.
    #[error("upstream `{name}` closed the connection during the call (it crashed or exited); Warden is restarting it")]
    Exited {
        /// The upstream.
        name: String,
    },
    /// The upstream could not be reached, or the connection failed mid-request (HTTP).
    #[error("upstream `{name}` could not be reached: {detail}")]
    Unreachable {
        /// The upstream.
        name: String,
        /// What failed.
        detail: String,
    },
    /// The upstream answered with an HTTP error status.
    #[error("upstream `{name}` answered HTTP {status}{}", body_note(.body))]
    HttpStatus {
        /// The upstream.
        name: String,
        /// The status code.
        status: u16,
        /// The start of the body, for the operator.
        body: String,
    },
    /// The upstream's answer is not JSON.
    #[error("upstream `{name}` answered with invalid JSON: {detail}")]
    InvalidJson {
        /// The upstream.
        name: String,
        /// The parser's message.
        detail: String,
    },
    /// The upstream answered a different request than the one sent.
    #[error("upstream `{name}` answered request id {got} instead of {expected}")]
    WrongId {
        /// The upstream.
        name: String,
        /// The id sent.
        expected: String,
        /// The id answered (`none` when absent).
        got: String,
    },
    /// The answer is JSON but not the result that was asked for.
    #[error("upstream `{name}` answered with a malformed result: {detail}")]
    Malformed {
        /// The upstream.
        name: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The result is larger than the upstream's `max_result_bytes`; it was not passed on.
    #[error("upstream `{name}` sent a result of {}, over the limit of {limit} bytes (`max_result_bytes`); it was not passed on", size_text(*.size, *.limit))]
    TooLarge {
        /// The upstream.
        name: String,
        /// The limit in bytes.
        limit: usize,
        /// The size in bytes, when known (else it is only known to be over the limit).
        size: Option<u64>,
    },
    /// The upstream answered with a JSON-RPC error.
    #[error("upstream `{name}` returned an error: {message}")]
    Protocol {
        /// The upstream.
        name: String,
        /// Its message.
        message: String,
        /// Its JSON-RPC error.
        error: Box<ErrorData>,
    },
    /// The upstream asked for something Warden does not relay (client input, tasks).
    #[error("upstream `{name}` {what}, which Warden does not relay")]
    Unsupported {
        /// The upstream.
        name: String,
        /// What it asked.
        what: String,
    },
    /// The client went away; the request was cancelled upstream.
    #[error("the request was cancelled by the client")]
    Cancelled,
}

fn body_note(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

fn size_text(size: Option<u64>, limit: usize) -> String {
    match size {
        Some(n) => format!("{n} bytes"),
        None => format!("more than {limit} bytes"),
    }
}

impl UpstreamError {
    /// A short name of the failure for the decision log (`timeout`, `too-large`, …).
    pub fn code(&self) -> &'static str {
        match self {
            UpstreamError::Down { .. } => "down",
            UpstreamError::Restarting { .. } => "restarting",
            UpstreamError::Timeout { .. } => "timeout",
            UpstreamError::Exited { .. } => "exited",
            UpstreamError::Unreachable { .. } => "unreachable",
            UpstreamError::HttpStatus { .. } => "http-status",
            UpstreamError::InvalidJson { .. } => "invalid-json",
            UpstreamError::WrongId { .. } => "wrong-id",
            UpstreamError::Malformed { .. } => "malformed",
            UpstreamError::TooLarge { .. } => "too-large",
            UpstreamError::Protocol { .. } => "upstream-error",
            UpstreamError::Unsupported { .. } => "unsupported",
            UpstreamError::Cancelled => "cancelled",
        }
    }
}
