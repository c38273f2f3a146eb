//! `warden mission grant|attenuate|revoke|list|show`: missions a person grants to an agent.
//!
//! Every command but `attenuate` is run with the person's own credential (`--token` or
//! `WARDEN_USER_TOKEN`: a local user token or the identity provider's JWT), checked by the
//! same [`Authenticator`] as the server's, against the store the configuration names. The work
//! itself is [`MissionAuthority`]'s, as over HTTP (`/v1/missions`, [`crate::missions_http`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use warden_core::mission::parse_duration_secs;
use warden_core::narrow::Narrowing;
use warden_core::Engine;
use warden_enforce::grants::{GrantRequest, Listed, MissionAuthority, RevokeTarget};
use warden_enforce::identity::{Authenticator, Principal};
use warden_enforce::token::{self, RootKey};
use warden_store::GrantFilter;

use crate::fs::{load_engine, now_ms};

/// The key file used when `[missions] signing_key` is not set.
pub const DEFAULT_KEY_FILE: &str = "missions.pem";

/// `warden mission …`.
#[derive(Debug, Subcommand)]
pub enum MissionCommand {
    /// Grant a mission to an agent, acting for you; prints the mission token to give it.
    Grant(GrantArgs),
    /// Narrow a mission token for a sub-agent (offline; any holder can).
    Attenuate(AttenuateArgs),
    /// Revoke a mission (and every mission narrowed from it), or every mission of an agent or
    /// of a person.
    Revoke(RevokeArgs),
    /// List the missions granted.
    List(ListArgs),
    /// Show one granted mission.
    Show(ShowArgs),
}

/// The configuration, the store and the person's credential.
#[derive(Debug, Args)]
pub struct Person {
    /// The configuration file (warden.toml).
    #[arg(long, short)]
    pub config: PathBuf,
    /// The store (default: the configuration's `store`, else `warden.db` beside it).
    #[arg(long, env = "WARDEN_STORE")]
    pub store: Option<String>,
    /// Your credential: a local user token (`[users.NAME]`) or your identity provider's JWT.
    #[arg(long, env = "WARDEN_USER_TOKEN", hide_env_values = true)]
    pub token: String,
}

/// How output is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// One JSON document, for scripts.
    Json,
}

/// What a narrowing takes away; every option is optional.
#[derive(Debug, Clone, Default, Args)]
pub struct NarrowArgs {
    /// Only these tools (`server.tool`, `server.*`), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub tools: Option<Vec<String>>,
    /// Only these resources (globs), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub resources: Option<Vec<String>>,
    /// Only these outside hosts (globs), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub hosts: Option<Vec<String>>,
    /// At most this many calls.
    #[arg(long)]
    pub calls: Option<u64>,
    /// At most these labels read, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub read_labels: Option<Vec<String>>,
}

impl NarrowArgs {
    fn narrowing(&self, expires_at_ms: Option<i64>, agent: Option<String>) -> Narrowing {
        let mut n = Narrowing {
            tools: self.tools.clone(),
            resources: self.resources.clone(),
            hosts: self.hosts.clone(),
            expires_at_ms,
            agent,
            read_labels: self
                .read_labels
                .as_ref()
                .map(|l| l.iter().cloned().collect()),
            ..Narrowing::default()
        };
        n.budgets.calls = self.calls;
        n
    }
}

