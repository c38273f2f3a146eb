//! `warden acme-mcp`: the Acme reference MCP server, served by the warden binary itself.
//!
//! Upstreams whose command is `@acme-mcp` run this subcommand of the running warden executable
//! (`warden acme-mcp ARGS…`), whether or not an `acme-mcp` binary is beside it: the example
//! configuration then works with the warden binary alone (after `cargo run -p warden -- demo`),
//! and the Acme server is always the one built into the warden that runs it. The arguments are
//! those of the `acme-mcp` binary ([`warden_acme::cli`]), which stays for the tests that start
//! Acme without warden.

use std::process::ExitCode;

use clap::Args;
use warden_mcp::{GatewaySettings, Transport};

/// The program name that this binary serves itself, as a command of `[servers.*]`.
pub const ACME_PROGRAM: &str = "@acme-mcp";
/// The hidden subcommand that serves it.
pub const ACME_SUBCOMMAND: &str = "acme-mcp";

/// Arguments of `warden acme-mcp`: those of the `acme-mcp` binary, passed on as they are.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct AcmeArgs {
    /// `[--server NAME] [--http ADDR]`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Run `warden acme-mcp`.
pub fn run(a: AcmeArgs) -> anyhow::Result<ExitCode> {
    let rt = crate::mcp_cmd::runtime(None)?;
    Ok(rt.block_on(warden_acme::cli::run(a.args)))
}

/// Point every `@acme-mcp` upstream at this executable's `acme-mcp` subcommand. When the
/// running executable cannot be found, they are left as they are (then `@acme-mcp` is the
/// binary beside it, and a missing one is reported by name at start).
pub fn serve_acme_here(settings: &mut GatewaySettings) {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    for u in &mut settings.upstreams {
        if let Transport::Command { program, args, .. } = &mut u.transport {
            if program == ACME_PROGRAM {
                *program = exe.display().to_string();
                args.insert(0, ACME_SUBCOMMAND.to_string());
            }
        }
    }
}
