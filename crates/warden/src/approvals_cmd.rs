//! `warden approvals list|show|approve|deny|approve-narrowed`: people answer calls held for
//! approval, with their own credential (`--token` or `WARDEN_USER_TOKEN`), against the store
//! the configuration names. The approver is whoever the credential proves; the work is
//! [`Approvals`]'s, as over HTTP.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use warden_core::engine::thousands;
use warden_core::Call;
use warden_enforce::approvals::{Approvals, Stored};
use warden_enforce::identity::Principal;

use crate::fs::{load_engine, now_ms};
use crate::mission_cmd::{authenticator, Format, Person};

/// `warden approvals …`.
#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// List the requests you may see (pending ones by default).
    List(ListArgs),
    /// Show one request: the call, why it is held, who would see what, who approved.
    Show(ShowArgs),
    /// Approve every hold of a request that you may approve.
    Approve(AnswerArgs),
    /// Deny a request; the waiting agent receives your reason.
    Deny(AnswerArgs),
    /// Approve a narrower call instead (the request's safe alternative, or one you name).
    ApproveNarrowed(NarrowedArgs),
}

/// `warden approvals list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    person: Person,
    /// Only requests in this state (`pending`, `approved`, `denied`, `used`, `cancelled`), or
    /// `all`.
    #[arg(long, default_value = "pending")]
    state: String,
    /// At most this many (newest first).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// `warden approvals show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    person: Person,
    /// The request id (`apr-…`).
    id: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// `warden approvals approve|deny`.