/// Arguments of `warden mission grant`.
#[derive(Debug, Args)]
pub struct GrantArgs {
    #[command(flatten)]
    person: Person,
    /// The mission template.
    #[arg(long)]
    template: String,
    /// The agent it is for.
    #[arg(long)]
    agent: String,
    /// What the agent is to do, in your own words.
    #[arg(long)]
    purpose: String,
    /// How long it lasts (`30m`, `2h`, `1d`); default: as long as the template allows.
    #[arg(long)]
    expires: Option<String>,
    #[command(flatten)]
    narrow: NarrowArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// Arguments of `warden mission attenuate`.
#[derive(Debug, Args)]
pub struct AttenuateArgs {
    /// The mission token to narrow (`-`: read it from stdin).
    token: String,
    /// How long the narrower mission lasts from now (`30m`, `2h`); never past its parent.
    #[arg(long)]
    expires: Option<String>,
    /// The sub-agent to hold it.
    #[arg(long)]
    agent: Option<String>,
    #[command(flatten)]
    narrow: NarrowArgs,
    /// Check the narrower token against this configuration now (its mission key and
    /// templates), instead of at the sub-agent's first call.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

/// Arguments of `warden mission revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    person: Person,
    /// The mission id.
    #[arg(required_unless_present_any = ["agent", "principal"], conflicts_with_all = ["agent", "principal"])]
    mission: Option<String>,
    /// Every mission of this agent granted until now.
    #[arg(long, conflicts_with = "principal")]
    agent: Option<String>,
    /// Every mission acting for this person granted until now.
    #[arg(long)]
    principal: Option<String>,
    /// Why, in your words (audited).
    #[arg(long, default_value = "")]
    reason: String,
}

/// Arguments of `warden mission list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    person: Person,
    /// Only this agent's.
    #[arg(long)]
    agent: Option<String>,
    /// Only those acting for this person.
    #[arg(long)]
    principal: Option<String>,
    /// Expired missions too.
    #[arg(long)]
    all: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// Arguments of `warden mission show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    person: Person,
    /// The mission id.
    mission: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// Where the mission key of the configuration at `config` is.
pub fn key_path(config: &Path, engine: &Engine) -> PathBuf {
    let dir = config.parent().map(Path::to_path_buf).unwrap_or_default();
    let written = engine
        .config()
        .grants
        .signing_key
        .as_deref()
        .unwrap_or(DEFAULT_KEY_FILE);
    dir.join(written)
}

/// The mission key of the configuration at `config`, made when there is none yet (and said so
/// on stderr).
pub fn load_key(config: &Path, engine: &Engine) -> anyhow::Result<RootKey> {
    let path = key_path(config, engine);
    let (key, made) = RootKey::load_or_create(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    if made {
        eprintln!(
            "warden: made a new mission key at `{}` (keep it secret: it signs every mission token; replicas need the same file)",
            path.display()
        );
    }
    Ok(key)
}

/// The people's authenticator of a configuration at `config`.
pub fn authenticator(config: &Path, engine: &Engine) -> anyhow::Result<Authenticator> {
    let dir = config.parent().map(Path::to_path_buf).unwrap_or_default();
    Authenticator::from_config(engine.config(), &dir, |v| std::env::var(v).ok())
        .map_err(|e| anyhow::anyhow!("{e}"))
}

impl MissionCommand {
    /// The person running it (none for `attenuate`, which needs no one).
    fn person(&self) -> Option<&Person> {
        match self {
            MissionCommand::Grant(a) => Some(&a.person),
            MissionCommand::Revoke(a) => Some(&a.person),
            MissionCommand::List(a) => Some(&a.person),
            MissionCommand::Show(a) => Some(&a.person),
            MissionCommand::Attenuate(_) => None,
        }
    }
}

/// Run `warden mission …`.
pub fn run(command: MissionCommand) -> anyhow::Result<ExitCode> {
    let Some(person) = command.person() else {
        let MissionCommand::Attenuate(a) = command else {
            anyhow::bail!("this command needs your credential");
        };
        return attenuate(a);
    };
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
        let authority = MissionAuthority::new(key, engine.clone(), store);
        match command {
            MissionCommand::Grant(a) => grant(&authority, &who, a).await,
            MissionCommand::Revoke(a) => revoke(&authority, &who, a).await,
            MissionCommand::List(a) => list(&authority, &who, a).await,
            MissionCommand::Show(a) => show(&authority, &who, a).await,
            MissionCommand::Attenuate(a) => attenuate(a),
        }
    })
}

/// `30m` as milliseconds.
pub fn duration_ms(text: &str) -> anyhow::Result<i64> {
    parse_duration_secs(text)
        .map(|s| s.saturating_mul(1000))
        .with_context(|| format!("`{text}` is not a duration like `30m`, `2h` or `1d`"))
}

