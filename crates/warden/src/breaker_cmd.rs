//! `warden breaker list|reset`: the circuit breakers the anomaly detectors tripped, and their
//! reset by a person.
//!
//! Run with the person's own credential (`--token` or `WARDEN_USER_TOKEN`), checked by the same
//! [`warden_enforce::identity::Authenticator`] as the server's, against the store the
//! configuration names. The work is [`BreakerControl`]'s: only members of `[breakers]
//! resetters` may reset, and every reset and every refused reset is audited. A reset reaches
//! every running replica through the store's change feed.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use warden_enforce::{BreakerControl, BreakerError, BreakerState};

use crate::fs::{load_engine, now_ms};
use crate::mission_cmd::{authenticator, Format, Person};

/// `warden breaker …`.
#[derive(Debug, Subcommand)]
pub enum BreakerCommand {
    /// List the breakers the store knows: tripped ones first.
    List(ListArgs),
    /// Reset a tripped breaker (members of `[breakers] resetters` only).
    Reset(ResetArgs),
}

/// Arguments of `warden breaker list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    person: Person,
    /// Also list the breakers that were reset.
    #[arg(long)]
    all: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// Arguments of `warden breaker reset`.
#[derive(Debug, Args)]
pub struct ResetArgs {
    #[command(flatten)]
    person: Person,
    /// The breaker: `global`, `agent:NAME`, `principal:NAME`, `session:NAME` or `mission:ID`.
    key: String,
    /// Why you reset it (kept in the store and the audit chain).
    #[arg(long, default_value = "")]
    reason: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

impl BreakerCommand {
    fn person(&self) -> &Person {
        match self {
            BreakerCommand::List(a) => &a.person,
            BreakerCommand::Reset(a) => &a.person,
        }
    }
}

/// Run `warden breaker …`.
pub fn run(command: BreakerCommand) -> anyhow::Result<ExitCode> {
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
        let control = BreakerControl::new(engine, store);
        match command {
            BreakerCommand::List(a) => list(&control, a).await,
            BreakerCommand::Reset(a) => {
                match control.reset(&who, &a.key, &a.reason, now_ms()).await {
                    Ok(state) => {
                        match a.format {
                            Format::Json => println!("{}", serde_json::to_string_pretty(&state)?),
                            Format::Text => println!("reset the breaker `{}`", state.key),
                        }
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(BreakerError::Forbidden(why)) => {
                        eprintln!(
                            "cannot reset `{}`: not allowed: {why} (this refusal is audited)",
                            a.key
                        );
                        Ok(ExitCode::from(1))
                    }
                    Err(e) => Err(anyhow::anyhow!("cannot reset `{}`: {e}", a.key)),
                }
            }
        }
    })
}

fn line(b: &BreakerState) -> String {
    let when = b
        .at_ms
        .map(crate::audit_text::utc)
        .unwrap_or_else(|| "?".into());
    let by = b.by.as_deref().unwrap_or("?");
    if b.tripped {
        format!(
            "{}  tripped {} by {}{}: {}",
            b.key,
            when,
            by,
            b.detector
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default(),
            b.reason.as_deref().unwrap_or("no reason given")
        )
    } else {
        format!("{}  reset {} by {}", b.key, when, by)
    }
}

async fn list(control: &BreakerControl, a: ListArgs) -> anyhow::Result<ExitCode> {
    let mut all = control.list().await?;
    if !a.all {
        all.retain(|b| b.tripped);
    }
    all.sort_by(|x, y| y.tripped.cmp(&x.tripped).then(x.key.cmp(&y.key)));
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&all)?),
        Format::Text => {
            for b in &all {
                println!("{}", line(b));
            }
            if all.is_empty() {
                eprintln!("no breaker is tripped");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