#[derive(Debug, Args)]
pub struct AnswerArgs {
    #[command(flatten)]
    person: Person,
    /// The request id (`apr-…`).
    id: String,
    /// Why (shown to the agent for a denial, and kept in the audit chain).
    #[arg(long, default_value = "")]
    reason: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// `warden approvals approve-narrowed`.
#[derive(Debug, Args)]
pub struct NarrowedArgs {
    #[command(flatten)]
    person: Person,
    /// The request id (`apr-…`).
    id: String,
    /// The request's safe alternative (for a public post: a direct message to the principal).
    #[arg(long, conflicts_with_all = ["tool", "args"])]
    alternative: bool,
    /// The narrower call's tool (`server.tool`); the held call's tool when left out.
    #[arg(long)]
    tool: Option<String>,
    /// The narrower call's arguments, as a JSON object.
    #[arg(long)]
    args: Option<String>,
    /// Why (kept in the audit chain).
    #[arg(long, default_value = "")]
    reason: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

impl ApprovalsCommand {
    fn person(&self) -> &Person {
        match self {
            ApprovalsCommand::List(a) => &a.person,
            ApprovalsCommand::Show(a) => &a.person,
            ApprovalsCommand::Approve(a) | ApprovalsCommand::Deny(a) => &a.person,
            ApprovalsCommand::ApproveNarrowed(a) => &a.person,
        }
    }
}

/// Run `warden approvals …`.
pub fn run(command: ApprovalsCommand) -> anyhow::Result<ExitCode> {
    let person = command.person();
    let (engine, _) = load_engine(&person.config)?;
    let engine = Arc::new(engine);
    let people = authenticator(&person.config, &engine)?;
    let target = crate::store_cfg::store_target(Some(&person.config), person.store.as_deref())?;
    let credential = person.token.trim().to_string();
    crate::mcp_cmd::runtime(Some(1))?.block_on(async move {
        let who = people
            .authenticate(&credential)
            .await
            .map_err(|e| anyhow::anyhow!("you are not authenticated: {e}"))?;
        let store = crate::store_cfg::open_store(&target).await?;
        let approvals = Approvals::new(engine, store);
        match command {
            ApprovalsCommand::List(a) => list(&approvals, &who, a).await,
            ApprovalsCommand::Show(a) => {
                let s = approvals.show(&who, &a.id).await?;
                print(a.format, &s, now_ms());
                Ok(ExitCode::SUCCESS)
            }
            ApprovalsCommand::Approve(a) => {
                let done = approvals
                    .approve(&who, &a.id, &a.reason, now_ms())
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot approve: {e}"))?;
                answered(a.format, &who, &done.request, &done.approved, &done.waiting);
                Ok(ExitCode::SUCCESS)
            }
            ApprovalsCommand::Deny(a) => {
                let s = approvals
                    .deny(&who, &a.id, &a.reason, now_ms())
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot deny: {e}"))?;
                answered(a.format, &who, &s, &[], &[]);
                Ok(ExitCode::SUCCESS)
            }
            ApprovalsCommand::ApproveNarrowed(a) => {
                let s = approvals.show(&who, &a.id).await?;
                let call = narrower(&s, &a)?;
                let done = approvals
                    .approve_narrowed(&who, &a.id, call, &a.reason, now_ms())
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot approve: {e}"))?;
                answered(a.format, &who, &done.request, &done.approved, &done.waiting);
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// The narrower call `a` names for request `s`.
fn narrower(s: &Stored, a: &NarrowedArgs) -> anyhow::Result<Call> {
    if a.alternative {
        let alt = s.request.alternative.as_ref().with_context(|| {
            format!(
                "request `{}` offers no alternative; name one with --tool and --args",
                s.request.id
            )
        })?;
        return Ok(alt.call.to_call());
    }
    let held = &s.request.call;
    let (server, tool) = match &a.tool {
        Some(t) => t
            .split_once('.')
            .map(|(s, t)| (s.to_string(), t.to_string()))
            .with_context(|| format!("`{t}` is not `server.tool`"))?,
        None => (held.server.clone(), held.tool.clone()),
    };
    let args: Value = match &a.args {
        Some(text) => serde_json::from_str(text).context("--args is not JSON")?,
        None => {
            anyhow::bail!("name the narrower call's arguments with --args (or use --alternative)")
        }
    };
    if !args.is_object() {
        anyhow::bail!("--args must be a JSON object");
    }
    Ok(Call::new(&server, &tool, args))
}

async fn list(approvals: &Approvals, who: &Principal, a: ListArgs) -> anyhow::Result<ExitCode> {
    let state = (a.state != "all").then_some(a.state.as_str());
    let all = approvals.list(who, state, a.limit).await?;
    let now = now_ms();
    match a.format {
        Format::Json => {
            let v: Vec<Value> = all.iter().map(|s| json_of(s, now)).collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Text => {
            if all.is_empty() {
                println!("no requests");
            }
            for s in &all {
                let r = &s.request;
                println!(
                    "{}  {:<9} {} for {} via {}: {}",
                    r.id,
                    s.state_at(now),
                    r.call.name(),
                    r.principal,
                    r.agent,
                    r.holds
                        .iter()
                        .map(|h| format!(
                            "{} ({}/{})",
                            h.facts.policy,
                            h.approved_by.len(),
                            h.needs
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn json_of(s: &Stored, now: i64) -> Value {
    json!({
        "id": s.request.id,
        "state": s.state_at(now),
        "version": s.version,
        "request": s.request,
    })
}

fn print(format: Format, s: &Stored, now: i64) {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json_of(s, now)).unwrap_or_default()
        ),
        Format::Text => println!("{}", text_of(s, now)),
    }
}

/// A request, for people.
fn text_of(s: &Stored, now: i64) -> String {
    let r = &s.request;
    let mut out = format!(
        "request {}: {}\n  call: {} {}\n  agent {} acting for {} (mission {})\n",
        r.id,
        s.state_at(now),
        r.call.name(),
        r.call.args,
        r.agent,
        r.principal,
        r.mission
    );
    out.push_str("  held for:\n");
    for h in &r.holds {
        out.push_str(&format!(
            "    - {} [{}] {}: approved by {} of {} needed{}\n",
            h.facts.policy,
            h.facts.kind,
            h.text,
            h.approved_by.len(),
            h.needs,
            if h.approved_by.is_empty() {
                String::new()
            } else {
                format!(" ({})", h.approved_by.join(", "))
            }
        ));
    }
    if let Some(e) = &r.exposure {
        out.push_str(&format!(
            "  exposure: {} of {} people not cleared (e.g. {}); labels: {}\n",
            thousands(e.count),
            thousands(e.audience),
            e.sample.join(", "),
            e.labels
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for src in &r.sources {
        out.push_str(&format!(
            "    {} from {} (call {})\n",
            src.label, src.source, src.call
        ));
    }
    if let Some(a) = &r.alternative {
        out.push_str(&format!(
            "  alternative: {} ({} {})\n    choose it: warden approvals approve-narrowed {} --alternative\n",
            a.text,
            a.call.name(),
            a.call.args,
            r.id
        ));
    }
    if let Some(n) = &r.narrowed {
        out.push_str(&format!("  narrowed by {}: {}\n", n.by, n.changes));
    }
    for a in &r.answers {
        out.push_str(&format!(
            "  {} by {} ({}){}\n",
            a.verdict,
            a.by,
            a.auth,
            if a.note.is_empty() {
                String::new()
            } else {
                format!(": {}", a.note)
            }
        ));
    }
    if let Some(c) = &r.closed {
        out.push_str(&format!("  {c}\n"));
    }
    out.trim_end().to_string()
}

fn answered(format: Format, who: &Principal, s: &Stored, approved: &[String], waiting: &[String]) {
    match format {
        Format::Json => {
            let mut v = json_of(s, now_ms());
            if let Value::Object(m) = &mut v {
                m.insert("by".into(), json!(who.user));
                m.insert("approved".into(), json!(approved));
                m.insert("waiting".into(), json!(waiting));
            }
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Format::Text => {
            println!(
                "{} by {}: request {} is {}",
                verdict(s),
                who.user,
                s.request.id,
                s.state
            );
            if !waiting.is_empty() {
                println!("still waiting for: {}", waiting.join(", "));
            }
        }
    }
}

fn verdict(s: &Stored) -> &'static str {
    match s.state.as_str() {
        "denied" => "denied",
        _ if s.request.narrowed.is_some() => "approved as narrowed",
        _ => "approved",
    }
}
