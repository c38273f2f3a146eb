//! The gateway's tables of `warden.toml`: `[servers.NAME]` (upstreams) and `[serve]`.
//!
//! ```toml
//! [servers.forum]
//! command = "@acme-mcp"              # `@name`: the `name` binary beside the running warden;
//!                                    # the warden binary serves `@acme-mcp` itself
//! args = ["--server", "forum"]
//! env = { RUST_LOG = "warn" }        # added to the child's environment
//! timeout_ms = 10000                 # a request with no answer and no word (progress, log)
//!                                    # from the upstream for this long ends (default 10000)
//! max_timeout_ms = 300000            # progress extends a request's deadline up to this
//!                                    # (default 300000, at least timeout_ms)
//! max_result_bytes = 8388608         # largest result passed on (default 8388608 = 8 MiB)
//!
//!
//! [servers.forum.tools.export_threads] # one tool's own deadline (the upstream's name for it)
//! timeout_ms = 60000
//! max_timeout_ms = 1800000
//!
//! [servers.remote]
//! url = "http://127.0.0.1:8931/mcp"  # streamable HTTP
//!
//! [serve]
//! listen = "127.0.0.1:8080"          # `warden serve` (default 127.0.0.1:8080)
//! max_message_bytes = 4194304        # largest JSON-RPC message accepted from a client
//! allowed_hosts = ["warden.internal"] # Host headers accepted (default: loopback only)
//! workers = 1                        # async worker threads of `warden serve` (default: one per core)
//!
//! # Hostile or broken clients (defaults shown)
//! header_timeout_ms = 10000          # a request's head must arrive within this (from the connection,
//!                                    # or from its first byte on a kept-alive connection)
//! body_timeout_ms = 30000            # a request's whole body must arrive within this
//! idle_timeout_ms = 60000            # a kept-alive connection with no request in progress is closed;
//!                                    # an open SSE stream or a slow call is a request in progress
//! max_connections = 4096             # connections held at once
//! max_connections_per_peer = 256     # per client IPv4 address, or IPv6 /64
//! max_sessions = 1024                # MCP sessions open at once (each holds an rmcp session)
//! max_sessions_per_agent = 256       # per agent (bearer token)
//! ```
//!
//! At a connection cap, `warden serve` closes the connection that has been idle longest (no
//! request in progress, or never a byte sent) to make room; when every connection is busy, the new
//! one gets `503` and is closed. At a session cap, `initialize` gets HTTP 503 with a JSON-RPC
//! error naming the cap; a session frees its slot when it is closed (`DELETE`) or reaped idle.
//!
//! `@acme-mcp` is the Acme reference server built into warden: the `warden` binary runs every
//! `@acme-mcp` command as its own hidden subcommand (`warden acme-mcp ARGS…`, same arguments as
//! the `acme-mcp` binary), always, so that the example configuration needs the warden binary
//! alone and always gets the Acme of the same build. This library resolves `@name` only as the
//! binary beside the running executable ([`crate::upstream::resolve_program`]).
//!
//! Upstreams start in parallel, and start-up waits for each one's first connection for at most
//! its `timeout_ms`, all counted from one instant. A command that cannot be started (the program
//! does not exist or is not executable) is not waited for: its status says so at once, naming the
//! command ([`crate::UpstreamStatus::cannot_start`]). The gateway starts anyway and fails closed
//! on every upstream that is down: its tools are not offered and calls to them are refused; it
//! keeps retrying in the background.
//!
//! A call that gets no answer within `timeout_ms` is cancelled upstream; if the upstream then
//! fails a `ping` too, it is killed and restarted, and calls to it fail at once meanwhile. A
//! result (one JSON-RPC message) larger than `max_result_bytes` (1 KiB to 1 GiB) is refused with
//! an error that names the limit and the size, and never passed on.
//!
//! Like the rest of the configuration, every problem is reported at once, with its line.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use toml::Value;
use warden_core::error::{locate_toml, ConfigError, Issues};
use warden_core::Config;

pub use crate::upstream::settings::{
    Transport, UpstreamSettings, DEFAULT_MAX_RESULT_BYTES, DEFAULT_MAX_TIMEOUT_MS,
    DEFAULT_TIMEOUT_MS,
};
use crate::upstream::{ClientAsks, Deadline};

