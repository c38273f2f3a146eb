//! A bare MCP stdio proxy built with rmcp: the reference `warden proxy` is measured against.
//!
//! It serves MCP on stdin/stdout and forwards `tools/list` and `tools/call` to one upstream
//! child process through rmcp's client, as they are: no policy, no decision log, no catalog,
//! no session state. The runtime is the one `#[tokio::main]` gives (multi-threaded, a worker
//! per core), as in rmcp's own examples.
//!
//! ```text
//! cargo build --release -p warden-mcp --example bare_proxy
//! target/release/examples/bare_proxy -- target/release/acme-mcp --server forum
//! ```

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::TokioChildProcess;
use rmcp::{ErrorData, Peer, RoleClient, RoleServer, ServerHandler, ServiceExt};

/// Forwards to one upstream.
struct Relay {
    upstream: Peer<RoleClient>,
}

fn upstream_error(e: rmcp::service::ServiceError) -> ErrorData {
    ErrorData::internal_error(format!("upstream: {e}"), None)
}

impl ServerHandler for Relay {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("bare-proxy", env!("CARGO_PKG_VERSION")))
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.upstream
            .list_tools(request)
            .await
            .map_err(upstream_error)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.upstream
            .call_tool_once(request)
            .await
            .map_err(upstream_error)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).skip_while(|a| a == "--");
    let program = args
        .next()
        .ok_or("usage: bare_proxy [--] PROGRAM [ARGS...]")?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args);
    let upstream = ().serve(TokioChildProcess::new(cmd)?).await?;
    let relay = Relay {
        upstream: upstream.peer().clone(),
    };
    let served = relay.serve(rmcp::transport::stdio()).await?;
    served.waiting().await?;
    upstream.cancel().await?;
    Ok(())
}
