//! `warden proxy` (one agent session over stdio) and `warden serve` (streamable HTTP).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use warden_core::Engine;
use warden_enforce::grants::MissionAuthority;
use warden_enforce::Enforcer;
use warden_mcp::http::Tokens;
use warden_mcp::{Claim, Gateway, GatewaySettings, Identity};

use crate::fs::{load_engine, now_ms};

/// Arguments of `warden proxy`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The configuration file (warden.toml); its `[servers]` are the upstreams.
    #[arg(long, short)]
    pub config: PathBuf,
    /// The mission token the person granted (`warden mission grant`): it names the agent, the
    /// person it acts for and the mission.
    #[arg(long, env = "WARDEN_MISSION_TOKEN", hide_env_values = true)]
    pub mission_token: Option<String>,
    /// Believe `--agent`, `--principal`, `--mission` and `--purpose` instead of a mission
    /// token: for local development only (anyone starting the proxy could name anyone).
    #[arg(long)]
    pub insecure_identity: bool,
    /// The agent this session is for (with a mission token: must be the token's agent).
    #[arg(long, env = "WARDEN_AGENT")]
    pub agent: Option<String>,
    /// The person the agent acts for (`--insecure-identity` only).
    #[arg(long, env = "WARDEN_PRINCIPAL")]
    pub principal: Option<String>,
    /// The mission template granted to the session (`--insecure-identity` only).
    #[arg(long, env = "WARDEN_MISSION")]
    pub mission: Option<String>,
    /// The principal's own words for the task (`--insecure-identity` only).
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
    /// Believe the identity headers (`X-Warden-Principal`, `X-Warden-Mission`) from any agent
    /// instead of requiring a mission token: for local development only.
    #[arg(long)]
    pub insecure_identity: bool,
}

/// A started gateway and what the commands print about it.
struct Started {
    gateway: Arc<Gateway>,
    /// The store, as printed (no password).
    store: String,
    /// Grants and verifies mission tokens (also set on the gateway).
    authority: Arc<MissionAuthority>,
}

/// What `--insecure-identity` prints on every start.
const INSECURE: &str = "warden: WARNING: --insecure-identity: identities are believed as the agent or operator names them, not proven by a mission token; any agent can claim to act for anyone. For local development only.";

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
    let key = crate::mission_cmd::load_key(config, &engine)?;
    let engine = Arc::new(engine);
    let authority = Arc::new(MissionAuthority::new(key, engine.clone(), store.clone()));
    let enforcer = Enforcer::start(engine, store).await.map_err(|e| {
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
    gateway.set_authority(authority.clone());
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
        authority,
    })
}

/// The claim of a `warden proxy` session: its mission token, or (`--insecure-identity`) the
/// identity flags.
fn proxy_claim(a: &ProxyArgs, authority: &MissionAuthority) -> anyhow::Result<Claim> {
    if let Some(token) = &a.mission_token {
        if a.principal.is_some() || a.mission.is_some() {
            anyhow::bail!(
                "give a mission token or the identity flags (--principal, --mission), not both"
            );
        }
        let now = now_ms();
        let fresh = authority
            .verifier()
            .verify_fresh(token, now)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let agent = a
            .agent
            .clone()
            .unwrap_or_else(|| fresh.mission.agent.clone());
        let verified = authority
            .verifier()
            .verify(token, &agent, now)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        return Ok(Claim::Token(Box::new(verified)));
    }
    if !a.insecure_identity {
        anyhow::bail!(
            "present the mission token the person granted (`--mission-token` or WARDEN_MISSION_TOKEN; `warden mission grant` makes one); the identity flags need `--insecure-identity`, for local development only"
        );
    }
    let need = |v: &Option<String>, flag: &str| {
        v.clone()
            .ok_or_else(|| anyhow::anyhow!("`--insecure-identity` needs `{flag}`"))
    };
    Ok(Claim::Headers(Identity {
        agent: need(&a.agent, "--agent")?,
        principal: need(&a.principal, "--principal")?,
        template: need(&a.mission, "--mission")?,
        purpose: a.purpose.clone(),
        proxied: false,
    }))
}

/// Run `warden proxy`.
pub fn proxy(a: ProxyArgs) -> anyhow::Result<ExitCode> {
    let loaded = load(&a.config)?;
    if a.insecure_identity {
        eprintln!("{INSECURE}");
    }
    runtime(None)?.block_on(async move {
        let started = start(&a.config, loaded, a.store.clone(), None).await?;
        let gw = started.gateway;
        let who = match proxy_claim(&a, &started.authority) {
            Ok(c) => c,
            Err(e) => {
                let agent = a.agent.as_deref().unwrap_or("-");
                gw.audit_refusal(agent, a.mission_token.as_deref(), &format!("{e:#}"))
                    .await;
                gw.shutdown();
                return Err(e.context("cannot open the proxy session"));
            }
        };
        let id = format!("stdio-{}-{}", std::process::id(), now_ms());
        let session = gw.open_session(&id, &who, None)?;
        let m = session.mission();
        eprintln!(
            "warden: proxy session `{}`: agent `{}` for `{}` on mission `{}` ({}); decisions audited in `{}`",
            session.name(),
            m.agent,
            m.principal,
            m.id,
            m.template,
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
    let mut loaded = load(&a.config)?;
    let workers = a.workers.map(usize::from).or(loaded.1.serve.workers);
    loaded.1.serve.insecure_identity = a.insecure_identity;
    if a.insecure_identity {
        eprintln!("{INSECURE}");
    }
    let people = match crate::mission_cmd::authenticator(&a.config, &loaded.0) {
        Ok(p) => Some(Arc::new(p)),
        Err(e) => {
            eprintln!(
                "warden: warning: people cannot authenticate ({e}): {} refuses every request",
                crate::missions_http::MISSIONS
            );
            None
        }
    };
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
            "warden: serving http://{local}{} for {} agent(s) (missions: {}; approvals: {}; health: {} and {}); decisions audited in `{}`",
            warden_mcp::http::MCP_PATH,
            tokens.len(),
            crate::missions_http::MISSIONS,
            crate::approvals_http::APPROVALS,
            crate::health::HEALTHZ,
            crate::health::READYZ,
            started.store
        );
        let engine = gw.enforcer().engine_arc().clone();
        let approvals = crate::approvals_http::routes(Arc::new(crate::approvals_http::ApprovalsApi {
            approvals: warden_enforce::approvals::Approvals::new(
                engine.clone(),
                gw.enforcer().store().clone(),
            ),
            people: people.clone(),
            engine: engine.clone(),
        }));
        let missions = crate::missions_http::routes(Arc::new(crate::missions_http::MissionsApi {
            authority: started.authority.clone(),
            people,
            engine,
        }));
        let health = crate::health::routes(gw.clone())
            .merge(missions)
            .merge(approvals);
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
