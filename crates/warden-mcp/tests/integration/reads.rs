//! `resources/read` and `prompts/get` allowed: forwarded, answered with the upstream's own
//! result, logged, and what they return joins the session like a tool's output.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, GetPromptRequestParams, GetPromptResponse,
    GetPromptResult, ListPromptsResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, Prompt, PromptMessage, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Resource, ResourceContents, Role, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::json;
use warden_acme::AcmeServer;
use warden_core::{Call, Engine, Outcome};
use warden_mcp::{Gateway, GatewaySettings};

use crate::common::*;

const FAQ_URI: &str = "file:///docs/public/faq.md";
const FAQ: &str = "The forum answers questions about Acme's services; ask in eng-help.";
const DEPLOY_URI: &str = "file:///docs/ops/deploy.md";
/// AWS's documented example key id: a secret to the detectors, to nobody else.
const DEPLOY: &str = "Deploy with AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE from the ops laptop.";

/// The Acme forum, serving two documents and a prompt of its own as well.
#[derive(Clone)]
struct ForumWithDocs(AcmeServer);

impl ServerHandler for ForumWithDocs {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_prompts()
                .enable_resources()
                .enable_tools()
                .build(),
        )
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.0.list_tools(request, context).await
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.0.call_tool(request, context).await
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new(FAQ_URI, "faq"),
            Resource::new(DEPLOY_URI, "deploy"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let text = match request.uri.as_str() {
            FAQ_URI => FAQ,
            DEPLOY_URI => DEPLOY,
            other => return Err(ErrorData::invalid_params(format!("no {other}"), None)),
        };
        Ok(ReadResourceResult::new(vec![ResourceContents::text(text, request.uri)]).into())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(vec![Prompt::new(
            "summarize",
            Some("Summarize a thread"),
            None,
        )]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let thread = request
            .arguments
            .and_then(|a| a.get("thread").and_then(|t| t.as_str()).map(String::from))
            .unwrap_or_default();
        Ok(GetPromptResult::new(vec![PromptMessage::new_text(
            Role::User,
            format!("Summarize thread {thread} in three lines."),
        )])
        .into())
    }
}

/// The Acme configuration, with the forum's `resources/read` and `prompts/get` in the catalog.
fn engine_with_reads() -> Arc<Engine> {
    engine_with_catalog(&format!(
        "{FORUM_RESOURCES_READ}{}",
        r#"
[tools."forum.prompts/get"]
effect = "read"
required = ["name"]
resource = { type = "Resource", arg = "name" }
default_labels = ["internal"]
"#
    ))
}

async fn start_with_docs() -> (Arc<Gateway>, Arc<MemoryLog>) {
    let acme = AcmeServer::new();
    let mut upstreams = acme_upstreams(&acme);
    upstreams.retain(|u| u.name != "forum");
    let forum = ForumWithDocs(acme.subset(Some("forum")).unwrap());
    upstreams.push(in_process("forum", move || forum.clone()));
    let log = Arc::new(MemoryLog::new());
    let settings = GatewaySettings {
        upstreams,
        ..GatewaySettings::default()
    };
    let gw = start_gateway(engine_with_reads(), settings, log.clone()).await;
    (gw, log)
}

#[tokio::test]
async fn an_allowed_resource_read_is_forwarded_logged_and_taints_the_session() {
    let (gw, log) = start_with_docs().await;
    let client = agent(&gw, &alice()).await;
    let p = client.peer();
    let listed: Vec<String> = p
        .list_all_resources()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.uri.clone())
        .collect();
    assert_eq!(listed, [FAQ_URI, DEPLOY_URI]);

    // The public FAQ: the upstream's own contents, logged as an allowed read.
    let r = p
        .read_resource(ReadResourceRequestParams::new(FAQ_URI))
        .await
        .unwrap();
    assert_eq!(r.contents, [ResourceContents::text(FAQ, FAQ_URI)]);
    let last = log.entries().last().cloned().unwrap();
    assert_eq!(last.kind, EntryKind::Decision);
    assert_eq!(last.decision.tool, "forum.resources/read");
    assert_eq!(last.decision.decision, Outcome::Allow);
    let reply = json!({"channel": "eng-help", "thread_id": "T-1042", "body": "See the FAQ."});
    let ok = call(p, "forum.post_reply", reply.clone()).await;
    assert!(!is_error(&ok), "{}", text(&ok));

    // The deploy notes hold a key: reading them is allowed, and the key's label joins the
    // session, so a reply to the channel afterwards is no longer allowed.
    let r = p
        .read_resource(ReadResourceRequestParams::new(DEPLOY_URI))
        .await
        .unwrap();
    assert_eq!(r.contents, [ResourceContents::text(DEPLOY, DEPLOY_URI)]);
    let held = call(p, "forum.post_reply", reply).await;
    assert!(is_error(&held), "{}", text(&held));
    let last = log.entries().last().cloned().unwrap();
    assert_eq!(last.decision.tool, "forum.post_reply");
    assert_ne!(last.decision.decision, Outcome::Allow);
    assert!(
        last.decision.flow.labels.iter().any(|l| &**l == "secret"),
        "{:?}",
        last.decision.flow.labels
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn an_allowed_prompt_is_forwarded_under_its_server_name_and_logged() {
    let (gw, log) = start_with_docs().await;
    let client = agent(&gw, &alice()).await;
    let p = client.peer();
    let names: Vec<String> = p
        .list_all_prompts()
        .await
        .unwrap()
        .into_iter()
        .map(|pr| pr.name)
        .collect();
    assert_eq!(names, ["forum.summarize"]);
    let mut args = serde_json::Map::new();
    args.insert("thread".into(), json!("T-1042"));
    let mut params = GetPromptRequestParams::new("forum.summarize");
    params.arguments = Some(args);
    let r = p.get_prompt(params).await.unwrap();
    assert_eq!(
        r.messages,
        [PromptMessage::new_text(
            Role::User,
            "Summarize thread T-1042 in three lines."
        )]
    );
    let last = log.entries().last().cloned().unwrap();
    assert_eq!(last.decision.tool, "forum.prompts/get");
    assert_eq!(last.decision.decision, Outcome::Allow);
    // Decided as a call of `forum.prompts/get` with the prompt's name and arguments.
    let decided = Call::new(
        "forum",
        "prompts/get",
        json!({"name": "summarize", "arguments": {"thread": "T-1042"}}),
    );
    assert_eq!(last.decision.call_digest, decided.digest());
    client.cancel().await.unwrap();
}