/// The longest any timeout may be: one hour.
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;
/// Default largest message accepted from a client.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 << 20;
/// The most async worker threads `[serve] workers` may ask for.
pub const MAX_WORKERS: usize = 1024;
/// Default listen address of `warden serve`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default time for a request's head to arrive.
pub const DEFAULT_HEADER_TIMEOUT_MS: u64 = 10_000;
/// Default time for a request's body to arrive.
pub const DEFAULT_BODY_TIMEOUT_MS: u64 = 30_000;
/// Default time a kept-alive connection may wait for its next request.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;
/// Default cap on connections held at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default cap on connections from one peer (IPv4 address or IPv6 /64).
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 256;
/// Default cap on MCP sessions open at once.
pub const DEFAULT_MAX_SESSIONS: usize = 1024;
/// Default cap on MCP sessions of one agent.
pub const DEFAULT_MAX_SESSIONS_PER_AGENT: usize = 256;

/// The `[serve]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSettings {
    /// Listen address of `warden serve`.
    pub listen: String,
    /// Largest JSON-RPC message accepted from a client (stdio line or HTTP body).
    pub max_message_bytes: usize,
    /// `Host` headers accepted by `warden serve`; empty means rmcp's loopback default.
    pub allowed_hosts: Vec<String>,
    /// Async worker threads of `warden serve`; `None` is one per core. On a machine Warden
    /// shares with its clients or upstreams, fewer workers wake each other less (BENCHMARKS.md).
    pub workers: Option<usize>,
    /// A request's head must arrive within this: from the connection's start, or on a kept-alive
    /// connection from the head's first byte.
    pub header_timeout: Duration,
    /// A request's whole body must arrive within this from its head.
    pub body_timeout: Duration,
    /// A kept-alive connection with no request in progress is closed after this.
    pub idle_timeout: Duration,
    /// Connections held at once.
    pub max_connections: usize,
    /// Connections held at once from one peer (an IPv4 address, or an IPv6 /64).
    pub max_connections_per_peer: usize,
    /// MCP sessions open at once.
    pub max_sessions: usize,
    /// MCP sessions open at once per agent.
    pub max_sessions_per_agent: usize,
    /// Believe the identity headers (`X-Warden-Principal`, `X-Warden-Mission`) from any agent:
    /// for local development only, set by `warden serve --insecure-identity` and never by
    /// the configuration file. An agent could then name anyone as the person it acts for.
    pub insecure_identity: bool,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            listen: DEFAULT_LISTEN.to_string(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            allowed_hosts: Vec::new(),
            workers: None,
            header_timeout: Duration::from_millis(DEFAULT_HEADER_TIMEOUT_MS),
            body_timeout: Duration::from_millis(DEFAULT_BODY_TIMEOUT_MS),
            idle_timeout: Duration::from_millis(DEFAULT_IDLE_TIMEOUT_MS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_peer: DEFAULT_MAX_CONNECTIONS_PER_PEER,
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_sessions_per_agent: DEFAULT_MAX_SESSIONS_PER_AGENT,
            insecure_identity: false,
        }
    }
}

/// Everything the gateway reads from `warden.toml` beyond the engine's configuration.
#[derive(Debug, Clone, Default)]
pub struct GatewaySettings {
    /// Upstream servers, in name order.
    pub upstreams: Vec<UpstreamSettings>,
    /// The `[serve]` table.
    pub serve: ServeSettings,
    /// Things worth telling the operator that do not stop Warden (a catalog server with no
    /// upstream, …).
    pub warnings: Vec<String>,
}

const SERVER_KEYS: &[&str] = &[
    "command",
    "args",
    "env",
    "url",
    "timeout_ms",
    "max_timeout_ms",
    "tools",
    "max_result_bytes",
];
const SERVE_KEYS: &[&str] = &[
    "listen",
    "max_message_bytes",
    "decision_log",
    "allowed_hosts",
    "workers",
    "header_timeout_ms",
    "body_timeout_ms",
    "idle_timeout_ms",
    "max_connections",
    "max_connections_per_peer",
    "max_sessions",
    "max_sessions_per_agent",
];

/// True for names usable as a server name (`[A-Za-z0-9_-]+`): a dot would make `server.tool`
/// ambiguous.
pub fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

