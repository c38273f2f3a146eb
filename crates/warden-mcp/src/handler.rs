//! [`WardenHandler`]: the MCP server the agent talks to.
//!
//! Over stdio the handler is made for one session ([`WardenHandler::for_session`]). Over HTTP the
//! streamable HTTP service makes one handler per MCP session (or per request for stateless
//! clients); the session is opened on its first request from the authenticated agent
//! ([`crate::auth::Authenticated`], put there by the bearer-token layer) and the identity headers
//! `X-Warden-Principal`, `X-Warden-Mission` and `X-Warden-Purpose`.

// Logging is deprecated by SEP-2577; clients of earlier revisions still use it.
#![allow(deprecated)]

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult, CustomRequest,
    CustomResult, ErrorCode, GetPromptRequestParams, GetPromptResponse, Implementation,
    InitializeRequestParams, InitializeResult, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ServerCapabilities, ServerConfig, SetLevelRequestParams,
    SubscribeRequestParams, SubscriptionFilter, UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use tokio::sync::OnceCell;

use crate::auth::{claim_of, Authenticated, SESSION_HEADER};
use crate::gateway::pipeline::notify_peer;
use crate::gateway::{Caller, Claim, Gateway, Session};

#[derive(Clone)]
enum Mode {
    /// One fixed session (stdio, in-process).
    Fixed(Arc<Session>),
    /// HTTP: the session is opened by the first request that carries an `Mcp-Session-Id`.
    Http(Arc<HttpSlot>),
}

/// The session of one HTTP MCP session; when the last clone of the handler goes (the MCP
/// session ended), the gateway forgets it.
struct HttpSlot {
    gateway: Arc<Gateway>,
    cell: OnceCell<Arc<Session>>,
    /// The token digest of the `initialize` request that created the MCP session: only it may
    /// open (and use) the session.
    owner: std::sync::OnceLock<[u8; 32]>,
}

impl Drop for HttpSlot {
    fn drop(&mut self) {
        if let Some(s) = self.cell.get() {
            self.gateway.end_http_session(s.id(), s);
        }
    }
}

/// The downstream MCP server.
#[derive(Clone)]
pub struct WardenHandler {
    gateway: Arc<Gateway>,
    mode: Mode,
}

impl std::fmt::Debug for WardenHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WardenHandler").finish_non_exhaustive()
    }
}

impl WardenHandler {
    /// A handler serving one already-open session.
    pub fn for_session(gateway: Arc<Gateway>, session: Arc<Session>) -> Self {
        WardenHandler {
            gateway,
            mode: Mode::Fixed(session),
        }
    }

    /// A handler for one HTTP MCP session (made by the HTTP service's factory).
    pub fn for_http(gateway: Arc<Gateway>) -> Self {
        WardenHandler {
            gateway: gateway.clone(),
            mode: Mode::Http(Arc::new(HttpSlot {
                gateway,
                cell: OnceCell::new(),
                owner: std::sync::OnceLock::new(),
            })),
        }
    }

    async fn session(&self, ctx: &RequestContext<RoleServer>) -> Result<Arc<Session>, ErrorData> {
        let s = self.find_session(ctx).await?;
        s.attach_peer(&ctx.peer);
        Ok(s)
    }

