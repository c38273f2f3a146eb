//! `warden.toml`: loaded in two stages — parse everything raw, then validate everything — so a
//! person sees every mistake at once, each with its file and line.
//!
//! The core does no I/O: the caller hands in a [`Sources`] that reads files relative to the
//! configuration file.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::anomaly::BreakerSettings;
use crate::catalog::Catalog;
use crate::detect::{AdviceRule, Detectors, ScanLimits};
use crate::directory::{Directory, DirectorySource, GeneratedMembers, PUBLIC};
use crate::error::{line_of, locate_toml, ConfigError, Issues};
use crate::identity::{IdentityConfig, RawIdentity, RawUser};
use crate::mission::{parse_templates, MissionTemplate};
use crate::pattern::ToolPattern;
use crate::policy::{build_schema, PolicyEngine, PolicyFile};

/// Reads the files a configuration names. Paths are as written in the configuration, relative
/// to the configuration file.
pub trait Sources {
    /// Read a text file.
    fn read(&self, path: &str) -> Result<String, String>;
    /// List the files in a folder (relative paths, sorted) whose names end in `ext`.
    fn list(&self, dir: &str, ext: &str) -> Result<Vec<String>, String>;
}

/// Files held in memory, by path: a [`Sources`] for configurations that do not come from disk
/// (built-in copies, tests, fuzzing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemorySources(pub BTreeMap<String, String>);

impl Sources for MemorySources {
    fn read(&self, path: &str) -> Result<String, String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| format!("`{path}` does not exist"))
    }

    fn list(&self, dir: &str, ext: &str) -> Result<Vec<String>, String> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        Ok(self
            .0
            .keys()
            .filter(|p| {
                p.strip_prefix(&prefix)
                    .is_some_and(|name| name.ends_with(ext) && !name.contains('/'))
            })
            .cloned()
            .collect())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    name: Option<String>,
    policy: RawPolicy,
    catalog: RawFile,
    missions: RawMissions,
    directory: RawDirectory,
    labels: RawLabels,
    #[serde(default)]
    agents: BTreeMap<String, RawAgent>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    detectors: RawDetectors,
    #[serde(default)]
    servers: Option<toml::Value>,
    #[serde(default)]
    serve: Option<toml::Value>,
    #[serde(default)]
    store: Option<toml::Value>,
    #[serde(default)]
    audit: Option<toml::Value>,
    #[serde(default)]
    breakers: BreakerSettings,
    #[serde(default)]
    demo: Option<toml::Value>,
    #[serde(default)]
    identity: Option<RawIdentity>,
    #[serde(default)]
    users: BTreeMap<String, RawUser>,
    #[serde(default)]
    approvals: crate::approve::RawApprovals,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    dir: String,
    #[serde(default)]
    tests: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    file: String,
}

/// `[missions]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMissions {
    file: String,
    #[serde(default)]
    signing_key: Option<String>,
    #[serde(default)]
    revokers: Vec<String>,
}

/// How missions are granted and revoked: the rest of `[missions]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantSettings {
    /// The Ed25519 key (PKCS#8 PEM, as `warden keygen` writes it) that signs mission tokens,
    /// as written (relative to the configuration file). Without one, `missions.pem` beside
    /// the configuration file.
    pub signing_key: Option<String>,
    /// Groups whose members may revoke any mission, and every mission of an agent or of
    /// another person. Anyone may revoke the missions they granted or that act for them.
    pub revokers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectory {
    file: String,
    #[serde(default)]
    internal_domains: Vec<String>,
    #[serde(default)]
    generate: Vec<GeneratedMembers>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLabels {
    confidentiality: Vec<String>,
    #[serde(default)]
    sensitive: Vec<String>,
}

/// An agent as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    /// The most the agent may ever do: tool patterns.
    pub ceiling: Vec<String>,
    /// What the agent is.
    #[serde(default)]
    pub description: String,
    /// Name of the environment variable holding the agent's bearer token (HTTP gateway).
    #[serde(default)]
    pub token_env: Option<String>,
}

/// `[detectors]`: the deployer's additions to the content detectors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetectors {
    #[serde(default)]
    advice: RawAdvice,
}

