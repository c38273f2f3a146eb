//! The command line of the Acme server, shared by the `acme-mcp` binary and `warden acme-mcp`
//! (which `@acme-mcp` upstreams run, so that the example configuration needs only `warden`).
//!
//! ```text
//! acme-mcp [--server NAME] [--http ADDR] [--employees N]
//! ```
//!
//! Without `--http` it serves one MCP session over stdin/stdout; with `--http 127.0.0.1:8931`
//! it serves streamable HTTP at `/mcp` (printing the URL on stderr). `--server forum` (or
//! `logs`, `hr`, `files`, `acl`, `web`, `mail`) exposes only that server's tools under their
//! bare names; without it every tool is exposed as `server.tool`. `--employees 5000` serves an
//! HR directory of that many people (the seeded ones, then generated ones, the same on every
//! run), to page through with `hr.search_employees`'s `cursor`.

use std::process::ExitCode;

/// What `--help` prints.
pub const USAGE: &str =
    "usage: acme-mcp [--server forum|logs|hr|files|acl|web|mail] [--http ADDR] [--employees N]";

/// Run the Acme server with `args` (without the program name): parse them, serve until the
/// session or the listener ends, and say on stderr what went wrong. Exit codes: 0 served,
/// 1 failed, 2 bad arguments.
pub async fn run(args: impl IntoIterator<Item = String>) -> ExitCode {
    let mut server: Option<String> = None;
    let mut http: Option<String> = None;
    let mut employees: Option<usize> = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--server" => server = args.next(),
            "--http" => http = args.next(),
            "--employees" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) if n <= 1_000_000 => employees = Some(n),
                _ => {
                    eprintln!("acme-mcp: `--employees` takes a number up to 1000000\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
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
    let acme = match employees {
        None => crate::AcmeServer::new(),
        Some(n) => crate::AcmeServer::with_employees(n),
    };
    let acme = match acme.subset(server.as_deref()) {
        Ok(a) => a,
        Err(error) => {
            eprintln!("acme-mcp: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match http {
        None => crate::serve_transport(acme, rmcp::transport::stdio()).await,
        Some(addr) => match tokio::net::TcpListener::bind(&addr).await {
            Ok(listener) => {
                if let Ok(local) = listener.local_addr() {
                    eprintln!("acme-mcp: serving http://{local}{}", crate::MCP_PATH);
                }
                crate::serve_http_with_shutdown(listener, acme, std::future::pending()).await
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
