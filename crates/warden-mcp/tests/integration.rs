//! Integration tests of the MCP gateway: Warden between real rmcp clients and the Acme servers.
//!
//! Index:
//! - `common`    — helpers: the Acme engine, in-process and child-process upstreams, agents.
//! - `listing`   — `tools/list` is filtered per agent and mission.
//! - `enforce`   — allow returns the upstream's result; deny/ask are tool errors with reasons;
//!   unexposed tools are audited; upstream requests to the client are refused.
//! - `logging`   — decisions are logged before the upstream sees the call; a failing log denies;
//!   the JSON Lines file holds every decision.
//! - `reads`     — `resources/read` and `prompts/get` allowed: the upstream's result, logged, and
//!   what they return joins the session.
//! - `scenarios` — the Acme traces replayed over MCP decide as `warden_core::trace::replay`.
//! - `http`      — 401 without a bearer token; session isolation; no credentials upstream;
//!   HTTP upstreams.
//! - `fastpath`  — `tools/call` answered in front of rmcp: same decisions and shared taint, and
//!   everything it cannot check left to rmcp; HTTP upstream sessions reopened when lost.
//! - `ownership` — a session belongs to the token that opened it: any other token gets 404 for
//!   every operation; the decision log names sessions by a keyed hash of their id.
//! - `front`     — malformed bodies (-32700/-32600 with 400), unreadable params (-32602), the
//!   `Bearer` scheme without case, requests wait for `notifications/initialized`.
//! - `differential` — every request variant through the router with and without the fast path:
//!   same answers, same decisions.
//! - `robust`    — upstream crash and restart (in process and `kill -9` of a child), timeouts,
//!   a client leaving mid-call, garbage and oversized input on stdio (library and `warden proxy`).
//! - `stdio_input` — hostile stdio lines (a 400-digit id, deep nesting, invalid UTF-8, a call
//!   before `initialize`) each answered, and the session serving after (library and `warden proxy`).
//! - `stdio_faults` — a hung child upstream is cancelled, health-checked and restarted; a result
//!   over `max_result_bytes` is refused with its size (a misbehaving Python MCP server).
//! - `tasks`     — a call made as a task (2025-11-25): offered at `initialize`, decided and
//!   logged as the plain call, fetched with `tasks/result`, unseen by other sessions.
//! - `http_faults` — an HTTP upstream's invalid JSON, error status, wrong id, oversized and
//!   malformed results each get their own error.
//! - `children`  — Acme as child processes (`acme-mcp`), and their scrubbed environment;
//!   upstreams start together, and commands that cannot start are reported at once by name.
//! - `config`    — the `[servers]` and `[serve]` tables: accepted forms and error messages.
//! - `floods`    — `warden serve` under connection and session floods: header and idle
//!   timeouts, connection caps that shed the longest-idle first, session caps.
//! - `notes`     — calls of one session at once; progress to the agent that asked and no other
//!   (stdio, rmcp and the HTTP fast path); cancellation of every call over HTTP; deadlines that
//!   progress extends up to a maximum; list changes told to the sessions that see them.
//! - `asks`      — an upstream's roots request: advertised only when the catalog describes it,
//!   decided and relayed during the call, or in `input_required` rounds (2026-07-28) that no
//!   other session can resume.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "integration/audit_log.rs"]
mod audit_log;
#[path = "integration/common.rs"]
mod common;

#[path = "integration/listing.rs"]
mod listing;

#[path = "integration/enforce.rs"]
mod enforce;

#[path = "integration/logging.rs"]
mod logging;

#[path = "integration/reads.rs"]
mod reads;

#[path = "integration/scenarios.rs"]
mod scenarios;

#[path = "integration/http.rs"]
mod http;

#[path = "integration/fastpath.rs"]
mod fastpath;

#[path = "integration/ownership.rs"]
mod ownership;

#[path = "integration/front.rs"]
mod front;

#[path = "integration/differential.rs"]
mod differential;

#[path = "integration/robust.rs"]
mod robust;

#[path = "integration/stdio_faults.rs"]
mod stdio_faults;

#[path = "integration/http_faults.rs"]
mod http_faults;

#[path = "integration/children.rs"]
mod children;

#[path = "integration/config.rs"]
mod config;

#[path = "integration/floods.rs"]
mod floods;
#[path = "integration/stdio_input.rs"]
mod stdio_input;

#[path = "integration/notes.rs"]
mod notes;

#[path = "integration/asks.rs"]
mod asks;

#[path = "integration/tasks.rs"]
mod tasks;

#[path = "integration/missions.rs"]
mod missions;
