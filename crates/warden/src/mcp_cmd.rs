//! `warden proxy` (one agent session over stdio) and `warden serve` (streamable HTTP).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use warden_core::Engine;
use warden_enforce::Enforcer;
use warden_mcp::http::Tokens;
use warden_mcp::{Gateway, GatewaySettings, Identity};

use crate::fs::{load_engine, now_ms};

/// Arguments of `warden proxy`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The configuration file (warden.toml); its `[servers]` are the upstreams.
    #[arg(long, short)]
    pub config: PathBuf,
    /// The agent this session is for.
    #[arg(long, env = "WARDEN_AGENT")]
    pub agent: String,
    /// The person the agent acts for.
    #[arg(long, env = "WARDEN_PRINCIPAL")]
    pub principal: String,
    /// The mission template granted to the session.
    #[arg(long, env = "WARDEN_MISSION")]
    pub mission: String,
    /// The principal's own words for the task.
    #[arg(long, env = "WARDEN_PURPOSE", default_value = "")]
    pub purpose: String,
    /// The store (`memory:`, `sqlite://PATH`, `postgres://…`); default: the configuration's
    /// `store`, else `warden.db` beside it.
    #[arg(long, env = "WARDEN_STORE")]
    pub store: Option<String>,
}

/// Arguments of `warden serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file (warden.toml); its `[servers]` are the upstreams.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Listen address (default: `serve.listen`, else 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<String>,
    /// The store (`memory:`, `sqlite://PATH`, `postgres://…`); default: the configuration's
    /// `store`, else `warden.db` beside it.
    #[arg(long, env = "WARDEN_STORE")]
    pub store: Option<String>,
    /// Async worker threads (default: `serve.workers`, else one per core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=warden_mcp::settings::MAX_WORKERS as i64))]
    pub workers: Option<u16>,
}

/// A started gateway and what the commands print about it.
struct Started {
    gateway: Arc<Gateway>,
    /// The store, as printed (no password).
    store: String,
}

/// A multi-threaded runtime with `workers` worker threads (`None`: one per core).
pub(crate) fn runtime(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        b.worker_threads(n);
    }
    b.enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Load the engine and the gateway settings of `config` (`@acme-mcp` upstreams are served by
/// this executable: see [`crate::acme_cmd`]).
pub fn load(config: &Path) -> anyhow::Result<(Engine, GatewaySettings)> {
    let (engine, _) = load_engine(config)?;
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read `{}`", config.display()))?;
    let base = config.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut settings = GatewaySettings::from_config(
        engine.config(),
        &config.display().to_string(),
        Some(&text),
        &base,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::acme_cmd::serve_acme_here(&mut settings);
    Ok((engine, settings))
}

async fn start(
    config: &Path,
    (engine, mut settings): (Engine, GatewaySettings),
    store: Option<String>,
    listen: Option<String>,
) -> anyhow::Result<Started> {
    if let Some(l) = listen {
        settings.serve.listen = l;
    }
    let target = crate::store_cfg::store_target(Some(config), store.as_deref())?;
    let store = crate::store_cfg::open_store(&target).await?;
    let enforcer = Enforcer::start(Arc::new(engine), store)
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot start enforcing on `{}`: {e}", target.display_url())
        })?;
    for w in &settings.warnings {
        eprintln!("warden: warning: {w}");
    }
    if settings.upstreams.is_empty() {
        eprintln!(
            "warden: warning: `{}` has no [servers.*]: no tool can be offered",
            config.display()
        );
    }
    let gateway = Gateway::start(enforcer, settings).await;
    for gap in gateway.catalog_gaps() {
        eprintln!("warden: warning: {gap}");
    }
    for s in gateway.upstream_status() {
        let why = s.last_error.as_deref().unwrap_or("no answer");
        if s.cannot_start {
            eprintln!(
                "warden: error: upstream `{}`: {why}; its tools are not offered and calls to them are refused (retrying in the background)",
                s.name
            );
        } else if !s.up {
            eprintln!(
                "warden: warning: upstream `{}` is not up yet ({why}); retrying in the background",
                s.name
            );
        }
    }
    Ok(Started {
        gateway,
        store: target.display_url(),
    })
}

/// Run `warden proxy`.
pub fn proxy(a: ProxyArgs) -> anyhow::Result<ExitCode> {
    let loaded = load(&a.config)?;
    runtime(None)?.block_on(async move {
        let started = start(&a.config, loaded, a.store.clone(), None).await?;
        let gw = started.gateway;
        let id = format!("stdio-{}-{}", std::process::id(), now_ms());
        let who = Identity {
            agent: a.agent,
            principal: a.principal,
            template: a.mission,
            purpose: a.purpose,
        };
        let session = gw.open_session(&id, &who, None)?;
        eprintln!(
            "warden: proxy session `{}`: agent `{}` for `{}` on mission `{}`; decisions audited in `{}`",
            session.name(),
            who.agent,
            who.principal,
            who.template,
            started.store
        );
        let served = warden_mcp::stdio::serve_stdio(gw.clone(), session).await;
        gw.shutdown();
        served?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Run `warden serve`.
pub fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let loaded = load(&a.config)?;
    let workers = a.workers.map(usize::from).or(loaded.1.serve.workers);
    runtime(workers)?.block_on(async move {
        let started = start(&a.config, loaded, a.store.clone(), a.listen.clone()).await?;
        let gw = started.gateway;
        let (tokens, warnings) = Tokens::from_env(gw.engine());
        for w in &warnings {
            eprintln!("warden: warning: {w}");
        }
        if tokens.is_empty() {
            anyhow::bail!(
                "no agent can authenticate: set the environment variable named by an agent's `token_env`"
            );
        }
        let addr = gw.settings().serve.listen.clone();
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("cannot listen on `{addr}`"))?;
        let local = listener.local_addr()?;
        eprintln!(
            "warden: serving http://{local}{} for {} agent(s) (health: {} and {}); decisions audited in `{}`",
            warden_mcp::http::MCP_PATH,
            tokens.len(),
            crate::health::HEALTHZ,
            crate::health::READYZ,
            started.store
        );
        let health = crate::health::routes(gw.clone());
        let result =
            warden_mcp::http::serve_with(gw.clone(), tokens, listener, health, shutdown_signal())
                .await;
        gw.shutdown();
        result?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