struct Ctx<'a> {
    file: &'a str,
    text: Option<&'a str>,
    issues: Issues,
}

impl Ctx<'_> {
    fn push(&mut self, table: &[&str], key: Option<&str>, msg: String) {
        let line = self.text.and_then(|t| locate_toml(t, table, key));
        self.issues.push(self.file, line, msg);
    }
}

impl GatewaySettings {
    /// Read `[servers]` and `[serve]` from a loaded configuration. `file` and `text` are the
    /// configuration's name and text (for line numbers); `base` is its folder (for relative
    /// paths).
    ///
    /// # Errors
    /// Every problem found, with its line.
    pub fn from_config(
        cfg: &Config,
        file: &str,
        text: Option<&str>,
        _base: &Path,
    ) -> Result<GatewaySettings, ConfigError> {
        let mut cx = Ctx {
            file,
            text,
            issues: Issues::default(),
        };
        let mut upstreams = Vec::new();
        match &cfg.servers {
            None => {}
            Some(Value::Table(t)) => {
                for (name, v) in t {
                    if let Some(u) = parse_server(&mut cx, name, v) {
                        upstreams.push(u);
                    }
                }
            }
            Some(_) => cx.push(
                &[],
                None,
                "`servers` must be a table of `[servers.NAME]` tables".into(),
            ),
        }
        let serve = match &cfg.serve {
            None => ServeSettings::default(),
            Some(Value::Table(t)) => parse_serve(&mut cx, t),
            Some(_) => {
                cx.push(&[], None, "`serve` must be a table".into());
                ServeSettings::default()
            }
        };
        let mut warnings = Vec::new();
        for s in cfg.catalog.servers() {
            if !upstreams.iter().any(|u| u.name == s) {
                warnings.push(format!(
                    "the catalog describes tools of server `{s}`, but `[servers.{s}]` is not configured: its tools are not offered"
                ));
            }
        }
        for u in &upstreams {
            if !cfg.catalog.servers().contains(u.name.as_str()) {
                warnings.push(format!(
                    "server `{}` has no tools in the catalog: every call to it is denied",
                    u.name
                ));
            }
        }
        cx.issues.finish(GatewaySettings {
            upstreams,
            serve,
            warnings,
        })
    }
}

