//! Narrowing missions for sub-agents (attenuation).
//!
//! A mission can hand a sub-agent a child mission: the same template, principal and purpose,
//! with one more [`Narrowing`] on top of every narrowing its parent already carries. Two rules
//! keep a child inside its parent, and each holds on its own:
//!
//! - [`Engine::attenuate`](crate::engine::Engine::attenuate) refuses ([`WidenError`]) a narrowing
//!   that is wider than the parent's effective scope (the template ∩ every earlier narrowing) in
//!   any field;
//! - every call is checked against the template **and** every narrowing of the chain
//!   ([`check`], called by [`MissionTemplate::check`]), so a narrowing that slipped through
//!   (a hand-written mission, a token from elsewhere) still cannot widen anything.
//!
//! Glob coverage is decided soundly and conservatively: a child pattern is covered when it is
//! one of the parent's patterns, when it is a plain string a parent pattern matches, or when it
//! is a pattern whose every match starts (ends) with a literal that a parent `prefix*`
//! (`*suffix`) covers. Anything else is refused, even when it might be covered.
//!
//! A child shares its root's state: the taint of everything any mission of the chain read, and
//! its usage. A calls cap of a narrowing is spent per mission of the chain by the enforcement
//! pipeline (`warden-enforce`); record and byte caps are checked here against the shared usage,
//! which can only refuse earlier than a per-child count would.

use std::collections::{BTreeMap, BTreeSet};

use globset::GlobBuilder;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::ToolSpec;
use crate::config::Config;
use crate::directory::Audience;
use crate::mission::{
    arg_refusal, host_refusal, label_refusal, publish_refusal, resource_within, Budgets, Mission,
    MissionTemplate, MissionUsage, MissionViolation, PublishScope,
};
use crate::pattern::ToolPattern;

/// What one attenuation step narrows. Every field is optional: `None` leaves it as the parent
/// has it; a list, set or value replaces it and must lie within the parent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Narrowing {
    /// Tool patterns (`server.tool`, `server.*`, `*`), as in templates. An empty list: no tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Resource globs. An empty list: no resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<String>>,
    /// Hosts outside the organisation it may reach (globs, case-insensitive). An empty list:
    /// none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// A sooner expiry, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// Another agent (a sub-agent) to hold the mission: a configured agent that the template
    /// is for, which gains no tool the parent's agent may not use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Lower caps (calls, records, bytes); `None` in a field leaves that cap.
    #[serde(default, skip_serializing_if = "no_budgets")]
    pub budgets: Budgets,
    /// A lower label ceiling: the most sensitive labels it may read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_labels: Option<BTreeSet<String>>,
    /// A narrower audience to publish to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_to: Option<PublishScope>,
    /// Allowed values per tool (`server.tool`) and argument.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arg_values: Option<BTreeMap<String, BTreeMap<String, Vec<String>>>>,
}

fn no_budgets(b: &Budgets) -> bool {
    *b == Budgets::default()
}

/// Why a narrowing cannot be made: it would widen its parent, or names what does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WidenError {
    /// The narrowing is wider than the parent in `field`.
    #[error("`{field}` would widen the mission `{parent}`: {detail}")]
    Wider {
        /// The parent mission.
        parent: String,
        /// The field (`tools`, `resources`, `hosts`, `arg_values`, `read_labels`,
        /// `publish_to`, `budgets`, `expires_at_ms`, `agent`).
        field: &'static str,
        /// What is wider, with the values.
        detail: String,
    },
    /// A pattern that does not parse.
    #[error("`{field}`: `{pattern}` is not a valid pattern: {reason}")]
    BadPattern {
        /// The field.
        field: &'static str,
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The parent's template is not loaded.
    #[error("unknown mission template `{0}`")]
    UnknownTemplate(String),
    /// The new agent is not configured.
    #[error("unknown agent `{0}`")]
    UnknownAgent(String),
    /// The child id is empty or already in the chain.
    #[error("mission id `{0}` is empty or already in the chain it would extend")]
    BadId(String),
}

fn backticked<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let v: Vec<String> = items
        .into_iter()
        .map(|s| format!("`{}`", s.as_ref()))
        .collect();
    if v.is_empty() {
        "nothing".to_string()
    } else {
        v.join(", ")
    }
}

const GLOB_META: &[char] = &['*', '?', '[', ']', '{', '}', '\\', ','];

