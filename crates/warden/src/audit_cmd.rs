//! `warden audit verify | tail | show | export`: reading the tamper-evident audit chain.
//!
//! Every command opens the store to read only: no signing key is loaded and no checkpoint is
//! made, so an auditor needs neither the private key nor write access to the checkpoint file.
//! Exit codes: 0 ok, 1 a check failed (a bad record, a decision not found), 2 bad input or a
//! store error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use warden_store::{Store, VerifyOptions, MAX_PAGE};

use crate::audit_text::{explain, export_line, tail_line};
use crate::store_cfg::{explain as explain_error, open_store, store_target, StoreTarget};

/// Which store to use: `--config` (its `store` and `[audit]`) or `--store` (or both: the URL
/// from `--store`, the rest from the file).
#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
pub struct StoreArgs {
    /// The configuration file (warden.toml): its `store` and `[audit]`.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The store URL (`sqlite://PATH`, `postgres://USER@HOST/DATABASE`); overrides the file's.
    #[arg(long)]
    pub store: Option<String>,
}

impl StoreArgs {
    /// The store these arguments name.
    pub fn target(&self) -> anyhow::Result<StoreTarget> {
        store_target(self.config.as_deref(), self.store.as_deref())
    }
}

/// Audit subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the whole chain and its checkpoints; name the first bad record (exit 1).
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// The public key that must have signed every checkpoint (SPKI PEM, from `warden
        /// keygen`). Without it, signatures are not checked.
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
        /// The checkpoint file kept outside the database (default: the configuration's
        /// `checkpoint_file`).
        #[arg(long, value_name = "FILE")]
        checkpoints: Option<PathBuf>,
    },
    /// Print the last records, one line each.
    Tail {
        #[command(flatten)]
        store: StoreArgs,
        /// How many records.
        #[arg(short = 'n', long = "lines", default_value_t = 20)]
        lines: u64,
        /// Keep printing new records as they are appended, until Ctrl-C.
        #[arg(long, short)]
        follow: bool,
    },
    /// Explain one decision: outcome, reasons, exposure, where its labels came from, and what
    /// came of the call.
    Show {
        #[command(flatten)]
        store: StoreArgs,
        /// A decision id, or `#SEQ` for the record with that sequence number.
        id: String,
    },
    /// Print records as JSON Lines, oldest first.
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// The output format.
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
        /// The first sequence number to export.
        #[arg(long, value_name = "SEQ", default_value_t = 1)]
        from: u64,
    },
}

/// Export formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
}

/// How often `tail --follow` looks for new records.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// Records read per page by `export` and `tail`.
const PAGE: u32 = 1000;

/// Runs an audit subcommand.
pub fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(dispatch(command));
    match result {
        // A reader that went away (`| head`) is not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(ExitCode::SUCCESS)
        }
        other => other,
    }
}

async fn dispatch(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify {
            store,
            public_key,
            checkpoints,
        } => verify(&store.target()?, public_key, checkpoints).await,
        AuditCommand::Tail {
            store,
            lines,
            follow,
        } => tail(&store.target()?, lines, follow).await,
        AuditCommand::Show { store, id } => show(&store.target()?, &id).await,
        AuditCommand::Export {
            store,
            format: Format::Jsonl,
            from,
        } => export(&store.target()?, from).await,
    }
}

async fn open_reading(target: &StoreTarget) -> anyhow::Result<(Arc<dyn Store>, String)> {
    let store = open_store(&target.read_only()).await?;
    Ok((store, target.display_url()))
}

async fn verify(
    target: &StoreTarget,
    public_key: Option<PathBuf>,
    checkpoints: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let public_key = match public_key {
        Some(path) => Some(warden_store::load_verifying_key(&path)?),
        None => None,
    };
    let signed = public_key.is_some();
    let options = VerifyOptions {
        public_key,
        outside_checkpoints: checkpoints.or_else(|| target.audit.checkpoint_file.clone()),
        page_size: Some(PAGE),
    };
    let (store, url) = open_reading(target).await?;
    let report = warden_store::verify(store.as_ref(), options)
        .await
        .map_err(|e| anyhow::anyhow!(explain_error(&url, &e)))?;
    let mut out = std::io::stdout().lock();
    match report.first_fault() {
        None => {
            writeln!(
                out,
                "ok: {} records, {} checkpoints",
                report.records, report.checkpoints
            )?;
            if !signed && report.checkpoints > 0 {
                eprintln!("note: checkpoint signatures were not checked (give --public-key)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(first) => {
            writeln!(out, "FAIL first bad {first}")?;
            for fault in report.faults.iter().skip(1) {
                writeln!(out, "also {fault}")?;
            }
            writeln!(
                out,
                "{} records good before it, {} checkpoints compared",
                report.records, report.checkpoints
            )?;
            Ok(ExitCode::from(1))
        }
    }
}

async fn tail(target: &StoreTarget, lines: u64, follow: bool) -> anyhow::Result<ExitCode> {
    let (store, url) = open_reading(target).await?;
    let fail = |e: warden_store::StoreError| anyhow::anyhow!(explain_error(&url, &e));
    let last = store.audit_tail_seq().await.map_err(fail)?;
    let mut next = last.saturating_sub(lines).saturating_add(1);
    let mut out = std::io::stdout().lock();
    loop {
        // Up to the tail seen at the start; then, when following, whatever comes.
        let records = store.audit_range(next, PAGE).await.map_err(fail)?;
        for record in &records {
            if !follow && record.seq > last {
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(out, "{}", tail_line(record))?;
            next = record.seq + 1;
        }
        out.flush()?;
        if records.len() < PAGE as usize {
            if !follow {
                return Ok(ExitCode::SUCCESS);
            }
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_EVERY) => {}
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            }
        }
    }
}

async fn show(target: &StoreTarget, id: &str) -> anyhow::Result<ExitCode> {
    let (store, url) = open_reading(target).await?;
    let fail = |e: warden_store::StoreError| anyhow::anyhow!(explain_error(&url, &e));
    let records = match id.strip_prefix('#') {
        Some(seq) => {
            let seq: u64 = seq.parse().map_err(|_| {
                anyhow::anyhow!("`{id}` is not a record number: write `#` and digits, as `#42`")
            })?;
            match store.audit_get(seq).await.map_err(fail)? {
                None => Vec::new(),
                Some(record) => match &record.columns.decision_id {
                    Some(decision) => {
                        let all = store.audit_by_decision(decision).await.map_err(fail)?;
                        if all.is_empty() {
                            vec![record]
                        } else {
                            all
                        }
                    }
                    None => vec![record],
                },
            }
        }
        None => store.audit_by_decision(id).await.map_err(fail)?,
    };
    if records.is_empty() {
        eprintln!("no record of `{id}` in the store `{url}`");
        return Ok(ExitCode::from(1));
    }
    let mut out = std::io::stdout().lock();
    for line in explain(&records) {
        writeln!(out, "{line}")?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn export(target: &StoreTarget, from: u64) -> anyhow::Result<ExitCode> {
    let (store, url) = open_reading(target).await?;
    let mut next = from.max(1);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    loop {
        let records = store
            .audit_range(next, PAGE.min(MAX_PAGE))
            .await
            .map_err(|e| anyhow::anyhow!(explain_error(&url, &e)))?;
        for record in &records {
            writeln!(out, "{}", export_line(record))?;
            next = record.seq + 1;
        }
        if records.len() < PAGE as usize {
            break;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