/// `[detectors.advice]`: `[[detectors.advice.rules]]` with `name` and `pattern`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdvice {
    #[serde(default)]
    rules: Vec<AdviceRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    #[serde(default = "default_max_args")]
    max_argument_bytes: usize,
    #[serde(default = "default_max_scan")]
    max_scan_bytes: usize,
    #[serde(default = "default_decode_depth")]
    max_decode_depth: u8,
}

fn default_max_args() -> usize {
    256 * 1024
}
fn default_max_scan() -> usize {
    1 << 20
}
fn default_decode_depth() -> u8 {
    2
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_argument_bytes: default_max_args(),
            max_scan_bytes: default_max_scan(),
            max_decode_depth: default_decode_depth(),
        }
    }
}

/// Limits on what an agent controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest arguments object, in bytes of JSON.
    pub max_argument_bytes: usize,
}

/// An agent: its ceiling and description.
#[derive(Debug, Clone)]
pub struct Agent {
    /// Agent id.
    pub id: String,
    /// Tool patterns it may ever use.
    pub ceiling: Vec<ToolPattern>,
    /// What it is.
    pub description: String,
    /// Environment variable with its bearer token.
    pub token_env: Option<String>,
}

impl Agent {
    /// True when the tool is within the ceiling.
    pub fn may_use(&self, tool: &str) -> bool {
        self.ceiling.iter().any(|p| p.matches(tool))
    }
}

/// Everything the decision engine needs, loaded and validated.
#[derive(Debug)]
pub struct Config {
    /// Deployment name.
    pub name: String,
    /// The tool catalog.
    pub catalog: Catalog,
    /// The directory.
    pub directory: Directory,
    /// Mission templates.
    pub templates: BTreeMap<String, MissionTemplate>,
    /// Agents.
    pub agents: BTreeMap<String, Agent>,
    /// Policies.
    pub policies: PolicyEngine,
    /// Confidentiality labels (declared; `channel:*` labels are implicit).
    pub confidentiality: BTreeSet<String>,
    /// Labels that count as sensitive for the rule of two.
    pub sensitive: BTreeSet<String>,
    /// Content detectors.
    pub detectors: Detectors,
    /// Limits.
    pub limits: Limits,
    /// Folder of policy tests, as written in the config.
    pub policy_tests: String,
    /// The `[servers]` table, for the gateway.
    pub servers: Option<toml::Value>,
    /// The `[serve]` table, for the HTTP server.
    pub serve: Option<toml::Value>,
    /// The top-level `store = "URL"`: where the audit chain and mission state are kept
    /// (`memory:`, `sqlite://PATH`, `postgres://…`), as written.
    pub store: Option<String>,
    /// The `[audit]` table (signing key and checkpoints), read by the binary.
    pub audit: Option<toml::Value>,
    /// `[breakers]`: the anomaly detectors' thresholds and who may reset a breaker.
    pub breakers: BreakerSettings,
    /// The `[demo]` table.
    pub demo: Option<toml::Value>,
    /// How people authenticate: `[identity.oidc]`, `[identity.proxy]`, `[users.NAME]`.
    pub identity: IdentityConfig,
    /// How missions are granted and revoked (`[missions]` beside its `file`).
    pub grants: GrantSettings,
    /// Calls held for approval: who may approve, how long requests live (`[approvals]`).
    pub approvals: crate::approve::ApprovalSettings,
}

