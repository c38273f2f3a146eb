//! Missions: task-scoped, expiring grants from a person to an agent.
//!
//! A template (in config) says which tools and resources a kind of task may use, the highest
//! labels it may read, where it may publish, which effects need approval, its budgets and its
//! lifetime. A grant binds a template to an agent, a principal, the principal's purpose (their own
//! words: trusted text) and an expiry. Effective rights are the agent's ceiling ∩ the mission's
//! scope ∩ the principal's own rights; this module checks the middle term.

use std::collections::{BTreeMap, BTreeSet};

use globset::{Glob, GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::ToolSpec;
use crate::directory::Audience;
use crate::error::{locate_toml, Issues};
use crate::model::Effect;
use crate::pattern::ToolPattern;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    #[serde(default)]
    description: String,
    tools: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    read_labels: Option<Vec<String>>,
    #[serde(default)]
    publish_to: Option<String>,
    #[serde(default)]
    approval_effects: Vec<String>,
    #[serde(default)]
    agents: Vec<String>,
    lifetime: String,
    #[serde(default)]
    calls: Option<u64>,
    #[serde(default)]
    records: Option<u64>,
    #[serde(default)]
    bytes: Option<u64>,
    #[serde(default)]
    arg_values: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    fields: Option<Vec<String>>,
    #[serde(default)]
    deny_fields: Vec<String>,
}

/// Where a mission may publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PublishScope {
    /// Anywhere the rest of policy allows.
    Any,
    /// Only to the principal.
    Principal,
    /// Only inside the organisation.
    Internal,
    /// Never.
    None,
}

impl PublishScope {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            PublishScope::Any => "any",
            PublishScope::Principal => "principal",
            PublishScope::Internal => "internal",
            PublishScope::None => "none",
        }
    }
}

/// A mission template.
#[derive(Debug, Clone)]
pub struct MissionTemplate {
    /// Template name.
    pub name: String,
    /// What the task is for.
    pub description: String,
    /// Tools the mission may use.
    pub tools: Vec<ToolPattern>,
    resources: Vec<GlobMatcher>,
    resource_patterns: Vec<String>,
    /// Hosts outside the organisation the mission may reach (globs, case-insensitive; empty:
    /// any, and fetching from one sends what the mission holds).
    hosts: Vec<GlobMatcher>,
    host_patterns: Vec<String>,
    /// The most sensitive labels it may read (`None`: bounded only by the principal's clearances).
    pub read_labels: Option<BTreeSet<String>>,
    /// Where it may publish.
    pub publish_to: PublishScope,
    /// Effects that always need a person's approval.
    pub approval_effects: BTreeSet<Effect>,
    /// Agents that may receive the mission (empty: any).
    pub agents: Vec<String>,
    /// Lifetime in seconds.
    pub lifetime_secs: i64,
    /// Budgets.
    pub budgets: Budgets,
    /// Allowed values per tool and argument.
    pub arg_values: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// Fields its query arguments may read (`fields`, `deny_fields`; see [`crate::query`]).
    pub fields: crate::query::FieldScope,
}

/// Budgets of a mission; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budgets {
    /// Tool calls.
    pub calls: Option<u64>,
    /// Records read.
    pub records: Option<u64>,
    /// Output bytes read.
    pub bytes: Option<u64>,
}

/// A mission granted to an agent for a principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mission {
    /// Mission id.
    pub id: String,
    /// Template name.
    pub template: String,
    /// The agent.
    pub agent: String,
    /// The person it acts for.
    pub principal: String,
    /// The principal's own words.
    pub purpose: String,
    /// Granted at, ms since the Unix epoch.
    pub granted_at_ms: i64,
    /// Expires at, ms since the Unix epoch.
    pub expires_at_ms: i64,
}

/// What a mission has used so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissionUsage {
    /// Calls decided allow.
    pub calls: u64,
    /// Records returned.
    pub records: u64,
    /// Output bytes returned.
    pub bytes: u64,
}

/// Why a mission refuses a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissionViolation(pub String);

/// Parse a lifetime like `90s`, `30m`, `2h`, `1d`.
pub fn parse_duration_secs(s: &str) -> Option<i64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = num.parse().ok()?;
    let mult = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult).filter(|v| *v > 0)
}

