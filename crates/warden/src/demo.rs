//! `warden demo`: the sev1 incident of DESIGN §1, stopped by Warden, in one command.
//!
//! The Acme servers run in process (one shared seeded state, each server over its own MCP duplex
//! connection), Warden sits in front of them with the Acme configuration and a JSON Lines
//! decision log in a temporary folder, and a scripted agent — an rmcp client speaking real MCP
//! to Warden — replays the incident (read T-1042, query the auth logs, reply publicly as alice
//! quoting log lines: held for approval) and the safe path (the same, but a DM to alice: allowed,
//! and the DM lands in Acme's forum).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};
use warden_core::{Config, Decision, Engine, Outcome, Sources};
use warden_enforce::approvals::Approvals;
use warden_enforce::grants::{GrantRequest, MissionAuthority};
use warden_enforce::identity::{AuthMethod, Principal};
use warden_enforce::token::RootKey;
use warden_mcp::gateway::{refusal_text, thousands};
use warden_mcp::{Claim, Gateway, GatewaySettings, UpstreamSettings, WardenHandler};
use warden_store::{AuditKind, Store};

/// Arguments of `warden demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The configuration (default: examples/acme/warden.toml if it exists here, else the copy
    /// built into warden).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The store to audit decisions in (default: `sqlite://…/warden.db` in a new temporary
    /// folder, printed at the start).
    #[arg(long)]
    pub store: Option<String>,
}

mod embedded {
    pub const FILES: &[(&str, &str)] = &[
        (
            "catalog.toml",
            include_str!("../../../examples/acme/catalog.toml"),
        ),
        (
            "missions.toml",
            include_str!("../../../examples/acme/missions.toml"),
        ),
        (
            "directory.json",
            include_str!("../../../examples/acme/directory.json"),
        ),
        (
            "policies/default.cedar",
            include_str!("../../../examples/acme/policies/default.cedar"),
        ),
        (
            "policies/people.cedar",
            include_str!("../../../examples/acme/policies/people.cedar"),
        ),
        (
            "policies/arguments.cedar",
            include_str!("../../../examples/acme/policies/arguments.cedar"),
        ),
    ];
    pub const CONFIG: &str = include_str!("../../../examples/acme/warden.toml");
}

/// The Acme configuration built into the binary.
struct Embedded;

impl Sources for Embedded {
    fn read(&self, path: &str) -> Result<String, String> {
        embedded::FILES
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, t)| t.to_string())
            .ok_or_else(|| format!("`{path}` is not part of the built-in Acme configuration"))
    }

    fn list(&self, dir: &str, ext: &str) -> Result<Vec<String>, String> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let mut out: Vec<String> = embedded::FILES
            .iter()
            .map(|(p, _)| p.to_string())
            .filter(|p| {
                p.starts_with(&prefix) && p.ends_with(ext) && !p[prefix.len()..].contains('/')
            })
            .collect();
        out.sort();
        Ok(out)
    }
}

fn load_config(path: Option<&Path>) -> anyhow::Result<(Engine, String)> {
    let default = Path::new("examples/acme/warden.toml");
    let chosen = match path {
        Some(p) => Some(p.to_path_buf()),
        None if default.is_file() => Some(default.to_path_buf()),
        None => None,
    };
    match chosen {
        Some(p) => {
            let (engine, _) = crate::fs::load_engine(&p)?;
            Ok((engine, p.display().to_string()))
        }
        None => {
            let name = "warden.toml (built-in Acme copy)";
            let cfg = Config::load(name, embedded::CONFIG, &Embedded)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok((Engine::new(cfg), name.to_string()))
        }
    }
}

