//! `acme-mcp`: runs the Acme reference MCP server (see [`warden_acme::cli`] for the arguments).
//! `warden acme-mcp` runs the same code.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    warden_acme::cli::run(std::env::args().skip(1)).await
}