/// True when every string the glob `child` matches is matched by one of `parents` (globset
/// syntax, where `*` also matches `/`). Sound, not complete: when in doubt, false.
pub fn glob_covered(child: &str, parents: &[String], case_insensitive: bool) -> bool {
    let fold = |s: &str| {
        if case_insensitive {
            s.to_lowercase()
        } else {
            s.to_string()
        }
    };
    let child = fold(child);
    let literal = !child.contains(GLOB_META);
    let (prefix, suffix) = match (child.find(GLOB_META), child.rfind(GLOB_META)) {
        (Some(a), Some(b)) => (
            child.get(..a).unwrap_or(""),
            child.get(b + 1..).unwrap_or(""),
        ),
        _ => (child.as_str(), child.as_str()),
    };
    parents.iter().any(|p| {
        let p = fold(p);
        if p == child {
            return true;
        }
        if literal {
            return GlobBuilder::new(&p)
                .case_insensitive(case_insensitive)
                .build()
                .is_ok_and(|g| g.compile_matcher().is_match(&child));
        }
        if child.contains('\\') {
            return false;
        }
        // `P*` with a literal `P`: every string starting with `P`.
        if let Some(pre) = p.strip_suffix('*') {
            if !pre.contains(GLOB_META) && prefix.starts_with(pre) {
                return true;
            }
        }
        // `*S` with a literal `S`: every string ending with `S`.
        if let Some(suf) = p.strip_prefix('*') {
            if !suf.contains(GLOB_META) && suffix.ends_with(suf) {
                return true;
            }
        }
        false
    })
}

/// True when every tool `child` names is named by one of `parents`.
pub fn tool_covered(child: &ToolPattern, parents: &[ToolPattern]) -> bool {
    parents.iter().any(|p| match (p, child) {
        (ToolPattern::All, _) => true,
        (ToolPattern::Server(s), ToolPattern::Server(c)) => s == c,
        (ToolPattern::Server(s), ToolPattern::Tool(t)) => {
            t.split_once('.').is_some_and(|(srv, _)| srv == s)
        }
        (ToolPattern::Tool(p), ToolPattern::Tool(c)) => p == c,
        _ => false,
    })
}

fn parse_tools(field: &[String]) -> Result<Vec<ToolPattern>, WidenError> {
    field
        .iter()
        .map(|p| {
            ToolPattern::parse(p).ok_or_else(|| WidenError::BadPattern {
                field: "tools",
                pattern: p.clone(),
                reason: "a tool pattern is `server.tool`, `server.*` or `*`".into(),
            })
        })
        .collect()
}

fn check_globs(
    field: &'static str,
    patterns: &[String],
    case_insensitive: bool,
) -> Result<(), WidenError> {
    for p in patterns {
        GlobBuilder::new(p)
            .case_insensitive(case_insensitive)
            .build()
            .map_err(|e| WidenError::BadPattern {
                field,
                pattern: p.clone(),
                reason: e.kind().to_string(),
            })?;
    }
    Ok(())
}

/// True when the tool is allowed by the template and every narrowing.
pub fn allows_tool(template: &MissionTemplate, narrowings: &[Narrowing], tool: &str) -> bool {
    template.allows_tool(tool)
        && narrowings.iter().all(|n| {
            n.tools.as_ref().is_none_or(|ts| {
                ts.iter()
                    .any(|t| ToolPattern::parse(t).is_some_and(|p| p.matches(tool)))
            })
        })
}

