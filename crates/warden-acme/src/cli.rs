//! The command line of the Acme server, shared by the `acme-mcp` binary and `warden acme-mcp`
//! (which `@acme-mcp` upstreams run, so that the example configuration needs only `warden`).
//!
//! ```text
//! acme-mcp [--server NAME] [--http ADDR]
//! ```
//!
//! Without `--http` it serves one MCP session over stdin/stdout; with `--http 127.0.0.1:8931`
//! it serves streamable HTTP at `/mcp` (printing the URL on stderr). `--server forum` (or
//! `logs`, `hr`, `files`, `acl`, `web`, `mail`) exposes only that server's tools under their
//! bare names; without it every tool is exposed as `server.tool`.

use std::process::ExitCode;

/// What `--help` prints.
pub const USAGE: &str = "usage: acme-mcp [--server forum|logs|hr|files|acl|web|mail] [--http ADDR]";

/// Run the Acme server with `args` (without the program name): parse them, serve until the
/// session or the listener ends, and say on stderr what went wrong. Exit codes: 0 served,
/// 1 failed, 2 bad arguments.
pub async fn run(args: impl IntoIterator<Item = String>) -> ExitCode {
    let mut server: Option<String> = None;
    let mut http: Option<String> = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--server" => server = args.next(),
            "--http" => http = args.next(),
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("acme-mcp: unexpected argument `{other}`\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let result = match http {
        None => crate::serve_stdio_for(server.as_deref()).await,
        Some(addr) => match tokio::net::TcpListener::bind(&addr).await {
            Ok(listener) => {
                if let Ok(local) = listener.local_addr() {
                    eprintln!("acme-mcp: serving http://{local}{}", crate::MCP_PATH);
                }
                crate::serve_http_for(listener, server.as_deref()).await
            }
            Err(error) => Err(error.into()),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("acme-mcp: {error}");
            ExitCode::FAILURE
        }
    }
}