fn parse_server(cx: &mut Ctx<'_>, name: &str, v: &Value) -> Option<UpstreamSettings> {
    let path = ["servers", name];
    let Value::Table(t) = v else {
        cx.push(
            &["servers"],
            None,
            format!("`servers.{name}` must be a table with `command` or `url`"),
        );
        return None;
    };
    let before = cx.issues.0.len();
    if !valid_server_name(name) {
        cx.push(
            &path,
            None,
            format!("server name `{name}` may use only letters, digits, `-` and `_` (its tools are named `{name}.tool`)"),
        );
    }
    for k in t.keys() {
        if !SERVER_KEYS.contains(&k.as_str()) {
            cx.push(
                &path,
                Some(k),
                format!(
                    "servers.{name}: unknown key `{k}` (expected one of {})",
                    SERVER_KEYS.join(", ")
                ),
            );
        }
    }
    let string = |cx: &mut Ctx<'_>, key: &str| -> Option<String> {
        match t.get(key) {
            None => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(_) => {
                cx.push(
                    &path,
                    Some(key),
                    format!("servers.{name}.{key} must be a non-empty string"),
                );
                None
            }
        }
    };
    let command = string(cx, "command");
    let url = string(cx, "url");
    let mut args = Vec::new();
    match t.get("args") {
        None => {}
        Some(Value::Array(a)) => {
            for x in a {
                match x {
                    Value::String(s) => args.push(s.clone()),
                    _ => cx.push(
                        &path,
                        Some("args"),
                        format!("servers.{name}.args must be an array of strings"),
                    ),
                }
            }
        }
        Some(_) => cx.push(
            &path,
            Some("args"),
            format!("servers.{name}.args must be an array of strings"),
        ),
    }
    let mut env = BTreeMap::new();
    match t.get("env") {
        None => {}
        Some(Value::Table(e)) => {
            for (k, x) in e {
                match x {
                    Value::String(s) => {
                        env.insert(k.clone(), s.clone());
                    }
                    _ => cx.push(
                        &path,
                        Some("env"),
                        format!("servers.{name}.env.{k} must be a string"),
                    ),
                }
            }
        }
        Some(_) => cx.push(
            &path,
            Some("env"),
            format!("servers.{name}.env must be a table of strings"),
        ),
    }
    let timeout_ms = millis(cx, &path, t, "timeout_ms").unwrap_or(DEFAULT_TIMEOUT_MS);
    let max_timeout_ms = millis(cx, &path, t, "max_timeout_ms")
        .unwrap_or(DEFAULT_MAX_TIMEOUT_MS)
        .max(timeout_ms);
    let mut tool_deadlines = BTreeMap::new();
    match t.get("tools") {
        None => {}
        Some(Value::Table(tools)) => {
            for (tool, v) in tools {
                let tpath = ["servers", name, "tools", tool.as_str()];
                let Value::Table(tt) = v else {
                    cx.push(
                        &path,
                        Some("tools"),
                        format!("servers.{name}.tools.{tool} must be a table with timeout_ms and/or max_timeout_ms"),
                    );
                    continue;
                };
                for k in tt.keys() {
                    if k != "timeout_ms" && k != "max_timeout_ms" {
                        cx.push(
                            &tpath,
                            Some(k),
                            format!("servers.{name}.tools.{tool}: unknown key `{k}` (expected timeout_ms, max_timeout_ms)"),
                        );
                    }
                }
                let idle = millis(cx, &tpath, tt, "timeout_ms").unwrap_or(timeout_ms);
                let max = millis(cx, &tpath, tt, "max_timeout_ms")
                    .unwrap_or(max_timeout_ms)
                    .max(idle);
                tool_deadlines.insert(
                    tool.clone(),
                    Deadline {
                        idle: Duration::from_millis(idle),
                        max: Duration::from_millis(max),
                    },
                );
            }
        }
        Some(_) => cx.push(
            &path,
            Some("tools"),
            format!("servers.{name}.tools must be a table of `[servers.{name}.tools.TOOL]` tables"),
        ),
    }
    let max_result_bytes = match t.get("max_result_bytes") {
        None => DEFAULT_MAX_RESULT_BYTES,
        Some(Value::Integer(n)) if *n >= 1024 && *n <= (1 << 30) => *n as usize,
        Some(_) => {
            cx.push(
                &path,
                Some("max_result_bytes"),
                format!("servers.{name}.max_result_bytes must be a whole number of bytes between 1024 and 1073741824"),
            );
            DEFAULT_MAX_RESULT_BYTES
        }
    };
    let transport = match (command, url) {
        (Some(_), Some(_)) => {
            cx.push(
                &path,
                None,
                format!("servers.{name}: give either `command` (a child process) or `url` (streamable HTTP), not both"),
            );
            None
        }
        (None, None) => {
            cx.push(
                &path,
                None,
                format!(
                    "servers.{name}: give `command` (a child process) or `url` (streamable HTTP)"
                ),
            );
            None
        }
        (Some(program), None) => Some(Transport::Command { program, args, env }),
        (None, Some(url)) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                cx.push(
                    &path,
                    Some("url"),
                    format!("servers.{name}.url `{url}` must start with http:// or https://"),
                );
            }
            if t.contains_key("args") || t.contains_key("env") {
                cx.push(
                    &path,
                    None,
                    format!("servers.{name}: `args` and `env` apply to `command` only"),
                );
            }
            Some(Transport::Http { url })
        }
    };
    if cx.issues.0.len() != before {
        return None;
    }
    transport.map(|transport| UpstreamSettings {
        name: name.to_string(),
        transport,
        timeout: Duration::from_millis(timeout_ms),
        max_timeout: Duration::from_millis(max_timeout_ms),
        tool_deadlines,
        asks: ClientAsks::default(),
        max_result_bytes,
    })
}

/// A duration in milliseconds at `key` of table `t` (at `path`), between 1 ms and an hour.
fn millis(
    cx: &mut Ctx<'_>,
    path: &[&str],
    t: &toml::map::Map<String, Value>,
    key: &str,
) -> Option<u64> {
    match t.get(key) {
        None => None,
        Some(Value::Integer(n)) if *n > 0 && (*n as u64) <= MAX_TIMEOUT_MS => Some(*n as u64),
        Some(_) => {
            cx.push(
                path,
                Some(key),
                format!(
                    "{}.{key} must be a whole number of milliseconds between 1 and {MAX_TIMEOUT_MS}",
                    path.join(".")
                ),
            );
            None
        }
    }
}

