//! [`AcmeServer`]: the rmcp [`ServerHandler`] serving the Acme tools.

use std::sync::{Arc, Mutex, MutexGuard};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::state::{DirectMessage, SentEmail, State};
use crate::tools::{self, ToolSpec};
use crate::{AcmeError, SERVERS};

/// The Acme reference MCP server.
///
/// Cloning is cheap and every clone shares the same seeded in-memory state (behind a mutex), so
/// a write (a forum reply, a file, an ACL grant, an e-mail) is visible to later reads from any
/// session served by any clone.
///
/// [`AcmeServer::new`] exposes every tool under its dotted name (`forum.read_thread`, …);
/// [`AcmeServer::only`] exposes one server's tools under their bare names (`read_thread`, …).
#[derive(Clone)]
pub struct AcmeServer {
    state: Arc<Mutex<State>>,
    only: Option<&'static str>,
}

impl Default for AcmeServer {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for AcmeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeServer")
            .field("only", &self.only)
            .finish_non_exhaustive()
    }
}

/// The canonical name of `server` (`None` when it is not one of [`SERVERS`]).
fn server_name(server: &str) -> Option<&'static str> {
    SERVERS.iter().copied().find(|s| *s == server)
}

impl AcmeServer {
    /// A server with freshly seeded data that exposes all tools under dotted names.
    pub fn new() -> Self {
        AcmeServer {
            state: Arc::new(Mutex::new(State::seeded())),
            only: None,
        }
    }

    /// [`AcmeServer::new`], with an HR directory of `employees` people: the seeded ones, then
    /// generated ones (the same on every run), for paging through a large directory.
    pub fn with_employees(employees: usize) -> Self {
        let server = Self::new();
        if let Ok(mut state) = server.state.lock() {
            state.employees = crate::seed::hr::with_generated(employees);
        }
        server
    }

    /// A server with freshly seeded data that exposes only the tools of `server` (one of
    /// [`SERVERS`]: `forum`, `logs`, `hr`, `files`, `acl`, `web`, `mail`) under their bare names.
    ///
    /// # Errors
    /// [`AcmeError::UnknownServer`] when `server` is not one of [`SERVERS`].
    pub fn only(server: &str) -> Result<Self, AcmeError> {
        Self::new().subset(Some(server))
    }

    /// A view of this server's state exposing the tools of `server` under bare names, or every
    /// tool under dotted names for `None`. The view shares this server's state.
    ///
    /// # Errors
    /// [`AcmeError::UnknownServer`] when `server` is not one of [`SERVERS`].
    pub fn subset(&self, server: Option<&str>) -> Result<Self, AcmeError> {
        let only = match server {
            None => None,
            Some(name) => {
                Some(server_name(name).ok_or_else(|| AcmeError::UnknownServer(name.to_string()))?)
            }
        };
        Ok(AcmeServer {
            state: Arc::clone(&self.state),
            only,
        })
    }

    /// The server this view is restricted to, if any.
    pub fn server(&self) -> Option<&'static str> {
        self.only
    }

    fn specs(&self) -> impl Iterator<Item = &'static ToolSpec> + '_ {
        tools::SPECS
            .iter()
            .filter(move |spec| self.only.is_none_or(|only| spec.server == only))
    }

    fn exposed_name(&self, spec: &ToolSpec) -> String {
        match self.only {
            Some(_) => spec.tool.to_string(),
            None => format!("{}.{}", spec.server, spec.tool),
        }
    }

    fn resolve(&self, name: &str) -> Option<&'static ToolSpec> {
        self.specs().find(|spec| self.exposed_name(spec) == name)
    }

    /// The names this server exposes, in the order of ACME.md's tool table.
    pub fn tool_names(&self) -> Vec<String> {
        self.specs().map(|spec| self.exposed_name(spec)).collect()
    }

    /// The MCP tool definitions this server exposes (what `tools/list` returns).
    pub fn tools(&self) -> Vec<Tool> {
        self.specs()
            .map(|spec| spec.definition(self.exposed_name(spec)))
            .collect()
    }

    /// Calls a tool by the name this server exposes, without MCP (what `tools/call` runs).
    ///
    /// A failure of the tool itself (bad arguments, a thread outside the channel, a missing
    /// file, an unknown URL, …) is `Ok` with `is_error: Some(true)` and a readable message.
    ///
    /// # Errors
    /// `invalid_params` ("unknown tool") when this server exposes no tool called `name`, as
    /// rmcp's own tool router does.
    pub fn call(
        &self,
        name: &str,
        arguments: Option<JsonObject>,
    ) -> Result<CallToolResult, ErrorData> {
        let spec = self.resolve(name).ok_or_else(|| {
            ErrorData::invalid_params(
                format!(
                    "unknown tool `{name}` (tools: {})",
                    self.tool_names().join(", ")
                ),
                None,
            )
        })?;
        let arguments = arguments.unwrap_or_default();
        let outcome = {
            let mut state = self.lock();
            tools::run(&mut state, spec.server, spec.tool, &arguments)
        };
        Ok(match outcome {
            Ok(output) => {
                let mut result = CallToolResult::success(vec![ContentBlock::text(output.text)]);
                result.structured_content = output.structured;
                result
            }
            Err(message) => CallToolResult::error(vec![ContentBlock::text(message)]),
        })
    }

    /// Every e-mail `mail.send_email` accepted so far (nothing is ever really sent).
    pub fn outbox(&self) -> Vec<SentEmail> {
        self.lock().outbox.clone()
    }

    /// Every direct message `forum.send_dm` sent so far.
    pub fn direct_messages(&self) -> Vec<DirectMessage> {
        self.lock().dms.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-written in a way that
        // matters for a demo server; keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ServerHandler for AcmeServer {
    fn get_info(&self) -> ServerConfig {
        let name = match self.only {
            Some(server) => format!("acme-{server}"),
            None => "acme".to_string(),
        };
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new(name, env!("CARGO_PKG_VERSION"))
                    .with_title("Acme reference MCP server"),
            )
            .with_instructions(match self.only {
                Some("forum") => "Acme's internal forum: channels, threads, replies and direct messages.",
                Some("logs") => "Acme's logs: auth, access and deploy records.",
                Some("hr") => "Acme's HR directory (hr.employees).",
                Some("files") => "Acme's services repository: read and write files.",
                Some("acl") => "Acme's access-control lists.",
                Some("web") => "Fetch public web pages from outside Acme.",
                Some("mail") => "Send e-mail from Acme.",
                _ => "Acme's internal tools: forum, logs, HR directory, files repository, ACLs, web fetch and mail.",
            })
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if let Some(wait) = crate::delay::of(&request.name) {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = context.ct.cancelled() => {
                    eprintln!("acme-mcp: `{}` was cancelled by the client", request.name);
                    return Err(ErrorData::internal_error("cancelled by the client", None));
                }
            }
        }
        self.call(&request.name, request.arguments)
            .map(CallToolResponse::from)
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.resolve(name)
            .map(|spec| spec.definition(self.exposed_name(spec)))
    }
}
