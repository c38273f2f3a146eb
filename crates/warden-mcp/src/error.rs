//! Errors of the gateway. Messages are lowercase, name user input in backticks and say what to do.

/// Why the gateway could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The `[servers]` / `[serve]` tables are invalid.
    #[error(transparent)]
    Config(#[from] warden_core::error::ConfigError),
    /// A session could not be opened: the mission could not be granted.
    #[error("cannot open a session: {0}")]
    Mission(String),
    /// A session's identity is incomplete or inconsistent.
    #[error("{0}")]
    Identity(String),
    /// The enforcement pipeline could not start (its store could not be read).
    #[error(transparent)]
    Enforce(#[from] warden_enforce::EnforceError),
    /// Listening or serving failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The downstream MCP handshake failed.
    #[error("the MCP handshake with the client failed: {0}")]
    Handshake(String),
    /// A task serving the session failed.
    #[error("the session task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}
