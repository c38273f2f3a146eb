//! One upstream server's settings: how to reach it, its deadlines and its result limit.
//! `crate::settings` reads them from `[servers.NAME]` in `warden.toml`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{ClientAsks, Connector, Deadline};

/// Default per-call timeout of an upstream.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Default longest a request may run while the upstream reports progress.
pub const DEFAULT_MAX_TIMEOUT_MS: u64 = 300_000;
/// Default largest result accepted from an upstream (one JSON-RPC message): 8 MiB.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 8 << 20;

/// How to reach an upstream server.
#[derive(Clone)]
pub enum Transport {
    /// A child process speaking MCP over stdin/stdout; restarted when it exits.
    Command {
        /// The program; `@name` means the `name` binary in the folder of the running executable
        /// (the `warden` binary rewrites `@acme-mcp` to its own `acme-mcp` subcommand before
        /// the gateway sees it).
        program: String,
        /// Its arguments.
        args: Vec<String>,
        /// Variables added to its environment.
        env: BTreeMap<String, String>,
    },
    /// A streamable HTTP MCP endpoint.
    Http {
        /// The endpoint URL.
        url: String,
    },
    /// An in-process server: the connector returns a fresh transport per connection.
    InProcess(Connector),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Command { program, args, env } => f
                .debug_struct("Command")
                .field("program", program)
                .field("args", args)
                .field("env", &env.keys().collect::<Vec<_>>())
                .finish(),
            Transport::Http { url } => f.debug_struct("Http").field("url", url).finish(),
            Transport::InProcess(_) => f.write_str("InProcess"),
        }
    }
}

/// One upstream server.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// The server name: its tools are `NAME.tool`.
    pub name: String,
    /// How to reach it.
    pub transport: Transport,
    /// Longest wait for a request's answer or the next word (progress, log) about it.
    pub timeout: Duration,
    /// Longest a request may run while the upstream keeps reporting progress.
    pub max_timeout: Duration,
    /// Deadlines of particular tools (by the upstream's name for them).
    pub tool_deadlines: BTreeMap<String, Deadline>,
    /// The requests of the client it may make of agents (from the catalog).
    pub asks: ClientAsks,
    /// Largest result (one JSON-RPC message) passed on; larger ones are refused.
    pub max_result_bytes: usize,
}

impl UpstreamSettings {
    /// An in-process upstream with the default timeout.
    pub fn in_process(name: impl Into<String>, connector: Connector) -> Self {
        UpstreamSettings {
            name: name.into(),
            transport: Transport::InProcess(connector),
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            max_timeout: Duration::from_millis(DEFAULT_MAX_TIMEOUT_MS),
            tool_deadlines: BTreeMap::new(),
            asks: ClientAsks::default(),
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
        }
    }

    /// An upstream reached over `transport`, with the default timeout and result limit.
    pub fn new(name: impl Into<String>, transport: Transport) -> Self {
        UpstreamSettings {
            name: name.into(),
            transport,
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            max_timeout: Duration::from_millis(DEFAULT_MAX_TIMEOUT_MS),
            tool_deadlines: BTreeMap::new(),
            asks: ClientAsks::default(),
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
        }
    }

    /// The same upstream with a deadline of its own for `tool`.
    pub fn with_tool_deadline(mut self, tool: impl Into<String>, deadline: Deadline) -> Self {
        self.tool_deadlines.insert(tool.into(), deadline);
        self
    }

    /// The same upstream with another longest run under progress.
    pub fn with_max_timeout(mut self, max: Duration) -> Self {
        self.max_timeout = max;
        self
    }

    /// The same upstream with another result limit.
    pub fn with_max_result_bytes(mut self, max: usize) -> Self {
        self.max_result_bytes = max;
        self
    }

    /// The same upstream with another per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}
