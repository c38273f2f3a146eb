//! Anomaly detectors: what trips a circuit breaker.
//!
//! Each detector counts, in a sliding window made of buckets, something a healthy agent does
//! little of: calls, denied calls, distinct sensitive resources, records and bytes returned,
//! attempts at exposure, tools it never used while it was learned. It counts at the scopes its
//! configuration names (session, mission, agent, principal, global: see [`Scope`]), and when a
//! count goes over its threshold it returns a [`Trip`] naming the breaker's key and a reason in
//! words, with the numbers.
//!
//! Nothing here reads a clock or does I/O: the caller passes the time of each event. Memory is
//! bounded: at most `max_keys` scope keys (and as many agents' baselines) are kept; a key idle
//! for `idle_secs` is forgotten, and when the table is full the idlest key goes first.

mod settings;
mod window;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

pub use settings::{
    BreakerSettings, CallRate, DeniedRatio, ExposureAttempts, NewTools, Returned, Scope,
    SensitiveResources,
};
use window::{Counter, Distinct};

use crate::model::Outcome;

/// The detectors, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Detector {
    /// Calls per window.
    CallRate,
    /// The share of denied calls.
    DeniedRatio,
    /// Distinct sensitive resources touched.
    SensitiveResources,
    /// Records returned.
    Records,
    /// Bytes returned.
    Bytes,
    /// Calls held or denied because they would expose data.
    Exposure,
    /// Tools new to the agent.
    NewTools,
}

impl Detector {
    /// Its name, as audit records and breaker states write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Detector::CallRate => "call_rate",
            Detector::DeniedRatio => "denied_ratio",
            Detector::SensitiveResources => "sensitive_resources",
            Detector::Records => "records",
            Detector::Bytes => "bytes",
            Detector::Exposure => "exposure",
            Detector::NewTools => "new_tools",
        }
    }
}

/// A detector went over its threshold: the breaker `scope_key` should trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trip {
    /// The breaker's key: `global`, `principal:NAME`, `agent:NAME`, `mission:ID`,
    /// `session:NAME`.
    pub scope_key: String,
    /// The detector that tripped.
    pub detector: Detector,
    /// Why, in words, with the numbers.
    pub reason: String,
}

/// Who a call belongs to: one key per scope.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    /// The session.
    pub session: &'a str,
    /// The mission (the root of its chain counts for all of it: pass the root's id).
    pub mission: &'a str,
    /// The agent.
    pub agent: &'a str,
    /// The principal the mission acts for.
    pub principal: &'a str,
}

impl Who<'_> {
    /// The breaker key of `scope` for this call.
    pub fn key(&self, scope: Scope) -> String {
        match scope {
            Scope::Global => "global".to_string(),
            Scope::Principal => format!("principal:{}", self.principal),
            Scope::Agent => format!("agent:{}", self.agent),
            Scope::Mission => format!("mission:{}", self.mission),
            Scope::Session => format!("session:{}", self.session),
        }
    }
}

/// A decision, as the detectors see it.
#[derive(Debug, Clone, Copy)]
pub struct DecisionSeen<'a> {
    /// Whose call.
    pub who: Who<'a>,
    /// The catalog name of the tool (`server.tool`).
    pub tool: &'a str,
    /// The outcome.
    pub outcome: Outcome,
    /// The resource the call reads or writes, if the catalog names one.
    pub resource: Option<&'a str>,
    /// The labels of that resource.
    pub resource_labels: &'a BTreeSet<String>,
    /// How many people the call would expose data to (0: none).
    pub exposed: u64,
    /// When, in Unix milliseconds.
    pub now_ms: i64,
}

/// An output an allowed call returned, as the detectors see it.
#[derive(Debug, Clone, Copy)]
pub struct OutputSeen<'a> {
    /// Whose call.
    pub who: Who<'a>,
    /// The records it held (as the catalog counts them).
    pub records: u64,
    /// Its length in bytes.
    pub bytes: u64,
    /// The mission's `records` budget, if it has one.
    pub records_budget: Option<u64>,
    /// When, in Unix milliseconds.
    pub now_ms: i64,
}