impl Config {
    /// Load `warden.toml` (its text and name) and everything it names, reporting every problem.
    pub fn load(file: &str, text: &str, sources: &dyn Sources) -> Result<Config, ConfigError> {
        let mut issues = Issues::default();
        let raw: RawConfig = match toml::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                let line = e.span().map(|s| line_of(text, s.start));
                issues.push(file, line, e.message().to_string());
                return Err(ConfigError(issues.0));
            }
        };

        // Stage 1: read every file, collecting read errors.
        let read = |path: &str, issues: &mut Issues| -> Option<String> {
            match sources.read(path) {
                Ok(t) => Some(t),
                Err(e) => {
                    issues.push(path, None, format!("cannot read: {e}"));
                    None
                }
            }
        };
        let catalog_text = read(&raw.catalog.file, &mut issues);
        let missions_text = read(&raw.missions.file, &mut issues);
        let dir_text = read(&raw.directory.file, &mut issues);
        let mut policy_files = Vec::new();
        match sources.list(&raw.policy.dir, ".cedar") {
            Ok(files) if files.is_empty() => issues.push(
                &raw.policy.dir,
                None,
                "no `.cedar` files: with no policy nothing is permitted, so Warden refuses to start",
            ),
            Ok(files) => {
                for f in files {
                    if let Some(t) = read(&f, &mut issues) {
                        policy_files.push(PolicyFile { file: f, text: t });
                    }
                }
            }
            Err(e) => issues.push(&raw.policy.dir, None, format!("cannot list policies: {e}")),
        }
        let mut approver_files = Vec::new();
        if let Some(dir) = &raw.approvals.policies {
            match sources.list(dir, ".cedar") {
                Ok(files) if files.is_empty() => issues.push(
                    dir,
                    None,
                    "approvals.policies: no `.cedar` files (leave `policies` out for the built-in approvers)",
                ),
                Ok(files) => {
                    for f in files {
                        if let Some(t) = read(&f, &mut issues) {
                            approver_files.push(PolicyFile { file: f, text: t });
                        }
                    }
                }
                Err(e) => issues.push(dir, None, format!("cannot list approver policies: {e}")),
            }
        }

        // Stage 2: validate.
        let mut confidentiality: BTreeSet<String> =
            raw.labels.confidentiality.iter().cloned().collect();
        confidentiality.insert(PUBLIC.to_string());
        for l in ["secret", "pii"] {
            if !confidentiality.contains(l) {
                issues.push(
                    file,
                    locate_toml(text, &["labels"], Some("confidentiality")),
                    format!("labels.confidentiality must include `{l}`: the content detectors produce it"),
                );
            }
        }
        let mut known = confidentiality.clone();
        known.insert(crate::catalog::UNTRUSTED.to_string());
        let sensitive: BTreeSet<String> = raw.labels.sensitive.iter().cloned().collect();
        for l in &sensitive {
            if !confidentiality.contains(l) {
                issues.push(
                    file,
                    locate_toml(text, &["labels"], Some("sensitive")),
                    format!("sensitive label `{l}` is not a confidentiality label"),
                );
            }
        }
        let catalog = catalog_text
            .as_deref()
            .map(|t| Catalog::parse(&raw.catalog.file, t, &known, &mut issues))
            .unwrap_or_default();
        for srv in catalog.servers() {
            if crate::model::Effect::parse(srv).is_some() {
                issues.push(
                    &raw.catalog.file,
                    None,
                    format!("server name `{srv}` is also an effect name; rename the server"),
                );
            }
        }
        let templates = missions_text
            .as_deref()
            .map(|t| parse_templates(&raw.missions.file, t, &known, &mut issues))
            .unwrap_or_default();
        let mut agents = BTreeMap::new();
        for (id, a) in &raw.agents {
            let mut ceiling = Vec::new();
            for p in &a.ceiling {
                match ToolPattern::parse(p) {
                    Some(tp) => {
                        if let ToolPattern::Tool(t) = &tp {
                            if catalog.get(t).is_none() && catalog_text.is_some() {
                                issues.push(
                                    file,
                                    locate_toml(text, &["agents", id], Some("ceiling")),
                                    format!("agent `{id}`: ceiling names `{t}`, which the catalog does not describe"),
                                );
                            }
                        }
                        ceiling.push(tp)
                    }
                    None => issues.push(
                        file,
                        locate_toml(text, &["agents", id], Some("ceiling")),
                        format!("agent `{id}`: `{p}` is not a tool pattern (`server.tool`, `server.*` or `*`)"),
                    ),
                }
            }
            agents.insert(
                id.clone(),
                Agent {
                    id: id.clone(),
                    ceiling,
                    description: a.description.clone(),
                    token_env: a.token_env.clone(),
                },
            );
        }
        for (name, t) in &templates {
            for a in &t.agents {
                if !agents.contains_key(a) {
                    issues.push(
                        &raw.missions.file,
                        None,
                        format!("mission template `{name}` names unknown agent `{a}`"),
                    );
                }
            }
        }

        let schema = match build_schema(&catalog) {
            Ok(s) => s,
            Err(e) => {
                issues.push(&raw.catalog.file, None, e.to_string());
                return Err(ConfigError(issues.0));
            }
        };
        let ceilings: BTreeMap<String, Vec<ToolPattern>> = agents
            .iter()
            .map(|(k, a)| (k.clone(), a.ceiling.clone()))
            .collect();
        let policies = PolicyEngine::load(schema.clone(), &policy_files, &ceilings, &mut issues);
        let directory = dir_text.and_then(|json| {
            let src = DirectorySource {
                file: raw.directory.file.clone(),
                json,
                generated: raw.directory.generate.clone(),
                internal_domains: raw.directory.internal_domains.clone(),
                agents: agents.keys().cloned().collect(),
            };
            Directory::load(&src, &confidentiality, &schema, &mut issues)
        });
        if raw.limits.max_argument_bytes == 0 || raw.limits.max_scan_bytes == 0 {
            issues.push(
                file,
                locate_toml(text, &["limits"], None),
                "limits must be greater than zero",
            );
        }
        let identity = crate::identity::validate(
            file,
            text,
            raw.identity.as_ref(),
            &raw.users,
            directory.as_ref(),
            &mut issues,
        );
        let Some(directory) = directory else {
            return Err(ConfigError(issues.0));
        };
        for g in &raw.missions.revokers {
            if !directory.has_group(g) {
                issues.push(
                    file,
                    locate_toml(text, &["missions"], Some("revokers")),
                    format!("missions.revokers: the directory has no group `{g}`"),
                );
            }
        }
        let approvals = crate::approve::ApprovalSettings::load(
            file,
            &raw.approvals,
            &approver_files,
            &agents.keys().cloned().collect(),
            &mut issues,
        );
        for p in raw.breakers.problems(&|g| directory.has_group(g)) {
            issues.push(file, locate_toml(text, &["breakers"], None), p);
        }
        let grants = GrantSettings {
            signing_key: raw.missions.signing_key.clone(),
            revokers: raw.missions.revokers.clone(),
        };
        let base = Detectors::new(ScanLimits {
            max_bytes: raw.limits.max_scan_bytes,
            max_decode_depth: raw.limits.max_decode_depth,
            ..ScanLimits::default()
        });
        let detectors = match base.clone().with_advice_rules(&raw.detectors.advice.rules) {
            Ok(d) => d,
            Err(e) => {
                let line = text
                    .lines()
                    .position(|l| l.trim() == "[[detectors.advice.rules]]")
                    .map(|i| i + 1);
                issues.push(file, line, format!("detectors.advice.rules: {e}"));
                base
            }
        };
        let policy_tests = raw
            .policy
            .tests
            .clone()
            .unwrap_or_else(|| format!("{}/tests", raw.policy.dir));
        let store = match raw.store {
            None => None,
            Some(toml::Value::String(url)) => Some(url),
            Some(_) => {
                issues.push(
                    file,
                    locate_toml(text, &[], Some("store")),
                    "`store` must be a string: `store = \"sqlite://warden.db\"` (before any table)",
                );
                None
            }
        };
        issues.finish(Config {
            name: raw.name.unwrap_or_else(|| "warden".into()),
            catalog,
            directory,
            templates,
            agents,
            policies,
            confidentiality,
            sensitive,
            detectors,
            limits: Limits {
                max_argument_bytes: raw.limits.max_argument_bytes,
            },
            policy_tests,
            servers: raw.servers,
            serve: raw.serve,
            store,
            audit: raw.audit,
            breakers: raw.breakers,
            demo: raw.demo,
            grants,
            identity,
            approvals,
        })
    }

    /// True when `label` is a confidentiality label (declared, or `channel:*`).
    pub fn is_confidentiality(&self, label: &str) -> bool {
        label.starts_with(crate::entity::CHANNEL_LABEL_PREFIX)
            || self.confidentiality.contains(label)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn memory_sources_read_files_and_list_one_folder_level_sorted() {
        let files = [
            ("warden.toml", "name = 'x'"),
            ("policies/b.cedar", "b"),
            ("policies/a.cedar", "a"),
            ("policies/tests/t.toml", "t"),
            ("policies-old/c.cedar", "c"),
        ];
        let src = MemorySources(
            files
                .iter()
                .map(|(p, t)| (p.to_string(), t.to_string()))
                .collect(),
        );
        assert_eq!(src.read("policies/a.cedar").unwrap(), "a");
        assert!(src.read("missing.toml").is_err());
        assert_eq!(
            src.list("policies/", ".cedar").unwrap(),
            vec!["policies/a.cedar", "policies/b.cedar"]
        );
    }
}