/// Parse mission templates from TOML (`[name]` tables).
pub fn parse_templates(
    file: &str,
    text: &str,
    known_labels: &BTreeSet<String>,
    issues: &mut Issues,
) -> BTreeMap<String, MissionTemplate> {
    let raw: BTreeMap<String, RawTemplate> = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let line = e.span().map(|s| crate::error::line_of(text, s.start));
            issues.push(file, line, e.message().to_string());
            return BTreeMap::new();
        }
    };
    let mut out = BTreeMap::new();
    for (name, t) in raw {
        let before = issues.0.len();
        let mut err = |key: &str, msg: String| {
            issues.push(
                file,
                locate_toml(text, &[&name], Some(key)),
                format!("mission template `{name}`: {msg}"),
            );
        };
        let lifetime = parse_duration_secs(&t.lifetime);
        if lifetime.is_none() {
            err(
                "lifetime",
                format!(
                    "lifetime `{}` is not a duration like `30m` or `2h`",
                    t.lifetime
                ),
            );
        }
        let mut tools = Vec::new();
        for p in &t.tools {
            match ToolPattern::parse(p) {
                Some(tp) => tools.push(tp),
                None => err(
                    "tools",
                    format!("`{p}` is not a tool pattern (`server.tool`, `server.*` or `*`)"),
                ),
            }
        }
        let mut resources = Vec::new();
        for p in &t.resources {
            match Glob::new(p) {
                Ok(g) => resources.push(g.compile_matcher()),
                Err(e) => err("resources", format!("invalid resource pattern `{p}`: {e}")),
            }
        }
        let mut hosts = Vec::new();
        for p in &t.hosts {
            match GlobBuilder::new(p).case_insensitive(true).build() {
                Ok(g) => hosts.push(g.compile_matcher()),
                Err(e) => err("hosts", format!("invalid host pattern `{p}`: {e}")),
            }
        }
        if let Some(rl) = &t.read_labels {
            for l in rl {
                if !known_labels.contains(l) {
                    err("read_labels", format!("unknown label `{l}`"));
                }
            }
        }
        let publish_to = match t.publish_to.as_deref() {
            None | Some("any") => PublishScope::Any,
            Some("principal") => PublishScope::Principal,
            Some("internal") => PublishScope::Internal,
            Some("none") => PublishScope::None,
            Some(o) => {
                err(
                    "publish_to",
                    format!("publish_to must be any, principal, internal or none, not `{o}`"),
                );
                PublishScope::Any
            }
        };
        let mut approval_effects = BTreeSet::new();
        for e in &t.approval_effects {
            match Effect::parse(e) {
                Some(e) => {
                    approval_effects.insert(e);
                }
                None => err("approval_effects", format!("unknown effect `{e}`")),
            }
        }
        if issues.0.len() > before {
            continue;
        }
        out.insert(
            name.clone(),
            MissionTemplate {
                name,
                description: t.description,
                tools,
                resources,
                resource_patterns: t.resources,
                hosts,
                host_patterns: t.hosts,
                read_labels: t.read_labels.map(|v| v.into_iter().collect()),
                publish_to,
                approval_effects,
                agents: t.agents,
                lifetime_secs: lifetime.unwrap_or(0),
                budgets: Budgets {
                    calls: t.calls,
                    records: t.records,
                    bytes: t.bytes,
                },
                arg_values: t.arg_values,
                fields: crate::query::FieldScope::new(t.fields.as_deref(), &t.deny_fields),
            },
        );
    }
    out
}

impl MissionTemplate {
    /// Whether the template names `host` among the hosts it may reach.
    pub fn names_host(&self, host: &str) -> bool {
        self.hosts.iter().any(|g| g.is_match(host))
    }

    /// True when the mission may ever use the tool.
    pub fn allows_tool(&self, tool: &str) -> bool {
        self.tools.iter().any(|p| p.matches(tool))
    }

