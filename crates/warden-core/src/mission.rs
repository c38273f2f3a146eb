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

/// Where a mission may publish. From narrowest to widest: `none`, `principal`, `internal`,
/// `any` ([`PublishScope::within`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

    /// Its place from narrowest (0, `none`) to widest (3, `any`).
    pub fn rank(self) -> u8 {
        match self {
            PublishScope::None => 0,
            PublishScope::Principal => 1,
            PublishScope::Internal => 2,
            PublishScope::Any => 3,
        }
    }

    /// True when every audience this scope allows is one `other` allows too.
    pub fn within(self, other: PublishScope) -> bool {
        self.rank() <= other.rank()
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
    /// The mission it was narrowed from (`None`: a root, granted by a person).
    #[serde(default)]
    pub parent: Option<String>,
    /// Mission ids from the root to this one, inclusive (see [`Mission::depth`]).
    #[serde(default)]
    pub chain: Vec<String>,
    /// Every narrowing from the root to this one, in order. Each is enforced on every call, on
    /// top of the template: a narrowing can only take away.
    #[serde(default)]
    pub narrowings: Vec<crate::narrow::Narrowing>,
    /// How the grant was proven: `local` (a local token or a grant in this process), `jwt` (a
    /// principal's OIDC/JWT) or `trace` (a replayed trace). Set by the caller that grants.
    #[serde(default = "local_auth")]
    pub auth: String,
}

fn local_auth() -> String {
    "local".to_string()
}

impl Mission {
    /// How many narrowings below its root it is (0: a root).
    pub fn depth(&self) -> usize {
        self.chain.len().saturating_sub(1)
    }

    /// The root mission's id: the mission whose state (taint, usage) the whole chain shares.
    pub fn root(&self) -> &str {
        self.chain.first().map_or(self.id.as_str(), String::as_str)
    }
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
    /// The resource patterns as written (empty: any resource).
    pub fn resource_patterns(&self) -> &[String] {
        &self.resource_patterns
    }

    /// The host patterns as written (empty: any host).
    pub fn host_patterns(&self) -> &[String] {
        &self.host_patterns
    }

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
        let inside = |r: &str| self.resources.iter().any(|g| g.is_match(r));
        if !self.resources.is_empty() && !resource_within(inside, resource, spec) {
            return v(format!(
                "resource `{resource}` is outside the mission `{}`: it may touch {}",
                mission.id,
                self.resource_patterns.join(", ")
            ));
        }
        if let Some(allowed) = self.arg_values.get(&spec.name) {
            if let Some(text) = arg_refusal(allowed, spec, args, &mission.id) {
                return v(text);
            }
        }
        if let Some(text) = label_refusal(
            self.read_labels.as_ref(),
            spec,
            resource_labels,
            &mission.id,
        ) {
            return v(text);
        }
        // A template that names hosts reaches those only (outside the organisation).
        if !self.hosts.is_empty() {
            let named = |h: &str| self.names_host(h);
            if let Some(text) = host_refusal(
                named,
                &self.host_patterns,
                spec,
                args,
                audience,
                &mission.id,
            ) {
                return v(text);
            }
        }
        if let Some(text) = publish_refusal(self.publish_to, audience, mission) {
            return v(text);
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
        // A narrowed mission: every narrowing from its root holds as well.
        crate::narrow::check(
            self,
            mission,
            usage,
            spec,
            args,
            resource,
            resource_labels,
            audience,
            now_ms,
        )
    }
}

/// True when `resource` is inside what `inside` accepts: the resource as the upstream reads it
/// (its canonical form, see `crate::canon`), and the value as written when it carries
/// percent-escapes (an upstream that does not decode them reads that name).
pub(crate) fn resource_within(
    inside: impl Fn(&str) -> bool,
    resource: &str,
    spec: &ToolSpec,
) -> bool {
    match crate::canon::canonical_in(resource, spec.fold()) {
        None => inside(resource),
        Some(c) => inside(&c) && (!resource.contains('%') || inside(resource)),
    }
}

/// Why the call's arguments are outside `allowed` (argument → values), if they are.
pub(crate) fn arg_refusal(
    allowed: &BTreeMap<String, Vec<String>>,
    spec: &ToolSpec,
    args: &Value,
    mission: &str,
) -> Option<String> {
    for (arg, values) in allowed {
        if let Some(val) = args.get(arg) {
            let bad: Vec<String> = spec
                .values(arg, val)
                .into_iter()
                .filter(|x| !values.contains(x))
                .collect();
            if !bad.is_empty() {
                return Some(format!(
                    "`{arg}` = {} is outside the mission `{mission}`: it allows only {}",
                    bad.join(", "),
                    values.join(", ")
                ));
            }
        }
    }
    None
}

/// Why a read is over the label `ceiling`, if it is.
pub(crate) fn label_refusal(
    ceiling: Option<&BTreeSet<String>>,
    spec: &ToolSpec,
    resource_labels: &BTreeSet<String>,
    mission: &str,
) -> Option<String> {
    let ceiling = ceiling.filter(|_| spec.effect == Effect::Read)?;
    let over: Vec<String> = resource_labels
        .iter()
        .filter(|l| !ceiling.contains(*l) && !l.starts_with(crate::entity::CHANNEL_LABEL_PREFIX))
        .map(|l| format!("`{l}`"))
        .collect();
    (!over.is_empty()).then(|| {
        format!(
            "the mission `{mission}` may not read data labelled {}",
            over.join(", ")
        )
    })
}

/// Why a URL in the call reaches a host outside the organisation that `named` does not accept.
pub(crate) fn host_refusal(
    named: impl Fn(&str) -> bool,
    patterns: &[String],
    spec: &ToolSpec,
    args: &Value,
    audience: Option<&Audience>,
    mission: &str,
) -> Option<String> {
    let aud = audience?;
    for rule in &spec.audience {
        let crate::catalog::AudienceRule::Url(arg) = rule else {
            continue;
        };
        let Some(url) = args.get(arg).and_then(Value::as_str) else {
            continue;
        };
        let host = crate::catalog::url_host(url);
        if aud.external.contains(&host) && !named(&host) {
            return Some(format!(
                "host `{}` is outside the mission `{mission}`: it may reach {}",
                crate::engine::excerpt(&host),
                if patterns.is_empty() {
                    "no host outside the organisation".to_string()
                } else {
                    patterns.join(", ")
                }
            ));
        }
    }
    None
}

/// Why a publish to `audience` is wider than `scope`, if it is.
pub(crate) fn publish_refusal(
    scope: PublishScope,
    audience: Option<&Audience>,
    mission: &Mission,
) -> Option<String> {
    let aud = audience?;
    match scope {
        PublishScope::Any => None,
        PublishScope::Principal if aud.only(&mission.principal) => None,
        PublishScope::Internal if aud.external.is_empty() && aud.unknown.is_empty() => None,
        scope => Some(format!(
            "the mission `{}` may publish only to {}",
            mission.id,
            match scope {
                PublishScope::Principal => format!("its principal `{}`", mission.principal),
                PublishScope::Internal => "people inside the organisation".into(),
                _ => "no one".into(),
            }
        )),
    }
}