/// The Acme servers in process: one shared state, one MCP connection per server.
fn acme_upstreams(acme: &warden_acme::AcmeServer) -> Vec<UpstreamSettings> {
    warden_acme::SERVERS
        .iter()
        .map(|name| {
            let acme = acme.clone();
            let server = name.to_string();
            let connector: warden_mcp::Connector = Arc::new(move || {
                let view = acme
                    .subset(Some(&server))
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                let (ours, theirs) = tokio::io::duplex(256 * 1024);
                tokio::spawn(async move {
                    let _ = warden_acme::serve_transport(view, theirs).await;
                });
                Ok(ours)
            });
            UpstreamSettings::in_process(*name, connector)
        })
        .collect()
}

/// One scripted step.
struct Step {
    label: &'static str,
    tool: &'static str,
    args: Value,
    expect: Outcome,
    /// Before this step, dave (security) approves the previous step's held call as its safe
    /// alternative, and this step retries that call.
    narrow_held: bool,
}

/// What one step gave.
struct Row {
    scenario: &'static str,
    n: usize,
    label: &'static str,
    tool: &'static str,
    expect: Outcome,
    decision: Option<Decision>,
    result: Option<CallToolResult>,
    error: Option<String>,
}

fn text_of(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

type Agent = RunningService<RoleClient, ()>;

/// Alice grants forum-helper a mission, as `warden mission grant` would (she is signed in), and
/// the agent presents its token: the claim its session opens with.
async fn alice_grants(gw: &Arc<Gateway>, purpose: &str) -> anyhow::Result<Claim> {
    let authority = gw
        .authority()
        .ok_or_else(|| anyhow::anyhow!("the demo gateway has no mission authority"))?;
    let alice = Principal {
        user: "alice".into(),
        method: AuthMethod::Local,
        subject: None,
        issuer: None,
        expires_at: None,
    };
    let req = GrantRequest {
        template: "answer-forum-question".into(),
        agent: "forum-helper".into(),
        purpose: purpose.into(),
        expires_in_ms: Some(3_600_000),
        narrowing: None,
    };
    let granted = authority
        .grant(&alice, &req, crate::fs::now_ms())
        .await
        .map_err(|e| anyhow::anyhow!("alice cannot grant the mission: {e}"))?;
    println!(
        "  alice grants mission {} to forum-helper for 1 h: \"{purpose}\" (token {}…)",
        granted.mission,
        granted.token.get(..16).unwrap_or_default()
    );
    let verified = gw
        .verify_mission_token("forum-helper", &granted.token)
        .await
        .map_err(|e| anyhow::anyhow!("the mission token was refused: {e}"))?;
    Ok(Claim::Token(Box::new(verified)))
}

async fn connect_agent(gw: &Arc<Gateway>, id: &str, who: &Claim) -> anyhow::Result<Agent> {
    let session = gw.open_session(id, who, None)?;
    let handler = WardenHandler::for_session(gw.clone(), session);
    let (server_io, client_io) = tokio::io::duplex(256 * 1024);
    tokio::spawn(async move {
        if let Ok(running) = handler.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    ().serve(client_io)
        .await
        .context("the scripted agent could not connect to Warden")
}

/// The first decision recorded after audit record `after`, read back from the store.
/// The last decision recorded after `after` (a retried held call records two: the held one,
/// then the approved narrower call's).
async fn decision_after(store: &dyn Store, after: u64) -> Option<Decision> {
    let records = store.audit_range(after + 1, 64).await.ok()?;
    records
        .into_iter()
        .rev()
        .find(|r| r.kind == AuditKind::Decision)
        .and_then(|r| serde_json::from_value(r.body).ok())
}

/// dave, of security, approves the held call of `row` as the request's safe alternative (what
/// `warden approvals approve-narrowed ID --alternative` does with his credential).
async fn dave_narrows(gw: &Arc<Gateway>, row: Option<&Row>) -> anyhow::Result<()> {
    let id = row
        .and_then(|r| r.decision.as_ref())
        .and_then(|d| d.approval.clone())
        .ok_or_else(|| anyhow::anyhow!("the held reply made no approval request"))?;
    let enforcer = gw.enforcer();
    let approvals = Approvals::new(enforcer.engine_arc().clone(), enforcer.store().clone());
    let dave = Principal {
        user: "dave".into(),
        method: AuthMethod::Local,
        subject: None,
        issuer: None,
        expires_at: None,
    };
    let shown = approvals.show(&dave, &id).await?;
    let alt = shown
        .request
        .alternative
        .ok_or_else(|| anyhow::anyhow!("request {id} offers no alternative"))?;
    approvals
        .approve_narrowed(
            &dave,
            &id,
            alt.call.to_call(),
            "answer alice privately",
            crate::fs::now_ms(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("dave cannot approve request {id}: {e}"))?;
    println!(
        "  dave (security) approves request {id} as narrowed: {}",
        alt.text
    );
    Ok(())
}

async fn run_steps(
    gw: &Arc<Gateway>,
    scenario: &'static str,
    session: &str,
    steps: Vec<Step>,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let who = alice_grants(gw, "Help me answer Bob's question in T-1042").await?;
    let agent = connect_agent(gw, session, &who).await?;
    let mut log_lines: Vec<String> = Vec::new();
    for (i, mut step) in steps.into_iter().enumerate() {
        // Quote what the logs really said.
        if let Some(body) = step.args.get_mut("body") {
            if let Some(b) = body.as_str() {
                let quoted = log_lines
                    .iter()
                    .filter(|l| l.contains("user=bob"))
                    .take(2)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n");
                *body = Value::String(b.replace("{log}", &quoted));
            }
        }
        if step.narrow_held {
            dave_narrows(gw, rows.last()).await?;
        }
        let store = gw.enforcer().store().clone();
        let before = store.audit_tail_seq().await.unwrap_or(0);
        let args = step.args.as_object().cloned().unwrap_or_default();
        let r = agent
            .peer()
            .call_tool(CallToolRequestParams::new(step.tool).with_arguments(args))
            .await;
        let mut row = Row {
            scenario,
            n: i + 1,
            label: step.label,
            tool: step.tool,
            expect: step.expect,
            decision: None,
            result: None,
            error: None,
        };
        row.decision = decision_after(store.as_ref(), before).await;
        match r {
            Ok(res) => {
                if step.tool == "logs.query_logs" && res.is_error != Some(true) {
                    log_lines = text_of(&res).lines().map(str::to_string).collect();
                }
                row.result = Some(res);
            }
            Err(e) => row.error = Some(e.to_string()),
        }
        rows.push(row);
    }
    let _ = agent.cancel().await;
    Ok(())
}

fn why(d: &Decision) -> Vec<String> {
    let mut out = Vec::new();
    match d.decision {
        Outcome::Allow => out.push(
            d.reasons
                .iter()
                .filter(|r| r.outcome == Outcome::Allow)
                .map(|r| r.text.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        _ => {
            let reasons: Vec<&str> = d
                .reasons
                .iter()
                .filter(|r| r.outcome == d.decision)
                .map(|r| r.text.as_str())
                .collect();
            for r in reasons.iter().take(3) {
                out.push(r.to_string());
            }
        }
    }
    if let Some(x) = d.exposure.as_ref().filter(|x| x.count == 0) {
        out.push(format!(
            "exposure: none ({} in the audience, all cleared)",
            thousands(x.audience)
        ));
    }
    if let Some(x) = d.exposure.as_ref().filter(|x| x.count > 0) {
        let labels = x.labels.iter().cloned().collect::<Vec<_>>().join(", ");
        let whom = match d
            .resource
            .as_deref()
            .and_then(|r| r.strip_prefix("Channel::"))
        {
            Some(c) => format!("readers of {}", c.trim_matches('"')),
            None => "people in the audience".to_string(),
        };
        out.push(format!(
            "exposure: {} of {} {whom} not cleared for {labels}",
            thousands(x.count),
            thousands(x.audience)
        ));
    }
    out
}

fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in s.split_whitespace() {
        if !cur.is_empty() && cur.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

fn print_table(rows: &[Row]) -> bool {
    let mut ok = true;
    let mut scenario = "";
    for r in rows {
        if r.scenario != scenario {
            scenario = r.scenario;
            println!();
            println!("{scenario}");
            println!(
                "  {:<2} {:<34} {:<18} {:<8} why",
                "#", "step", "tool", "decision"
            );
        }
        let got = r.decision.as_ref().map(|d| d.decision);
        let pass = got == Some(r.expect) && r.error.is_none();
        ok &= pass;
        let outcome = match got {
            Some(o) => o.as_str().to_uppercase(),
            None => "ERROR".into(),
        };
        let mark = if pass {
            String::new()
        } else {
            format!(" (expected {})", r.expect.as_str().to_uppercase())
        };
        let mut why_lines: Vec<String> = Vec::new();
        if let Some(d) = &r.decision {
            for w in why(d) {
                why_lines.extend(wrap(&w, 70));
            }
        }
        if let Some(e) = &r.error {
            why_lines.push(format!("MCP error: {e}"));
        }
        if let (Some(res), Some(Outcome::Allow)) = (&r.result, got) {
            if res.is_error == Some(true) {
                why_lines.push(format!("but the call failed: {}", text_of(res)));
                ok = false;
            }
        }
        let first = why_lines.first().cloned().unwrap_or_default();
        println!(
            "  {:<2} {:<34} {:<18} {:<8} {first}{mark}",
            r.n, r.label, r.tool, outcome
        );
        for w in why_lines.iter().skip(1) {
            println!("  {:<2} {:<34} {:<18} {:<8} {w}", "", "", "", "");
        }
    }
    ok
}

/// Run `warden demo`.
pub fn run(a: DemoArgs) -> anyhow::Result<ExitCode> {
    let (engine, config_name) = load_config(a.config.as_deref())?;
    // The embedded default store, in a new temporary folder unless `--store` names one.
    let (url, folder) = match &a.store {
        Some(u) => (u.clone(), None),
        None => {
            let dir = std::env::temp_dir().join(format!(
                "warden-demo-{}-{}",
                std::process::id(),
                crate::fs::now_ms()
            ));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create `{}`", dir.display()))?;
            (
                format!("sqlite://{}", dir.join("warden.db").display()),
                Some(dir),
            )
        }
    };
    let target = crate::store_cfg::store_target(None, Some(&url))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let acme = warden_acme::AcmeServer::new();
        let settings = GatewaySettings {
            upstreams: acme_upstreams(&acme),
            ..GatewaySettings::default()
        };
        let store = crate::store_cfg::open_store(&target).await?;
        let engine = Arc::new(engine);
        // A mission key for this run only: the tokens it signs mean nothing elsewhere.
        let authority =
            MissionAuthority::new(RootKey::generate(), engine.clone(), store.clone());
        let enforcer = warden_enforce::Enforcer::start(engine, store.clone())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let gw = Gateway::start(enforcer, settings).await;
        gw.set_authority(Arc::new(authority));
        let down: Vec<String> = gw
            .upstream_status()
            .into_iter()
            .filter(|s| !s.up)
            .map(|s| format!("{} ({})", s.name, s.last_error.unwrap_or_default()))
            .collect();
        if !down.is_empty() {
            anyhow::bail!("Acme upstreams did not start: {}", down.join(", "));
        }
        println!("Warden demo: the Acme sev1 incident, over real MCP");
        println!("  config:       {config_name}");
        println!("  upstreams:    Acme {} (in process)", warden_acme::SERVERS.join(", "));
        println!("  agent:        forum-helper, acting for alice, mission answer-forum-question");
        println!("  store:        {}", target.display_url());

        let read = |label| Step {
            label,
            tool: "forum.read_thread",
            args: json!({"channel": "eng-help", "thread_id": "T-1042"}),
            expect: Outcome::Allow,
            narrow_held: false,
        };
        let logs = |label| Step {
            label,
            tool: "logs.query_logs",
            args: json!({"source": "auth", "query": "user=bob", "limit": 50}),
            expect: Outcome::Allow,
            narrow_held: false,
        };
        let reply = |label, expect, narrow_held| Step {
            label,
            tool: "forum.post_reply",
            args: json!({
                "channel": "eng-help",
                "thread_id": "T-1042",
                "as_user": "alice",
                "body": "Bob, your account got locked after failed logins:\n{log}\nReset your password and retry."
            }),
            expect,
            narrow_held,
        };
        let mut rows = Vec::new();
        let dms_before = acme.direct_messages().len();
        run_steps(
            &gw,
            "sev1 incident: the agent answers in public, as alice",
            "demo-incident",
            vec![
                read("read bob's question T-1042"),
                logs("query the auth logs for bob"),
                reply("reply in #eng-help as alice", Outcome::Ask, false),
                reply(
                    "retry after dave approved it as a DM to alice",
                    Outcome::Allow,
                    true,
                ),
            ],
            &mut rows,
        )
        .await?;
        let thread = acme
            .call(
                "forum.read_thread",
                json!({"channel": "eng-help", "thread_id": "T-1042"}).as_object().cloned(),
            )
            .map(|r| text_of(&r))
            .unwrap_or_default();
        let posted_in_public = thread.contains("got locked after failed logins");
        run_steps(
            &gw,
            "sev1 safe path: the same answer, privately to alice",
            "demo-safe-path",
            vec![
                read("read bob's question T-1042"),
                logs("query the auth logs for bob"),
                Step {
                    label: "DM the answer to alice",
                    tool: "forum.send_dm",
                    args: json!({
                        "to": "alice",
                        "body": "Bob's account was locked after repeated failed logins:\n{log}\nSuggest he resets his password."
                    }),
                    expect: Outcome::Allow,
                    narrow_held: false,
                },
            ],
            &mut rows,
        )
        .await?;
        let mut ok = print_table(&rows);

        if let Some(held) = rows
            .iter()
            .find(|r| r.tool == "forum.post_reply")
            .and_then(|r| r.decision.as_ref())
        {
            println!();
            println!("What the agent read for the held reply:");
            for l in refusal_text(held).lines() {
                println!("  {l}");
            }
        }
        let dms = acme.direct_messages();
        let landed: Vec<_> = dms.iter().skip(dms_before).filter(|m| m.to == "alice").collect();
        println!();
        if landed.len() == 2 {
            println!("Both answers reached alice privately in Acme's forum (the approved narrowing, then the safe path):");
            for m in &landed {
                println!("  to {}, from {}:", m.to, m.from);
                for l in m.body.lines() {
                    println!("  | {l}");
                }
            }
        } else {
            println!("Expected two DMs to alice in Acme's forum, found {}.", landed.len());
            ok = false;
        }
        if posted_in_public {
            println!("The answer was posted in public in #eng-help: it should not have been.");
            ok = false;
        } else {
            println!("Nothing was posted in public: T-1042 in #eng-help has no reply quoting the logs.");
        }
        let mut by_outcome: BTreeMap<String, usize> = BTreeMap::new();
        let mut decisions = 0usize;
        for r in store.audit_range(1, warden_store::MAX_PAGE).await? {
            if r.kind == AuditKind::Decision {
                decisions += 1;
                *by_outcome
                    .entry(r.columns.outcome.unwrap_or_default())
                    .or_default() += 1;
            }
        }
        store.checkpoint_now().await?;
        println!();
        println!(
            "{decisions} decisions recorded in the audit chain of {} ({}) before any call was forwarded.",
            target.display_url(),
            by_outcome
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        gw.shutdown();
        if folder.is_some() {
            println!("Check it: warden audit verify --store {url}");
        }
        if ok {
            println!("demo: every outcome as expected");
            Ok(ExitCode::SUCCESS)
        } else {
            println!("demo: some outcomes were not as expected");
            Ok(ExitCode::from(1))
        }
    })
}