    /// Check a call against the mission's scope, budgets and expiry.
    #[allow(clippy::too_many_arguments)]
    pub fn check(
        &self,
        mission: &Mission,
        usage: &MissionUsage,
        spec: &ToolSpec,
        args: &Value,
        resource: &str,
        resource_labels: &BTreeSet<String>,
        audience: Option<&Audience>,
        now_ms: i64,
    ) -> Result<(), MissionViolation> {
        let v = |s: String| Err(MissionViolation(s));
        if now_ms >= mission.expires_at_ms {
            return v(format!("the mission `{}` expired", mission.id));
        }
        if now_ms < mission.granted_at_ms {
            return v(format!("the mission `{}` is not valid yet", mission.id));
        }
        if !self.allows_tool(&spec.name) {
            return v(format!(
                "`{}` is outside the mission `{}` ({}): it may use {}",
                spec.name,
                mission.id,
                self.name,
                self.tools
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        // The resource as the upstream reads it (its canonical form, see `crate::canon`) must
        // be inside; so must the value as written when it carries percent-escapes (an upstream
        // that does not decode them reads that name).
        let inside = |r: &str| self.resources.iter().any(|g| g.is_match(r));
        let within = match crate::canon::canonical_in(resource, spec.fold()) {
            None => inside(resource),
            Some(c) => inside(&c) && (!resource.contains('%') || inside(resource)),
        };
        if !self.resources.is_empty() && !within {
            return v(format!(
                "resource `{resource}` is outside the mission `{}`: it may touch {}",
                mission.id,
                self.resource_patterns.join(", ")
            ));
        }
        if let Some(allowed) = self.arg_values.get(&spec.name) {
            for (arg, values) in allowed {
                if let Some(val) = args.get(arg) {
                    let bad: Vec<String> = spec
                        .values(arg, val)
                        .into_iter()
                        .filter(|x| !values.contains(x))
                        .collect();
                    if !bad.is_empty() {
                        return v(format!(
                            "`{arg}` = {} is outside the mission `{}`: it allows only {}",
                            bad.join(", "),
                            mission.id,
                            values.join(", ")
                        ));
                    }
                }
            }
        }
        if spec.effect == Effect::Read {
            if let Some(ceiling) = &self.read_labels {
                let over: Vec<&String> = resource_labels
                    .iter()
                    .filter(|l| {
                        !ceiling.contains(*l) && !l.starts_with(crate::entity::CHANNEL_LABEL_PREFIX)
                    })
                    .collect();
                if !over.is_empty() {
                    return v(format!(
                        "the mission `{}` may not read data labelled {}",
                        mission.id,
                        over.iter()
                            .map(|l| format!("`{l}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        }
        // A template that names hosts reaches those only (outside the organisation).
        if let (false, Some(aud)) = (self.hosts.is_empty(), audience) {
            for rule in &spec.audience {
                let crate::catalog::AudienceRule::Url(arg) = rule else {
                    continue;
                };
                let Some(url) = args.get(arg).and_then(Value::as_str) else {
                    continue;
                };
                let host = crate::catalog::url_host(url);
                if aud.external.contains(&host) && !self.names_host(&host) {
                    return v(format!(
                        "host `{}` is outside the mission `{}`: it may reach {}",
                        crate::engine::excerpt(&host),
                        mission.id,
                        self.host_patterns.join(", ")
                    ));
                }
            }
        }
        if let Some(aud) = audience {
            match self.publish_to {
                PublishScope::Any => {}
                PublishScope::Principal if aud.only(&mission.principal) => {}
                PublishScope::Internal if aud.external.is_empty() && aud.unknown.is_empty() => {}
                scope => {
                    return v(format!(
                        "the mission `{}` may publish only to {}",
                        mission.id,
                        match scope {
                            PublishScope::Principal =>
                                format!("its principal `{}`", mission.principal),
                            PublishScope::Internal => "people inside the organisation".into(),
                            _ => "no one".into(),
                        }
                    ))
                }
            }
        }
        if let Some(max) = self.budgets.calls {
            if usage.calls >= max {
                return v(format!(
                    "the mission `{}` has used its budget of {max} calls",
                    mission.id
                ));
            }
        }
        if let Some(max) = self.budgets.records {
            if usage.records >= max {
                return v(format!(
                    "the mission `{}` has used its budget of {max} records",
                    mission.id
                ));
            }
        }
        if let Some(max) = self.budgets.bytes {
            if usage.bytes >= max {
                return v(format!(
                    "the mission `{}` has used its budget of {max} bytes",
                    mission.id
                ));
            }
        }
        // Before the call: the records it asks for, and the fields its queries read.
        if let (Some(max), Some(count)) = (self.budgets.records, &spec.count) {
            crate::budget::check(&spec.name, count, args, max, usage.records, &mission.id)
                .map_err(MissionViolation)?;
        }
        self.fields
            .check(&spec.name, &spec.queries, args)
            .map_err(MissionViolation)?;
        Ok(())
    }
}
