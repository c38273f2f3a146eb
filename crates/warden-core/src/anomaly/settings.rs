//! `[breakers]`: the thresholds of the anomaly detectors and who may reset a tripped breaker.

use serde::{Deserialize, Serialize};

/// Where a detector counts: one window per session, mission, agent, principal, or one for
/// everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every call Warden decides.
    Global,
    /// Every mission acting for one person.
    Principal,
    /// Every mission of one agent.
    Agent,
    /// One mission (its sessions together).
    Mission,
    /// One session.
    Session,
}

impl Scope {
    /// Every scope, widest first.
    pub const ALL: [Scope; 5] = [
        Scope::Global,
        Scope::Principal,
        Scope::Agent,
        Scope::Mission,
        Scope::Session,
    ];

    /// Its name in configuration and breaker keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::Principal => "principal",
            Scope::Agent => "agent",
            Scope::Mission => "mission",
            Scope::Session => "session",
        }
    }
}

fn mission_only() -> Vec<Scope> {
    vec![Scope::Mission]
}

fn agent_only() -> Vec<Scope> {
    vec![Scope::Agent]
}

/// `[breakers]` as written, with its defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Whether the detectors run at all (`true` by default).
    pub enabled: bool,
    /// Groups whose members may reset a tripped breaker.
    pub resetters: Vec<String>,
    /// The most scope keys (sessions, missions, agents, principals) the detectors keep
    /// windows for; the idlest are forgotten first.
    pub max_keys: usize,
    /// A scope key with no call for this long is forgotten.
    pub idle_secs: u64,
    /// Calls per window.
    pub call_rate: CallRate,
    /// The share of denied calls (probing).
    pub denied_ratio: DeniedRatio,
    /// Distinct sensitive resources touched.
    pub sensitive_resources: SensitiveResources,
    /// Records and bytes returned.
    pub returned: Returned,
    /// Calls held or denied because they would expose data.
    pub exposure: ExposureAttempts,
    /// Tools new to an agent, against the tools it used while it was learned.
    pub new_tools: NewTools,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            enabled: true,
            resetters: Vec::new(),
            max_keys: 10_000,
            idle_secs: 3_600,
            call_rate: CallRate::default(),
            denied_ratio: DeniedRatio::default(),
            sensitive_resources: SensitiveResources::default(),
            returned: Returned::default(),
            exposure: ExposureAttempts::default(),
            new_tools: NewTools::default(),
        }
    }
}

/// `[breakers.call_rate]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallRate {
    /// The window, in seconds.
    pub window_secs: u64,
    /// The most calls in a window; one more trips.
    pub max_calls: u64,
    /// Where it counts.
    pub scopes: Vec<Scope>,
}

impl Default for CallRate {
    fn default() -> Self {
        CallRate {
            window_secs: 60,
            max_calls: 300,
            scopes: mission_only(),
        }
    }
}

/// `[breakers.denied_ratio]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeniedRatio {
    /// The window, in seconds.
    pub window_secs: u64,
    /// Calls in the window before the ratio can trip.
    pub min_calls: u64,
    /// The largest share of denied calls (0 to 1); more trips.
    pub max_ratio: f64,
    /// Where it counts.
    pub scopes: Vec<Scope>,
}

impl Default for DeniedRatio {
    fn default() -> Self {
        DeniedRatio {
            window_secs: 600,
            min_calls: 40,
            max_ratio: 0.8,
            scopes: mission_only(),
        }
    }
}

/// `[breakers.sensitive_resources]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SensitiveResources {
    /// The window, in seconds.
    pub window_secs: u64,
    /// The most distinct sensitive resources in a window; one more trips.
    pub max_distinct: u64,
    /// The labels that make a resource sensitive; empty: `[labels] sensitive`.
    pub labels: Vec<String>,
    /// Where it counts.
    pub scopes: Vec<Scope>,
}

impl Default for SensitiveResources {
    fn default() -> Self {
        SensitiveResources {
            window_secs: 3_600,
            max_distinct: 50,
            labels: Vec::new(),
            scopes: mission_only(),
        }
    }
}

/// `[breakers.returned]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Returned {
    /// The window, in seconds.
    pub window_secs: u64,
    /// The most records returned in a window; more trips. `0`: no limit.
    pub max_records: u64,
    /// The most bytes returned in a window; more trips. `0`: no limit.
    pub max_bytes: u64,
    /// The largest share (0 to 1) of the mission's `records` budget returned in a window; more
    /// trips (mission scope only). `0`: no limit.
    pub budget_fraction: f64,
    /// Where it counts.
    pub scopes: Vec<Scope>,
}

impl Default for Returned {
    fn default() -> Self {
        Returned {
            window_secs: 600,
            max_records: 500,
            max_bytes: 10 * 1024 * 1024,
            budget_fraction: 0.0,
            scopes: mission_only(),
        }
    }
}

/// `[breakers.exposure]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExposureAttempts {
    /// The window, in seconds.
    pub window_secs: u64,
    /// The most calls held or denied with an exposure in a window; one more trips.
    pub max_attempts: u64,
    /// Where it counts.
    pub scopes: Vec<Scope>,
}

impl Default for ExposureAttempts {
    fn default() -> Self {
        ExposureAttempts {
            window_secs: 3_600,
            max_attempts: 10,
            scopes: mission_only(),
        }
    }
}

/// `[breakers.new_tools]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NewTools {
    /// The window, in seconds.
    pub window_secs: u64,
    /// The agent's first calls, from which its usual tools are learned.
    pub learn_calls: u64,
    /// The most distinct new tools in a window; one more trips.
    pub max_new: u64,
    /// Where it counts.
    pub scopes: Vec<Scope>,
}

impl Default for NewTools {
    fn default() -> Self {
        NewTools {
            window_secs: 3_600,
            learn_calls: 200,
            max_new: 5,
            scopes: agent_only(),
        }
    }
}

impl BreakerSettings {
    /// What is wrong with these settings, each as `key: problem`; `groups` says whether a
    /// directory group exists.
    pub fn problems(&self, has_group: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        for g in &self.resetters {
            if !has_group(g) {
                out.push(format!(
                    "breakers.resetters: the directory has no group `{g}`"
                ));
            }
        }
        if self.max_keys == 0 {
            out.push("breakers.max_keys must be greater than zero".into());
        }
        let windows = [
            ("call_rate", self.call_rate.window_secs),
            ("denied_ratio", self.denied_ratio.window_secs),
            ("sensitive_resources", self.sensitive_resources.window_secs),
            ("returned", self.returned.window_secs),
            ("exposure", self.exposure.window_secs),
            ("new_tools", self.new_tools.window_secs),
        ];
        for (name, w) in windows {
            if w == 0 || w > 7 * 24 * 3_600 {
                out.push(format!(
                    "breakers.{name}.window_secs must be between 1 and 604800 (a week)"
                ));
            }
        }
        let r = self.denied_ratio.max_ratio;
        if !(r > 0.0 && r <= 1.0) {
            out.push("breakers.denied_ratio.max_ratio must be above 0 and at most 1".into());
        }
        let f = self.returned.budget_fraction;
        if !(0.0..=1.0).contains(&f) {
            out.push("breakers.returned.budget_fraction must be between 0 and 1".into());
        }
        out
    }
}
