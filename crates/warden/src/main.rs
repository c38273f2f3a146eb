//! `warden`: the one binary. A thin layer over the libraries: it reads files, owns the clock,
//! prints, and maps outcomes to exit codes (0 ok, 1 a check failed, 2 bad input).

mod acme_cmd;
mod approvals_cmd;
mod approvals_http;
mod audit_cmd;
mod audit_text;
mod breaker_cmd;
mod catalog_cmd;
mod demo;
mod fs;
mod health;
mod kill_cmd;
mod mcp_cmd;
mod mission_cmd;
mod missions_http;
mod policy_cmd;
mod replay_cmd;
mod store_cfg;
mod store_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Decisions allocate many small strings and sets; mimalloc serves them several times faster
/// than the system allocator (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Warden: a runtime authorization firewall for AI agents.
#[derive(Debug, Parser)]
#[command(name = "warden", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decide every call of one or more traces, as the gateway would.
    Replay(replay_cmd::ReplayArgs),
    /// Validate and test policies.
    Policy {
        #[command(subcommand)]
        command: policy_cmd::PolicyCommand,
    },
    /// Draft catalog entries from what the upstreams offer.
    Catalog {
        #[command(subcommand)]
        command: catalog_cmd::CatalogCommand,
    },
    /// Guard one agent session over stdin/stdout (an MCP server in front of `[servers]`).
    Proxy(mcp_cmd::ProxyArgs),
    /// Guard many agents over streamable HTTP at /mcp (bearer tokens from `token_env`).
    Serve(mcp_cmd::ServeArgs),
    /// Read and check the tamper-evident audit chain.
    Audit {
        #[command(subcommand)]
        command: audit_cmd::AuditCommand,
    },
    /// Grant, narrow, revoke and list missions (with your credential).
    Mission {
        #[command(subcommand)]
        command: mission_cmd::MissionCommand,
    },
    /// Answer calls held for approval (with your credential).
    Approvals {
        #[command(subcommand)]
        command: approvals_cmd::ApprovalsCommand,
    },
    /// Stop a session, mission, agent, principal or everything on every replica, now.
    Kill(kill_cmd::KillArgs),
    /// List the circuit breakers and reset a tripped one (with your credential).
    Breaker {
        #[command(subcommand)]
        command: breaker_cmd::BreakerCommand,
    },
    /// Bring the store's schema up to date and print its version.
    Migrate(store_cmd::MigrateArgs),
    /// Write a new Ed25519 key pair for signing audit checkpoints.
    Keygen(store_cmd::KeygenArgs),
    /// Run the Acme sev1 incident through Warden over real MCP and show each decision.
    Demo(demo::DemoArgs),
    /// Serve the Acme reference MCP server (what `@acme-mcp` upstreams run).
    #[command(name = "acme-mcp", hide = true)]
    AcmeMcp(acme_cmd::AcmeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(a) => replay_cmd::run(a),
        Command::Policy { command } => policy_cmd::run(command),
        Command::Catalog { command } => catalog_cmd::run(command),
        Command::Proxy(a) => mcp_cmd::proxy(a),
        Command::Serve(a) => mcp_cmd::serve(a),
        Command::Audit { command } => audit_cmd::run(command),
        Command::Mission { command } => mission_cmd::run(command),
        Command::Approvals { command } => approvals_cmd::run(command),
        Command::Kill(a) => kill_cmd::run(a),
        Command::Breaker { command } => breaker_cmd::run(command),
        Command::Migrate(a) => store_cmd::migrate(a),
        Command::Keygen(a) => store_cmd::keygen(a),
        Command::Demo(a) => demo::run(a),
        Command::AcmeMcp(a) => acme_cmd::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