fn parse_serve(cx: &mut Ctx<'_>, t: &toml::map::Map<String, Value>) -> ServeSettings {
    let path = ["serve"];
    let mut s = ServeSettings::default();
    for k in t.keys() {
        if !SERVE_KEYS.contains(&k.as_str()) {
            cx.push(
                &path,
                Some(k),
                format!(
                    "serve: unknown key `{k}` (expected one of {})",
                    SERVE_KEYS.join(", ")
                ),
            );
        }
    }
    match t.get("listen") {
        None => {}
        Some(Value::String(a)) if a.parse::<std::net::SocketAddr>().is_ok() => s.listen = a.clone(),
        Some(_) => cx.push(
            &path,
            Some("listen"),
            "serve.listen must be an address like `127.0.0.1:8080`".into(),
        ),
    }
    match t.get("max_message_bytes") {
        None => {}
        Some(Value::Integer(n)) if *n >= 1024 && *n <= (1 << 30) => {
            s.max_message_bytes = *n as usize
        }
        Some(_) => cx.push(
            &path,
            Some("max_message_bytes"),
            "serve.max_message_bytes must be a whole number of bytes between 1024 and 1073741824"
                .into(),
        ),
    }
    if t.contains_key("decision_log") {
        cx.push(
            &path,
            Some("decision_log"),
            "serve.decision_log is gone: every decision is in the store's audit chain (top-level `store = …`); `warden audit export --format jsonl` prints the same lines".into(),
        );
    }
    match t.get("allowed_hosts") {
        None => {}
        Some(Value::Array(a)) if a.iter().all(|x| x.is_str()) => {
            s.allowed_hosts = a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect();
        }
        Some(_) => cx.push(
            &path,
            Some("allowed_hosts"),
            "serve.allowed_hosts must be an array of host names".into(),
        ),
    }
    match t.get("workers") {
        None => {}
        Some(Value::Integer(n)) if (1..=MAX_WORKERS as i64).contains(n) => {
            s.workers = Some(*n as usize)
        }
        Some(_) => cx.push(
            &path,
            Some("workers"),
            format!("serve.workers must be a whole number of threads between 1 and {MAX_WORKERS}"),
        ),
    }
    parse_limits(cx, t, &mut s);
    s
}

/// The most any `[serve]` count or millisecond limit may be.
const MAX_LIMIT: u64 = 3_600_000;

/// The timeouts and caps of `[serve]`: whole numbers between 1 and [`MAX_LIMIT`].
fn parse_limits(cx: &mut Ctx<'_>, t: &toml::map::Map<String, Value>, s: &mut ServeSettings) {
    let mut whole = |key: &str, unit: &str| -> Option<u64> {
        match t.get(key)? {
            Value::Integer(n) if (1..=MAX_LIMIT as i64).contains(n) => Some(*n as u64),
            _ => {
                cx.push(
                    &["serve"],
                    Some(key),
                    format!(
                        "serve.{key} must be a whole number of {unit} between 1 and {MAX_LIMIT}"
                    ),
                );
                None
            }
        }
    };
    let ms = Duration::from_millis;
    if let Some(n) = whole("header_timeout_ms", "milliseconds") {
        s.header_timeout = ms(n);
    }
    if let Some(n) = whole("body_timeout_ms", "milliseconds") {
        s.body_timeout = ms(n);
    }
    if let Some(n) = whole("idle_timeout_ms", "milliseconds") {
        s.idle_timeout = ms(n);
    }
    if let Some(n) = whole("max_connections", "connections") {
        s.max_connections = n as usize;
    }
    if let Some(n) = whole("max_connections_per_peer", "connections") {
        s.max_connections_per_peer = n as usize;
    }
    if let Some(n) = whole("max_sessions", "sessions") {
        s.max_sessions = n as usize;
    }
    if let Some(n) = whole("max_sessions_per_agent", "sessions") {
        s.max_sessions_per_agent = n as usize;
    }
}