/// Refuse `n` unless it lies within `parent` (its template ∩ its narrowings) in every field.
/// `config` knows the agents and the catalog.
pub fn within(
    config: &Config,
    template: &MissionTemplate,
    parent: &Mission,
    n: &Narrowing,
) -> Result<(), WidenError> {
    let wider = |field: &'static str, detail: String| WidenError::Wider {
        parent: parent.id.clone(),
        field,
        detail,
    };
    let earlier = &parent.narrowings;
    if let Some(tools) = &n.tools {
        let child = parse_tools(tools)?;
        let mut sets = vec![template.tools.clone()];
        for e in earlier {
            if let Some(t) = &e.tools {
                sets.push(t.iter().filter_map(|p| ToolPattern::parse(p)).collect());
            }
        }
        for (c, raw) in child.iter().zip(tools) {
            if let Some(set) = sets.iter().find(|s| !tool_covered(c, s)) {
                return Err(wider(
                    "tools",
                    format!(
                        "`{raw}` is not within {}",
                        backticked(set.iter().map(ToString::to_string))
                    ),
                ));
            }
        }
    }
    let globs = |field: &'static str,
                 child: &Option<Vec<String>>,
                 base: &[String],
                 of: fn(&Narrowing) -> &Option<Vec<String>>,
                 ci: bool|
     -> Result<(), WidenError> {
        let Some(child) = child else { return Ok(()) };
        check_globs(field, child, ci)?;
        let mut sets: Vec<&[String]> = Vec::new();
        if !base.is_empty() {
            sets.push(base);
        }
        for e in earlier {
            if let Some(v) = of(e) {
                sets.push(v);
            }
        }
        for c in child {
            if let Some(set) = sets.iter().find(|s| !glob_covered(c, s, ci)) {
                return Err(wider(
                    field,
                    format!("`{c}` is not within {}", backticked(set.iter())),
                ));
            }
        }
        Ok(())
    };
    globs(
        "resources",
        &n.resources,
        template.resource_patterns(),
        |e| &e.resources,
        false,
    )?;
    globs(
        "hosts",
        &n.hosts,
        template.host_patterns(),
        |e| &e.hosts,
        true,
    )?;
    if let Some(av) = &n.arg_values {
        let mut sets = vec![&template.arg_values];
        sets.extend(earlier.iter().filter_map(|e| e.arg_values.as_ref()));
        for (tool, args) in av {
            for (arg, values) in args {
                for set in &sets {
                    let Some(allowed) = set.get(tool).and_then(|a| a.get(arg)) else {
                        continue;
                    };
                    let extra: Vec<&String> =
                        values.iter().filter(|v| !allowed.contains(v)).collect();
                    if !extra.is_empty() {
                        return Err(wider(
                            "arg_values",
                            format!(
                                "`{tool}` `{arg}` = {} is not within {}",
                                backticked(extra),
                                backticked(allowed)
                            ),
                        ));
                    }
                }
            }
        }
    }
    if let Some(labels) = &n.read_labels {
        let mut sets: Vec<&BTreeSet<String>> = template.read_labels.iter().collect();
        sets.extend(earlier.iter().filter_map(|e| e.read_labels.as_ref()));
        for set in sets {
            let extra: Vec<&String> = labels.iter().filter(|l| !set.contains(*l)).collect();
            if !extra.is_empty() {
                return Err(wider(
                    "read_labels",
                    format!(
                        "{} is above the ceiling {}",
                        backticked(extra),
                        backticked(set)
                    ),
                ));
            }
        }
    }
    if let Some(scope) = n.publish_to {
        let parent_scope = earlier
            .iter()
            .filter_map(|e| e.publish_to)
            .fold(template.publish_to, |a, b| if b.within(a) { b } else { a });
        if !scope.within(parent_scope) {
            return Err(wider(
                "publish_to",
                format!(
                    "`{}` is wider than `{}`",
                    scope.as_str(),
                    parent_scope.as_str()
                ),
            ));
        }
    }
    for (name, child, of) in [
        (
            "calls",
            n.budgets.calls,
            (|b: &Budgets| b.calls) as fn(&Budgets) -> Option<u64>,
        ),
        ("records", n.budgets.records, |b: &Budgets| b.records),
        ("bytes", n.budgets.bytes, |b: &Budgets| b.bytes),
    ] {
        let Some(c) = child else { continue };
        let cap = std::iter::once(of(&template.budgets))
            .chain(earlier.iter().map(|e| of(&e.budgets)))
            .flatten()
            .min();
        if let Some(cap) = cap.filter(|cap| c > *cap) {
            return Err(wider(
                "budgets",
                format!("{c} {name} is more than the {cap} left to it"),
            ));
        }
    }
    if let Some(at) = n.expires_at_ms {
        if at > parent.expires_at_ms {
            return Err(wider(
                "expires_at_ms",
                format!(
                    "{at} is later than the parent's expiry {}",
                    parent.expires_at_ms
                ),
            ));
        }
    }
    if let Some(agent) = &n.agent {
        let Some(new) = config.agents.get(agent) else {
            return Err(WidenError::UnknownAgent(agent.clone()));
        };
        if !template.agents.is_empty() && !template.agents.contains(agent) {
            return Err(wider(
                "agent",
                format!(
                    "the template `{}` is only for {}",
                    template.name,
                    backticked(&template.agents)
                ),
            ));
        }
        let old = config.agents.get(&parent.agent);
        let mut all = parent.narrowings.clone();
        all.push(n.clone());
        for spec in config.catalog.tools() {
            if new.may_use(&spec.name)
                && allows_tool(template, &all, &spec.name)
                && !old.is_some_and(|a| a.may_use(&spec.name))
            {
                return Err(wider(
                    "agent",
                    format!(
                        "agent `{agent}` could use `{}`, which agent `{}` may not",
                        spec.name, parent.agent
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Check a call against every narrowing of `mission` (the template itself is checked by
/// [`MissionTemplate::check`], which calls this). Refusals name the mission and what it allows.
#[allow(clippy::too_many_arguments)]
pub fn check(
    template: &MissionTemplate,
    mission: &Mission,
    usage: &MissionUsage,
    spec: &ToolSpec,
    args: &Value,
    resource: &str,
    resource_labels: &BTreeSet<String>,
    audience: Option<&Audience>,
    now_ms: i64,
) -> Result<(), MissionViolation> {
    if mission.narrowings.is_empty() {
        return Ok(());
    }
    let v = |s: String| Err(MissionViolation(s));
    let id = &mission.id;
    // The agent holding it is the one the last narrowing that names an agent gave it to.
    if let Some(agent) = mission
        .narrowings
        .iter()
        .rev()
        .find_map(|n| n.agent.as_ref())
    {
        if *agent != mission.agent {
            return v(format!(
                "the mission `{id}` was narrowed to agent `{agent}`, not `{}`",
                mission.agent
            ));
        }
    }
    if !template.agents.is_empty() && !template.agents.contains(&mission.agent) {
        return v(format!(
            "the mission `{id}` ({}) is not for agent `{}`",
            template.name, mission.agent
        ));
    }
    for n in &mission.narrowings {
        if let Some(at) = n.expires_at_ms {
            if now_ms >= at {
                return v(format!("the mission `{id}` expired"));
            }
        }
        if let Some(tools) = &n.tools {
            let ok = tools
                .iter()
                .any(|t| ToolPattern::parse(t).is_some_and(|p| p.matches(&spec.name)));
            if !ok {
                return v(format!(
                    "`{}` is outside the mission `{id}` ({}, narrowed): it may use {}",
                    spec.name,
                    template.name,
                    backticked(tools)
                ));
            }
        }
        if let Some(patterns) = &n.resources {
            let matchers: Vec<_> = patterns
                .iter()
                .filter_map(|p| GlobBuilder::new(p).build().ok())
                .map(|g| g.compile_matcher())
                .collect();
            let inside = |r: &str| matchers.iter().any(|g| g.is_match(r));
            if !resource_within(inside, resource, spec) {
                return v(format!(
                    "resource `{resource}` is outside the mission `{id}`: it may touch {}",
                    if patterns.is_empty() {
                        "nothing".to_string()
                    } else {
                        patterns.join(", ")
                    }
                ));
            }
        }
        if let Some(allowed) = n.arg_values.as_ref().and_then(|a| a.get(&spec.name)) {
            if let Some(text) = arg_refusal(allowed, spec, args, id) {
                return v(text);
            }
        }
        if let Some(text) = label_refusal(n.read_labels.as_ref(), spec, resource_labels, id) {
            return v(text);
        }
        if let Some(patterns) = &n.hosts {
            let matchers: Vec<_> = patterns
                .iter()
                .filter_map(|p| GlobBuilder::new(p).case_insensitive(true).build().ok())
                .map(|g| g.compile_matcher())
                .collect();
            let named = |h: &str| matchers.iter().any(|g| g.is_match(h));
            if let Some(text) = host_refusal(named, patterns, spec, args, audience, id) {
                return v(text);
            }
        }
        if let Some(scope) = n.publish_to {
            if let Some(text) = publish_refusal(scope, audience, mission) {
                return v(text);
            }
        }
        for (name, cap, used) in [
            ("records", n.budgets.records, usage.records),
            ("bytes", n.budgets.bytes, usage.bytes),
        ] {
            if let Some(max) = cap.filter(|max| used >= *max) {
                return v(format!(
                    "the mission `{id}` has used its budget of {max} {name}"
                ));
            }
        }
        if let (Some(max), Some(count)) = (n.budgets.records, &spec.count) {
            crate::budget::check(&spec.name, count, args, max, usage.records, id)
                .map_err(MissionViolation)?;
        }
    }
    Ok(())
}

/// The calls caps to spend a call on, for each mission of the chain from the root to
/// `mission`: the template's cap under the root's id, and under a narrowed mission's id the cap
/// its own narrowing sets (at most what it inherited). A mission whose narrowing sets no calls
/// cap is left out: an ancestor's count, with the same cap, covers its calls. The enforcement
/// pipeline spends one call on each and denies when any is exhausted.
pub fn calls_caps(template: &MissionTemplate, mission: &Mission) -> Vec<(String, u64)> {
    let mut cap = template.budgets.calls;
    let mut out = Vec::new();
    let root = mission.root().to_string();
    if let Some(c) = cap {
        out.push((root, c));
    }
    for (id, n) in mission.chain.iter().skip(1).zip(&mission.narrowings) {
        if let Some(own) = n.budgets.calls {
            let c = cap.map_or(own, |c| c.min(own));
            cap = Some(c);
            out.push((id.clone(), c));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn glob_coverage_is_sound() {
        // A plain string inside a parent glob.
        assert!(glob_covered("docs/public/faq.md", &v(&["docs/**"]), false));
        assert!(glob_covered("eng-help", &v(&["eng-*"]), false));
        // Equal patterns.
        assert!(glob_covered("docs/**", &v(&["docs/**"]), false));
        // Prefix and suffix globs.
        assert!(glob_covered("eng-help-*", &v(&["eng-*"]), false));
        assert!(glob_covered(
            "api.*.vendor.example",
            &v(&["*.vendor.example"]),
            true
        ));
        assert!(glob_covered(
            "API.vendor.example",
            &v(&["*.vendor.example"]),
            true
        ));
        // Wider, or not provably narrower: refused.
        assert!(!glob_covered("*", &v(&["eng-*"]), false));
        assert!(!glob_covered("e*", &v(&["eng-*"]), false));
        assert!(!glob_covered("eng-?", &v(&["eng-help"]), false));
        assert!(!glob_covered("{eng,all}-*", &v(&["eng-*"]), false));
        assert!(!glob_covered("eng-[a-z]*", &v(&["eng-h*"]), false));
        assert!(!glob_covered("docs/*", &v(&["docs/**"]), false));
        assert!(!glob_covered("eng\\-*", &v(&["eng-*"]), false));
        assert!(!glob_covered("*.example", &v(&["*.vendor.example"]), true));
        assert!(!glob_covered("EVIL.example", &v(&["evil.example"]), false));
    }

    #[test]
    fn tool_coverage_follows_the_patterns() {
        let p = |s: &str| ToolPattern::parse(s).unwrap();
        let parents = vec![p("forum.*"), p("logs.query_logs")];
        assert!(tool_covered(&p("forum.read_thread"), &parents));
        assert!(tool_covered(&p("forum.*"), &parents));
        assert!(tool_covered(&p("logs.query_logs"), &parents));
        assert!(!tool_covered(&p("logs.*"), &parents));
        assert!(!tool_covered(&p("*"), &parents));
        assert!(!tool_covered(&p("files.read_file"), &parents));
        assert!(tool_covered(&p("*"), &[ToolPattern::All]));
    }

    #[test]
    fn calls_caps_follow_the_chain() {
        let mut m = Mission {
            id: "c".into(),
            template: "t".into(),
            agent: "a".into(),
            principal: "p".into(),
            purpose: String::new(),
            granted_at_ms: 0,
            expires_at_ms: 1,
            parent: Some("b".into()),
            chain: v(&["a", "b", "c"]),
            narrowings: vec![Narrowing::default(), Narrowing::default()],
            auth: "local".into(),
        };
        if let Some(n) = m.narrowings.get_mut(1) {
            n.budgets.calls = Some(500);
        }
        let caps = |calls: Option<u64>| {
            let text = format!(
                "[t]\ntools = [\"*\"]\nlifetime = \"1h\"\n{}",
                calls.map(|c| format!("calls = {c}\n")).unwrap_or_default()
            );
            let mut issues = crate::error::Issues::default();
            let ts =
                crate::mission::parse_templates("m.toml", &text, &BTreeSet::new(), &mut issues);
            calls_caps(ts.get("t").unwrap(), &m)
        };
        // The child's own cap is at most what it inherited.
        assert_eq!(
            caps(Some(100)),
            vec![("a".to_string(), 100), ("c".to_string(), 100)]
        );
        assert_eq!(caps(None), vec![("c".to_string(), 500)]);
        assert_eq!(m.depth(), 2);
        assert_eq!(m.root(), "a");
        m.chain.clear();
        assert_eq!(m.root(), "c");
    }
}