    async fn find_session(
        &self,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<Arc<Session>, ErrorData> {
        let slot = match &self.mode {
            Mode::Fixed(s) => return Ok(s.clone()),
            Mode::Http(slot) => slot,
        };
        let cell = &slot.cell;
        let parts = ctx
            .extensions
            .get::<http::request::Parts>()
            .ok_or_else(|| ErrorData::invalid_request("this endpoint serves HTTP only", None))?;
        let auth = parts
            .extensions
            .get::<Authenticated>()
            .ok_or_else(|| ErrorData::invalid_request("not authenticated", None))?;
        let sid = parts
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok());
        let session = match sid {
            Some(_) if slot.owner.get().is_some_and(|o| *o != auth.token) => {
                return Err(ErrorData::invalid_request(
                    "this MCP session belongs to another agent token",
                    None,
                ));
            }
            Some(sid) => cell
                .get_or_try_init(|| async {
                    let who = claim_of(auth).map_err(|e| ErrorData::invalid_request(e, None))?;
                    self.gateway
                        .http_session(sid, &who, auth.token)
                        .map_err(|e| ErrorData::invalid_request(e.to_string(), None))
                })
                .await?
                .clone(),
            None => {
                let who = claim_of(auth).map_err(|e| ErrorData::invalid_request(e, None))?;
                let hint = parts
                    .headers
                    .get(SESSION_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                self.gateway
                    .stateless_session(&who, auth.token, hint)
                    .map_err(|e| ErrorData::invalid_request(e.to_string(), None))?
            }
        };
        if session.token() != Some(&auth.token) {
            return Err(ErrorData::invalid_request(
                "this MCP session belongs to another agent token",
                None,
            ));
        }
        Ok(session)
    }

    /// Check that `initialize` names an identity that can open a session, and (HTTP) record
    /// the token that creates the MCP session as its owner.
    fn check_identity(&self, ctx: &RequestContext<RoleServer>) -> Result<(), ErrorData> {
        let Mode::Http(slot) = &self.mode else {
            return Ok(());
        };
        let Some(parts) = ctx.extensions.get::<http::request::Parts>() else {
            return Ok(());
        };
        let Some(auth) = parts.extensions.get::<Authenticated>() else {
            return Err(ErrorData::invalid_request("not authenticated", None));
        };
        if parts.headers.get("mcp-session-id").is_none() {
            let _ = slot.owner.set(auth.token);
        }
        let who = claim_of(auth).map_err(|e| ErrorData::invalid_request(e, None))?;
        let Claim::Headers(who) = &*who else {
            // A mission token was verified by the authentication layer.
            return Ok(());
        };
        self.gateway
            .engine()
            .grant(
                "check",
                &who.template,
                &who.agent,
                &who.principal,
                &who.purpose,
                0,
            )
            .map(|_| ())
            .map_err(|e| ErrorData::invalid_request(format!("cannot open a session: {e}"), None))
    }
}

/// The `_meta` key by which an agent names the approval request of a call it retries.
pub const APPROVAL_META: &str = "warden/approval";

/// Run `f` with the agent's side of the request `ctx` (its cancellation, progress token and a
/// channel to its peer); the notifications about the request reach the peer before `f`'s
/// result is returned.
async fn with_caller<T>(ctx: &RequestContext<RoleServer>, f: impl AsyncFnOnce(&Caller) -> T) -> T {
    let (notes, sent) = notify_peer(ctx.peer.clone());
    let caller = Caller {
        cancel: ctx.ct.clone(),
        notes: Some(notes),
        progress: ctx.meta.get_progress_token(),
        peer: Some(ctx.peer.clone()),
        inputs: None,
        offers: ctx.client_capabilities(),
        log_level: ctx.meta.log_level(),
        approval: ctx
            .meta
            .get(APPROVAL_META)
            .and_then(|v| v.as_str())
            .map(String::from),
    };
    let out = f(&caller).await;
    drop(caller);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), sent).await;
    out
}

/// Whether the request is on the 2026-07-28 revision or later (servers ask clients through
/// `input_required` there).
fn is_2026(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.protocol_version()
        .is_some_and(|v| v.as_str() >= rmcp::model::ProtocolVersion::V_2026_07_28.as_str())
}

/// Methods of MCP requests that rmcp reads into typed parameters: a request of one of them
/// that reaches [`ServerHandler::on_custom_request`] had parameters rmcp could not read.
const TYPED_METHODS: [&str; 12] = [
    "initialize",
    "ping",
    "tools/call",
    "tools/list",
    "resources/read",
    "resources/list",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/get",
    "prompts/list",
    "completion/complete",
];

