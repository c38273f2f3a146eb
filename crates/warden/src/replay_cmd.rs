//! `warden replay`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use warden_core::trace::Replayed;
use warden_enforce::replay::Replayer;

use crate::fs::{load_engine, now_ms};

/// Output format.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// A readable table.
    Text,
    /// One JSON decision object per call line.
    Json,
}

/// Arguments of `warden replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The configuration file (warden.toml).
    #[arg(long, short)]
    config: PathBuf,
    /// Compare each decision with the trace's `expect`; print every mismatch; exit 1 if any.
    #[arg(long)]
    check: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Clock at the start of each trace, in ms since the Unix epoch (default: now).
    #[arg(long)]
    now_ms: Option<i64>,
    /// Trace files (JSON Lines).
    #[arg(required = true)]
    traces: Vec<PathBuf>,
}

fn print_text(r: &Replayed) {
    let d = &r.decision;
    let exp = match r.expect {
        Some(e) if e != d.decision => format!(" (expected {e})"),
        _ => String::new(),
    };
    println!(
        "{}:{}  {:<24} {:<5}{}  {}",
        r.file,
        r.line,
        d.tool,
        d.decision.as_str().to_uppercase(),
        exp,
        d.summary()
    );
    for reason in d.reasons.iter().filter(|x| x.outcome == d.decision).skip(1) {
        println!("      also: {}", reason.text);
    }
}

/// Run `warden replay`.
pub fn run(a: ReplayArgs) -> anyhow::Result<ExitCode> {
    let (engine, _) = load_engine(&a.config)?;
    let engine = Arc::new(engine);
    let start = a.now_ms.unwrap_or_else(now_ms);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut mismatches = Vec::new();
    let mut total = 0usize;
    for t in &a.traces {
        let text = std::fs::read_to_string(t)
            .with_context(|| format!("cannot read trace `{}`", t.display()))?;
        let name = t.display().to_string();
        // Each file through the gateway's pipeline, on its own in-memory store: the trace's
        // missions are its own.
        let results = rt
            .block_on(async {
                let store = warden_store::open("memory:").await?;
                let replayer = Replayer::new(engine.clone(), store).await?;
                anyhow::Ok(replayer.replay(&name, &text, start).await?)
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for r in results {
            total += 1;
            match a.format {
                Format::Json => {
                    let mut v = serde_json::to_value(&r.decision)?;
                    if let Some(o) = v.as_object_mut() {
                        o.insert("file".into(), r.file.clone().into());
                        o.insert("line".into(), r.line.into());
                        if let Some(e) = r.expect {
                            o.insert("expect".into(), e.as_str().into());
                        }
                    }
                    println!("{}", serde_json::to_string(&v)?);
                }
                Format::Text => print_text(&r),
            }
            if a.check && r.mismatch() {
                mismatches.push(r);
            }
        }
    }
    if a.check {
        for m in &mismatches {
            eprintln!(
                "mismatch: {}:{}: `{}` expected {}, got {}: {}",
                m.file,
                m.line,
                m.decision.tool,
                m.expect.map(|e| e.as_str()).unwrap_or("-"),
                m.decision.decision,
                m.decision.summary()
            );
        }
        eprintln!("{} calls checked, {} mismatches", total, mismatches.len());
        if !mismatches.is_empty() {
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}