/// The windows of one scope key.
#[derive(Debug, Default)]
struct KeyState {
    last_ms: i64,
    calls: Counter,
    rate: Counter,
    denied: Counter,
    sensitive: Distinct,
    records: Counter,
    bytes: Counter,
    exposure: Counter,
    new_tools: Distinct,
}

/// What an agent is known to use.
#[derive(Debug, Default)]
struct Baseline {
    last_ms: i64,
    calls: u64,
    tools: BTreeSet<String>,
}

/// The most tools a baseline keeps.
const MAX_BASELINE_TOOLS: usize = 4_096;

/// The detectors and their windows.
#[derive(Debug)]
pub struct Anomalies {
    settings: Arc<BreakerSettings>,
    /// When idle keys are next looked for.
    next_sweep: i64,
    sensitive: BTreeSet<String>,
    keys: HashMap<String, KeyState>,
    baselines: HashMap<String, Baseline>,
}

impl Anomalies {
    /// Detectors with `settings`; `sensitive` is the configuration's sensitive labels, used
    /// when `[breakers.sensitive_resources] labels` is empty.
    pub fn new(settings: BreakerSettings, sensitive: &BTreeSet<String>) -> Anomalies {
        let sensitive = if settings.sensitive_resources.labels.is_empty() {
            sensitive.clone()
        } else {
            settings
                .sensitive_resources
                .labels
                .iter()
                .cloned()
                .collect()
        };
        Anomalies {
            settings: Arc::new(settings),
            next_sweep: i64::MIN,
            sensitive,
            keys: HashMap::new(),
            baselines: HashMap::new(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &BreakerSettings {
        self.settings.as_ref()
    }

    /// How many scope keys have windows now.
    pub fn tracked(&self) -> usize {
        self.keys.len()
    }

    /// Forget what was counted for `key` (its breaker was reset: it starts again from zero).
    pub fn reset(&mut self, key: &str) {
        // An agent's usual tools are kept: what it learned was not the anomaly.
        self.keys.remove(key);
    }

    /// Count a decision; the trips it causes (at most one per detector: the widest scope).
    pub fn decided(&mut self, d: &DecisionSeen<'_>) -> Vec<Trip> {
        if !self.settings.enabled {
            return Vec::new();
        }
        let now = d.now_ms;
        self.evict(now);
        let s = self.settings.clone();
        let sensitive = d
            .resource
            .filter(|_| d.resource_labels.iter().any(|l| self.sensitive.contains(l)));
        let new_tool = self.learn(d.who.agent, d.tool, now);
        let denied = d.outcome == Outcome::Deny;
        let exposing = d.outcome != Outcome::Allow && d.exposed > 0;
        let mut trips = Vec::new();

        let w = ms(s.call_rate.window_secs);
        let found = self.each(&s.call_rate.scopes, d.who, now, |k, key| {
            let n = k.rate.add(now, w, 1);
            (n > s.call_rate.max_calls).then(|| {
                let key = describe(key);
                format!(
                    "{key} made {} calls in {}; the limit is {}",
                    thousands(n),
                    span(s.call_rate.window_secs),
                    thousands(s.call_rate.max_calls)
                )
            })
        });
        push(&mut trips, Detector::CallRate, found);

        let w = ms(s.denied_ratio.window_secs);
        let r = &s.denied_ratio;
        let found = self.each(&r.scopes, d.who, now, |k, key| {
            let calls = k.calls.add(now, w, 1);
            let no = k.denied.add(now, w, u64::from(denied));
            let over = calls >= r.min_calls.max(1) && (no as f64) > r.max_ratio * calls as f64;
            (denied && over).then(|| {
                let key = describe(key);
                format!(
                    "{key} had {} of its last {} calls denied in {} ({}); the limit is {} once {} calls are made",
                    thousands(no),
                    thousands(calls),
                    span(r.window_secs),
                    percent(no as f64 / calls as f64),
                    percent(r.max_ratio),
                    thousands(r.min_calls)
                )
            })
        });
        push(&mut trips, Detector::DeniedRatio, found);

        if let Some(resource) = sensitive {
            let w = ms(s.sensitive_resources.window_secs);
            let max = s.sensitive_resources.max_distinct;
            let found = self.each(&s.sensitive_resources.scopes, d.who, now, |k, key| {
                let n = k.sensitive.add(now, w, resource, max);
                (n > max).then(|| {
                    let key = describe(key);
                    format!(
                        "{key} touched {} distinct sensitive resources in {}; the limit is {}",
                        thousands(n),
                        span(s.sensitive_resources.window_secs),
                        thousands(max)
                    )
                })
            });
            push(&mut trips, Detector::SensitiveResources, found);
        }

        if exposing {
            let w = ms(s.exposure.window_secs);
            let max = s.exposure.max_attempts;
            let found = self.each(&s.exposure.scopes, d.who, now, |k, key| {
                let n = k.exposure.add(now, w, 1);
                (n > max).then(|| {
                    let key = describe(key);
                    format!(
                        "{key} made {} calls in {} that were held or denied because they would expose data; the limit is {}",
                        thousands(n),
                        span(s.exposure.window_secs),
                        thousands(max)
                    )
                })
            });
            push(&mut trips, Detector::Exposure, found);
        }

        if new_tool {
            let w = ms(s.new_tools.window_secs);
            let max = s.new_tools.max_new;
            let found = self.each(&s.new_tools.scopes, d.who, now, |k, key| {
                let n = k.new_tools.add(now, w, d.tool, max);
                (n > max).then(|| {
                    let key = describe(key);
                    format!(
                        "{key} used {} tools in {} that agent `{}` did not use in its first {} calls (the latest: `{}`); the limit is {}",
                        thousands(n),
                        span(s.new_tools.window_secs),
                        d.who.agent,
                        thousands(s.new_tools.learn_calls),
                        d.tool,
                        thousands(max)
                    )
                })
            });
            push(&mut trips, Detector::NewTools, found);
        }
        trips
    }

    /// Count an output; the trips it causes.
    pub fn returned(&mut self, r: &OutputSeen<'_>) -> Vec<Trip> {
        if !self.settings.enabled {
            return Vec::new();
        }
        let now = r.now_ms;
        self.evict(now);
        let all = Arc::clone(&self.settings);
        let s = &all.returned;
        let w = ms(s.window_secs);
        let mut trips = Vec::new();
        let mut recs = Vec::new();
        let mut bytes = Vec::new();
        let budget_cap = r
            .records_budget
            .filter(|_| s.budget_fraction > 0.0)
            .map(|b| ((b as f64) * s.budget_fraction).floor() as u64);
        for scope in Scope::ALL {
            if !s.scopes.contains(&scope) {
                continue;
            }
            let key = r.who.key(scope);
            let k = self.entry(key.clone(), now);
            let n = k.records.add(now, w, r.records);
            let b = k.bytes.add(now, w, r.bytes);
            if s.max_records > 0 && n > s.max_records {
                recs.push(Trip {
                    scope_key: key.clone(),
                    detector: Detector::Records,
                    reason: format!(
                        "{} returned {} records in {}; the limit is {}",
                        describe(&key),
                        thousands(n),
                        span(s.window_secs),
                        thousands(s.max_records)
                    ),
                });
            } else if let (Scope::Mission, Some(cap)) = (scope, budget_cap) {
                if n > cap {
                    recs.push(Trip {
                        scope_key: key.clone(),
                        detector: Detector::Records,
                        reason: format!(
                            "{} returned {} records in {}, more than {} of its budget of {} records",
                            describe(&key),
                            thousands(n),
                            span(s.window_secs),
                            percent(s.budget_fraction),
                            thousands(r.records_budget.unwrap_or_default())
                        ),
                    });
                }
            }
            if s.max_bytes > 0 && b > s.max_bytes {
                bytes.push(Trip {
                    scope_key: key.clone(),
                    detector: Detector::Bytes,
                    reason: format!(
                        "{} returned {} bytes in {}; the limit is {}",
                        describe(&key),
                        thousands(b),
                        span(s.window_secs),
                        thousands(s.max_bytes)
                    ),
                });
            }
        }
        trips.extend(recs.into_iter().next());
        trips.extend(bytes.into_iter().next());
        trips
    }

    /// Run `check` on the windows of each scope in `scopes` (widest first): every window is
    /// counted; the first reason it gives is the trip.
    fn each(
        &mut self,
        scopes: &[Scope],
        who: Who<'_>,
        now: i64,
        mut check: impl FnMut(&mut KeyState, &str) -> Option<String>,
    ) -> Option<(String, String)> {
        let mut first = None;
        for scope in Scope::ALL {
            if !scopes.contains(&scope) {
                continue;
            }
            let key = who.key(scope);
            let k = self.entry(key.clone(), now);
            if let Some(reason) = check(k, &key) {
                first.get_or_insert((key, reason));
            }
        }
        first
    }

    /// Learn `tool` for `agent`; whether it is new to the agent (after learning).
    fn learn(&mut self, agent: &str, tool: &str, now: i64) -> bool {
        let learn = self.settings.new_tools.learn_calls;
        if !self.baselines.contains_key(agent) {
            if self.baselines.len() >= self.settings.max_keys {
                evict_idlest(&mut self.baselines, |b| b.last_ms);
            }
            self.baselines
                .insert(agent.to_string(), Baseline::default());
        }
        let Some(b) = self.baselines.get_mut(agent) else {
            return false;
        };
        b.last_ms = now;
        if b.calls < learn {
            b.calls += 1;
            if b.tools.len() < MAX_BASELINE_TOOLS && !b.tools.contains(tool) {
                b.tools.insert(tool.to_string());
            }
            return false;
        }
        !b.tools.contains(tool)
    }

    fn entry(&mut self, key: String, now: i64) -> &mut KeyState {
        if !self.keys.contains_key(&key) && self.keys.len() >= self.settings.max_keys {
            evict_idlest(&mut self.keys, |k| k.last_ms);
        }
        let k = self.keys.entry(key).or_default();
        k.last_ms = k.last_ms.max(now);
        k
    }

    /// Forget the scope keys idle for longer than `idle_secs` (agents' baselines stay: only
    /// `max_keys` bounds them), looked for at most ten times per
    /// `idle_secs` so that an event does not walk every key.
    fn evict(&mut self, now: i64) {
        if now < self.next_sweep {
            return;
        }
        let idle = ms(self.settings.idle_secs);
        self.next_sweep = now.saturating_add((idle / 10).max(1));
        let horizon = now.saturating_sub(idle);
        self.keys.retain(|_, k| k.last_ms >= horizon);
    }
}

fn push(trips: &mut Vec<Trip>, detector: Detector, found: Option<(String, String)>) {
    if let Some((scope_key, reason)) = found {
        trips.push(Trip {
            scope_key,
            detector,
            reason,
        });
    }
}

/// Remove the entry with the smallest `last`.
fn evict_idlest<V>(map: &mut HashMap<String, V>, last: impl Fn(&V) -> i64) {
    let idlest = map
        .iter()
        .min_by_key(|(_, v)| last(v))
        .map(|(k, _)| k.clone());
    if let Some(k) = idlest {
        map.remove(&k);
    }
}

/// Seconds in milliseconds.
fn ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// A scope key in words: `mission `m1``, `agent `a``, `everything`.
fn describe(key: &str) -> String {
    match key.split_once(':') {
        Some((scope, name)) => format!("{scope} `{name}`"),
        None => "Warden as a whole".to_string(),
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A share as a percentage: `0.5` → `50 %`.
fn percent(x: f64) -> String {
    let p = (x * 100.0 * 10.0).round() / 10.0;
    if p.fract() == 0.0 {
        format!("{p:.0} %")
    } else {
        format!("{p:.1} %")
    }
}

/// A window in words: `10 minutes`, `1 hour`, `90 seconds`.
pub fn span(secs: u64) -> String {
    let (n, unit) = if secs.is_multiple_of(86_400) {
        (secs / 86_400, "day")
    } else if secs.is_multiple_of(3_600) {
        (secs / 3_600, "hour")
    } else if secs.is_multiple_of(60) {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
#[path = "anomaly_tests.rs"]
mod tests;
