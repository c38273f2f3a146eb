//! Shared set-up of the fuzz targets: the Acme configuration in memory, its engine, and a
//! gateway in front of the in-process Acme servers, each built once per process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use rmcp::ServiceExt;
use warden_core::config::MemorySources;
use warden_core::{Config, Engine};
use warden_mcp::{
    Connector, DecisionLog, Gateway, GatewaySettings, LogEntry, LogError, OutcomeEntry,
    UpstreamSettings,
};

/// The Acme configuration files, by path relative to `warden.toml`.
pub const ACME_FILES: &[(&str, &str)] = &[
    (
        "warden.toml",
        include_str!("../../examples/acme/warden.toml"),
    ),
    (
        "catalog.toml",
        include_str!("../../examples/acme/catalog.toml"),
    ),
    (
        "missions.toml",
        include_str!("../../examples/acme/missions.toml"),
    ),
    (
        "directory.json",
        include_str!("../../examples/acme/directory.json"),
    ),
    (
        "policies/default.cedar",
        include_str!("../../examples/acme/policies/default.cedar"),
    ),
    (
        "policies/people.cedar",
        include_str!("../../examples/acme/policies/people.cedar"),
    ),
];

/// The small configuration in `fuzz/base/` that the config_loader target starts from: each
/// file of the Acme kind, with a few tools, people and policies, so that one load takes
/// milliseconds (the Acme configuration generates 12,194 people on every load).
pub const BASE_FILES: &[(&str, &str)] = &[
    ("warden.toml", include_str!("../base/warden.toml")),
    ("catalog.toml", include_str!("../base/catalog.toml")),
    ("missions.toml", include_str!("../base/missions.toml")),
    ("directory.json", include_str!("../base/directory.json")),
    (
        "policies/default.cedar",
        include_str!("../base/policies/default.cedar"),
    ),
];

/// The Acme files in memory, with `path` replaced by `text` when given.
pub fn acme_sources(replace: Option<(&str, String)>) -> MemorySources {
    sources_of(ACME_FILES, replace)
}

/// `files` in memory, with `path` replaced by `text` when given.
pub fn sources_of(files: &[(&str, &str)], replace: Option<(&str, String)>) -> MemorySources {
    let mut files: BTreeMap<String, String> = files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
    if let Some((path, text)) = replace {
        files.insert(path.to_string(), text);
    }
    MemorySources(files)
}

/// Load a configuration from memory sources, `warden.toml` first.
pub fn load(sources: &MemorySources) -> Result<Config, warden_core::error::ConfigError> {
    let text = sources.0.get("warden.toml").cloned().unwrap_or_default();
    Config::load("warden.toml", &text, sources)
}

/// The Acme engine.
pub fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| Arc::new(Engine::new(load(&acme_sources(None)).unwrap())))
        .clone()
}

/// One single-threaded runtime for the process.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

/// A decision log that keeps nothing: fuzzing makes millions of decisions.
pub struct Discard;

impl DecisionLog for Discard {
    fn append(&self, _entry: &LogEntry) -> Result<(), LogError> {
        Ok(())
    }

    fn append_outcome(&self, _entry: &OutcomeEntry) -> Result<(), LogError> {
        Ok(())
    }

    fn blocking(&self) -> bool {
        false
    }
}

/// A gateway in front of every Acme server, in process, logging to [`Discard`].
pub fn acme_gateway() -> Arc<Gateway> {
    static GATEWAY: OnceLock<Arc<Gateway>> = OnceLock::new();
    GATEWAY
        .get_or_init(|| {
            runtime().block_on(async {
                let acme = warden_acme::AcmeServer::new();
                let upstreams = warden_acme::SERVERS
                    .iter()
                    .map(|s| {
                        let view = acme.subset(Some(s)).unwrap();
                        let connector: Connector = Arc::new(move || {
                            let handler = view.clone();
                            let (ours, theirs) = tokio::io::duplex(256 * 1024);
                            tokio::spawn(async move {
                                if let Ok(running) = handler.serve(theirs).await {
                                    let _ = running.waiting().await;
                                }
                            });
                            Ok(ours)
                        });
                        UpstreamSettings::in_process(*s, connector)
                    })
                    .collect();
                let settings = GatewaySettings {
                    upstreams,
                    ..GatewaySettings::default()
                };
                Gateway::start(engine(), settings, Arc::new(Discard)).await
            })
        })
        .clone()
}