async fn grant(
    authority: &MissionAuthority,
    who: &Principal,
    a: GrantArgs,
) -> anyhow::Result<ExitCode> {
    let narrowing = a.narrow.narrowing(None, None);
    let req = GrantRequest {
        template: a.template,
        agent: a.agent,
        purpose: a.purpose,
        expires_in_ms: a.expires.as_deref().map(duration_ms).transpose()?,
        narrowing: (narrowing != Narrowing::default()).then_some(narrowing),
    };
    let granted = authority
        .grant(who, &req, now_ms())
        .await
        .map_err(|e| anyhow::anyhow!("cannot grant: {e}"))?;
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&granted)?),
        Format::Text => {
            eprintln!(
                "granted mission {} ({} for agent `{}`, acting for {}) until {}",
                granted.mission,
                granted.record.template,
                granted.record.agent,
                granted.record.principal,
                crate::audit_text::utc(granted.expires_at_ms)
            );
            println!("{}", granted.token);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn attenuate(a: AttenuateArgs) -> anyhow::Result<ExitCode> {
    let parent = if a.token == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read the token from stdin")?
    } else {
        a.token.clone()
    };
    let now = now_ms();
    let expires_at_ms = a
        .expires
        .as_deref()
        .map(duration_ms)
        .transpose()?
        .map(|ms| now.saturating_add(ms));
    let narrowing = a.narrow.narrowing(expires_at_ms, a.agent.clone());
    let child = match &a.config {
        Some(config) => {
            let (engine, _) = load_engine(config)?;
            let engine = Arc::new(engine);
            let key = load_key(config, &engine)?;
            let store = crate::mcp_cmd::runtime(Some(1))?
                .block_on(warden_store::open("memory:"))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let authority = MissionAuthority::new(key, engine, store);
            let (child, verified) = authority
                .attenuate(parent.trim(), &narrowing, now)
                .map_err(|e| anyhow::anyhow!("cannot narrow: {e}"))?;
            eprintln!(
                "narrowed to mission {} for agent `{}` until {}",
                verified.mission.id,
                verified.mission.agent,
                crate::audit_text::utc(verified.mission.expires_at_ms)
            );
            child
        }
        None => token::attenuate(parent.trim(), &narrowing)
            .map_err(|e| anyhow::anyhow!("cannot narrow: {e}"))?,
    };
    println!("{child}");
    Ok(ExitCode::SUCCESS)
}

async fn revoke(
    authority: &MissionAuthority,
    who: &Principal,
    a: RevokeArgs,
) -> anyhow::Result<ExitCode> {
    let target = match (a.mission, a.agent, a.principal) {
        (Some(m), _, _) => RevokeTarget::Mission(m),
        (_, Some(agent), _) => RevokeTarget::Agent(agent),
        (_, _, Some(p)) => RevokeTarget::Principal(p),
        _ => anyhow::bail!("name a mission, `--agent` or `--principal`"),
    };
    let revoked = authority
        .revoke(who, &target, &a.reason, now_ms())
        .await
        .map_err(|e| anyhow::anyhow!("cannot revoke {target}: {e}"))?;
    eprintln!(
        "revoked {target}: {} granted mission(s) by id{}",
        revoked.len(),
        if matches!(target, RevokeTarget::Mission(_)) {
            ""
        } else {
            ", and every other mission of that scope granted until now"
        }
    );
    for id in revoked {
        println!("{id}");
    }
    Ok(ExitCode::SUCCESS)
}

fn line(l: &Listed, now: i64) -> String {
    let state = match (&l.revoked, now >= l.grant.expires_at_ms) {
        (Some(r), _) => format!("revoked ({})", r.reason),
        (None, true) => "expired".into(),
        (None, false) => format!(
            "live until {}",
            crate::audit_text::utc(l.grant.expires_at_ms)
        ),
    };
    format!(
        "{}  {}  agent {}  for {}  {}  \"{}\"",
        l.grant.mission_id,
        l.grant.template,
        l.grant.agent,
        l.grant.principal,
        state,
        l.grant.purpose
    )
}

async fn list(
    authority: &MissionAuthority,
    who: &Principal,
    a: ListArgs,
) -> anyhow::Result<ExitCode> {
    let now = now_ms();
    let filter = GrantFilter {
        agent: a.agent,
        principal: a.principal,
        live_at_ms: (!a.all).then_some(now),
        limit: 0,
    };
    let listed = authority.list(who, &filter).await?;
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&listed)?),
        Format::Text => {
            for l in &listed {
                println!("{}", line(l, now));
            }
            if listed.is_empty() {
                eprintln!("no mission");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(
    authority: &MissionAuthority,
    who: &Principal,
    a: ShowArgs,
) -> anyhow::Result<ExitCode> {
    let Some(l) = authority.show(who, &a.mission).await? else {
        eprintln!("no mission `{}` that you may see", a.mission);
        return Ok(ExitCode::from(1));
    };
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&l)?),
        Format::Text => {
            println!("{}", line(&l, now_ms()));
            println!("  granted by   {} ({})", l.grant.granted_by, l.grant.auth);
            println!(
                "  granted at   {}",
                crate::audit_text::utc(l.grant.granted_at_ms)
            );
            if let Some(n) = &l.grant.narrowing {
                println!("  narrowed     {n}");
            }
            println!("  token sha256 {}", l.grant.token_digest);
        }
    }
    Ok(ExitCode::SUCCESS)
}
