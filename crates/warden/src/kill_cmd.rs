//! `warden kill --session|--mission|--agent|--principal|--all`: the kill switch.
//!
//! Run with the person's own credential (`--token` or `WARDEN_USER_TOKEN`), like `warden
//! mission`. The work is [`KillSwitch`]'s: the scope stops at the next call on every replica,
//! what is in flight there is cancelled upstream, the missions' tokens are revoked. The command
//! returns once every live replica confirmed (exit 0), or after `--timeout` naming those that
//! did not (exit 1).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgGroup, Args};
use warden_core::mission::parse_duration_secs;
use warden_enforce::grants::MissionAuthority;
use warden_enforce::kill::KillScope;
use warden_enforce::killswitch::{KillReport, KillSwitch};
use warden_store::Replica;

use crate::fs::{load_engine, now_ms};
use crate::mission_cmd::{authenticator, load_key, Format, Person};

/// Arguments of `warden kill`.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("scope")
        .required(true)
        .args(["session", "mission", "agent", "principal", "all"])
))]
pub struct KillArgs {
    #[command(flatten)]
    person: Person,
    /// One session (its name in the decision log).
    #[arg(long)]
    session: Option<String>,
    /// One mission, and every mission narrowed from it.
    #[arg(long)]
    mission: Option<String>,
    /// Every mission of this agent.
    #[arg(long)]
    agent: Option<String>,
    /// Every mission acting for this person.
    #[arg(long)]
    principal: Option<String>,
    /// Everything, on every replica.
    #[arg(long)]
    all: bool,
    /// Why, in your words (audited, and shown to the agents stopped).
    #[arg(long, default_value = "")]
    reason: String,
    /// How long to wait for the replicas' confirmations (`10s`, `1m`).
    #[arg(long, default_value = "10s")]
    timeout: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

impl KillArgs {
    fn scope(&self) -> anyhow::Result<KillScope> {
        Ok(
            match (
                &self.session,
                &self.mission,
                &self.agent,
                &self.principal,
                self.all,
            ) {
                (Some(s), ..) => KillScope::Session(s.clone()),
                (_, Some(m), ..) => KillScope::Mission(m.clone()),
                (_, _, Some(a), ..) => KillScope::Agent(a.clone()),
                (_, _, _, Some(p), _) => KillScope::Principal(p.clone()),
                (.., true) => KillScope::All,
                _ => anyhow::bail!(
                    "name what to kill: --session, --mission, --agent, --principal or --all"
                ),
            },
        )
    }
}

/// Run `warden kill …`.
pub fn run(a: KillArgs) -> anyhow::Result<ExitCode> {
    let scope = a.scope()?;
    let timeout = parse_duration_secs(&a.timeout)
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
        .ok_or_else(|| anyhow::anyhow!("`{}` is not a duration like `10s`", a.timeout))?;
    let person = &a.person;
    let (engine, _) = load_engine(&person.config)?;
    let engine = Arc::new(engine);
    let key = load_key(&person.config, &engine)?;
    let people = authenticator(&person.config, &engine)?;
    let target = crate::store_cfg::store_target(Some(&person.config), person.store.as_deref())?;
    let credential = person.token.trim().to_string();
    crate::mcp_cmd::runtime(Some(1))?.block_on(async move {
        let who = people
            .authenticate(&credential)
            .await
            .map_err(|e| anyhow::anyhow!("you are not authenticated: {e}"))?;
        let store = crate::store_cfg::open_store(&target).await?;
        let authority = Arc::new(MissionAuthority::new(key, engine.clone(), store.clone()));
        let switch = KillSwitch::new(authority, engine, store);
        let report = switch
            .kill(&who, &scope, &a.reason, now_ms(), timeout)
            .await
            .map_err(|e| anyhow::anyhow!("cannot kill {scope}: {e}"))?;
        print(&report, &scope, a.format, &a.timeout)?;
        Ok(if report.confirmed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}

fn replica_line(r: &Replica) -> String {
    format!(
        "{}  {}  (last heartbeat {})",
        r.id,
        r.name,
        crate::audit_text::utc(r.heartbeat_at_ms)
    )
}

fn print(
    report: &KillReport,
    scope: &KillScope,
    format: Format,
    timeout: &str,
) -> anyhow::Result<()> {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        eprintln!(
            "killed {scope} (kill {}); {} mission token(s) revoked by id",
            report.kill.id,
            report.revoked.len()
        );
        for r in &report.acknowledged {
            println!("confirmed  {}", replica_line(r));
        }
        for r in &report.missing {
            println!("missing    {}", replica_line(r));
        }
        if report.acknowledged.is_empty() && report.missing.is_empty() {
            eprintln!("no replica is live (none wrote a heartbeat in the last 10 s)");
        }
    }
    if !report.missing.is_empty() {
        let names: Vec<String> = report
            .missing
            .iter()
            .map(|r| format!("{} ({})", r.id, r.name))
            .collect();
        eprintln!(
            "warden: {} live replica(s) did not confirm the kill within {timeout}: {}",
            names.len(),
            names.join(", ")
        );
    }
    Ok(())
}
