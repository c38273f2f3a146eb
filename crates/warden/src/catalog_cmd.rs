//! `warden catalog discover`: draft catalog entries for what the upstreams offer.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use warden_core::discover::{draft, ToolInfo};
use warden_mcp::Gateway;

use crate::mcp_cmd::load;

/// `warden catalog …`.
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Connect to the configured upstreams and print draft catalog entries (TOML) for the tools
    /// the catalog does not describe: effects from the tool annotations, arguments from the
    /// input schemas, guessed audience, act-as and directing arguments marked `REVIEW`.
    Discover(DiscoverArgs),
}

/// Arguments of `warden catalog discover`.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// The configuration file (warden.toml); its `[servers]` are asked for their tools.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Only this server.
    #[arg(long)]
    pub server: Option<String>,
    /// Draft every tool, also those the catalog describes already.
    #[arg(long)]
    pub all: bool,
}

/// Run `warden catalog …`.
pub fn run(command: CatalogCommand) -> anyhow::Result<ExitCode> {
    match command {
        CatalogCommand::Discover(a) => discover(a),
    }
}

fn discover(a: DiscoverArgs) -> anyhow::Result<ExitCode> {
    let (engine, mut settings) = load(&a.config)?;
    if let Some(s) = &a.server {
        settings.upstreams.retain(|u| &u.name == s);
        if settings.upstreams.is_empty() {
            anyhow::bail!("`{}` has no [servers.{s}]", a.config.display());
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Nothing is decided while discovering: an in-memory store.
        let store = warden_store::open("memory:").await?;
        let enforcer = warden_enforce::Enforcer::start(Arc::new(engine), store).await?;
        let gw = Gateway::start(enforcer, settings).await;
        let mut out = format!(
            "# Draft catalog entries from the upstreams' tool lists (`warden catalog discover`).\n\
             # Review every line marked REVIEW before adding an entry to `{}`.\n",
            a.config.display()
        );
        let mut down = Vec::new();
        for status in gw.upstream_status() {
            let Some(u) = gw.upstream(&status.name) else {
                continue;
            };
            if !status.up {
                down.push(format!(
                    "upstream `{}` did not answer ({})",
                    status.name,
                    status.last_error.as_deref().unwrap_or("no answer")
                ));
                continue;
            }
            let mut tools = u.tools();
            tools.sort_by(|x, y| x.name.cmp(&y.name));
            for t in tools {
                let name = format!("{}.{}", status.name, t.name);
                if !a.all && gw.engine().config().catalog.get(&name).is_some() {
                    continue;
                }
                let hints = t.annotations.as_ref();
                let info = ToolInfo {
                    name: t.name.to_string(),
                    description: t.description.as_deref().map(str::to_string),
                    input_schema: serde_json::Value::Object(t.input_schema.as_ref().clone()),
                    read_only: hints.and_then(|h| h.read_only_hint),
                    destructive: hints.and_then(|h| h.destructive_hint),
                    open_world: hints.and_then(|h| h.open_world_hint),
                };
                out.push('\n');
                out.push_str(&draft(&status.name, &info));
            }
        }
        let gaps: Vec<String> = gw
            .catalog_gaps()
            .into_iter()
            .filter(|g| !g.starts_with("upstream tool "))
            .collect();
        if !gaps.is_empty() {
            out.push_str("\n# Entries the catalog has, with arguments it does not declare:\n");
            for g in gaps {
                out.push_str(&format!("# {g}\n"));
            }
        }
        print!("{out}");
        gw.shutdown();
        for d in &down {
            eprintln!("warden: warning: {d}");
        }
        Ok(if down.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}