/// Why the parameters of a `method` request could not be read, when they could not.
fn invalid_params(method: &str, params: Option<&serde_json::Value>) -> String {
    let why = match method {
        "tools/call" => params
            .and_then(|p| serde_json::from_value::<CallToolRequestParams>(p.clone()).err())
            .map(|e| e.to_string()),
        "resources/read" => params
            .and_then(|p| serde_json::from_value::<ReadResourceRequestParams>(p.clone()).err())
            .map(|e| e.to_string()),
        "prompts/get" => params
            .and_then(|p| serde_json::from_value::<GetPromptRequestParams>(p.clone()).err())
            .map(|e| e.to_string()),
        _ => None,
    };
    match (params, why) {
        (None, _) => format!("Invalid params: `{method}` needs params"),
        (Some(_), Some(why)) => format!("Invalid params for `{method}`: {why}"),
        (Some(_), None) => format!("Invalid params for `{method}`"),
    }
}

impl ServerHandler for WardenHandler {
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        if TYPED_METHODS.contains(&request.method.as_str()) {
            return Err(ErrorData::invalid_params(
                invalid_params(&request.method, request.params.as_ref()),
                None,
            ));
        }
        Err(ErrorData::new(
            ErrorCode::METHOD_NOT_FOUND,
            request.method,
            None,
        ))
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .enable_resources_list_changed()
                .enable_resources_subscribe()
                .enable_prompts()
                .enable_prompts_list_changed()
                .enable_completions()
                .enable_logging()
                .build(),
        )
        .with_server_info(
            Implementation::new("warden", env!("CARGO_PKG_VERSION"))
                .with_title("Warden authorization gateway"),
        )
        .with_instructions(
            "Every call goes through Warden, which allows, denies or holds it for approval and \
             says why. Tools are named `server.tool`; only the tools your mission may use are \
             listed.",
        )
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        self.check_identity(&context)?;
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let s = self.session(&context).await?;
        Ok(ListToolsResult::with_all_items(self.gateway.list_tools(&s)))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let s = self.session(&context).await?;
        if is_2026(&context) {
            return with_caller(&context, async |c: &Caller| {
                self.gateway.call_tool_rounds(&s, request, c).await
            })
            .await;
        }
        let out = with_caller(&context, async |c: &Caller| {
            self.gateway
                .call_tool(&s, &request.name, request.arguments, c)
                .await
        })
        .await;
        Ok(out.result.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let s = self.session(&context).await?;
        Ok(ListResourcesResult::with_all_items(
            self.gateway.list_resources(&s),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let s = self.session(&context).await?;
        with_caller(&context, async |c: &Caller| {
            self.gateway.read_resource(&s, &request.uri, c).await
        })
        .await
        .map(ReadResourceResponse::Complete)
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let s = self.session(&context).await?;
        Ok(ListResourceTemplatesResult::with_all_items(
            self.gateway.list_resource_templates(&s),
        ))
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let s = self.session(&context).await?;
        self.gateway.complete(&s, request, &context.ct).await
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        // Every kind is served; each resource URI is decided when the stream opens.
        Some(requested.clone())
    }

    async fn listen(&self, stream: SubscriptionContext) -> Result<(), ErrorData> {
        let s = self.session(stream.request_context()).await?;
        self.gateway.listen(&s, stream).await;
        Ok(())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let s = self.session(&context).await?;
        self.gateway.subscribe(&s, &request.uri).await
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let s = self.session(&context).await?;
        self.gateway.unsubscribe(&s, &request.uri).await;
        Ok(())
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let s = self.session(&context).await?;
        self.gateway.set_log_level(&s, request.level).await;
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let s = self.session(&context).await?;
        Ok(ListPromptsResult::with_all_items(
            self.gateway.list_prompts(&s),
        ))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let s = self.session(&context).await?;
        with_caller(&context, async |c: &Caller| {
            self.gateway
                .get_prompt(&s, &request.name, request.arguments, c)
                .await
        })
        .await
        .map(GetPromptResponse::Complete)
    }
}
