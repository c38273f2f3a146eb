//! `decide`: one pure function of (call, mission, session, breakers, clock) → decision.
//!
//! The steps follow DESIGN §3: breakers, resolve, ceiling, mission, flow, policy (Cedar twice:
//! the agent, then the person it acts for), combine (deny overrides ask overrides allow; no
//! permit denies; any error denies). An allowed call comes back as a [`Permitted`] value, the
//! only thing the gateway can forward; after it returns, [`Engine::absorb`] labels its output
//! and feeds the session.

use std::collections::{BTreeMap, BTreeSet};

use std::sync::Arc;

use cedar_policy::{Context, EntityUid};
use cedar_policy_core::ast::{Context as CoreContext, Literal, Value as CValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use smol_str::SmolStr;

use crate::catalog::{RecordCount, Resolved, ToolSpec, UNTRUSTED};
use crate::config::Config;
use crate::detect::Scan;
use crate::directory::Audience;
use crate::mission::{Mission, MissionUsage};
use crate::model::{
    Decision, Effect, Exposure, FlowFacts, Label, LabelSource, Outcome, Reason, Stage,
};
use crate::policy::{uid, ContextUse, Evaluation};
use crate::session::{HistoryEntry, SessionState};

/// The label detectors give to text that tells a reader to widen access.
pub const PRIVILEGED_ADVICE: &str = "privileged-advice";

/// A tool call as the agent made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// Upstream server name.
    pub server: String,
    /// Tool name on that server.
    pub tool: String,
    /// Arguments (a JSON object).
    pub args: Value,
}

impl Call {
    /// A call.
    pub fn new(server: impl Into<String>, tool: impl Into<String>, args: Value) -> Self {
        Call {
            server: server.into(),
            tool: tool.into(),
            args,
        }
    }

    /// `server.tool`.
    pub fn name(&self) -> String {
        format!("{}.{}", self.server, self.tool)
    }

    /// SHA-256 (hex) of the canonical call: server, tool and arguments with sorted keys.
    pub fn digest(&self) -> String {
        self.canonical().1
    }

    /// The canonical JSON's length in bytes and its SHA-256 (hex), from one serialization.
    fn canonical(&self) -> (usize, String) {
        #[derive(Serialize)]
        struct Canon<'a> {
            args: &'a Value,
            server: &'a str,
            tool: &'a str,
        }
        // Serialized straight into the hash: the bytes are never held.
        let mut w = HashWriter {
            hash: Sha256::new(),
            len: 0,
        };
        let canon = Canon {
            args: &self.args,
            server: &self.server,
            tool: &self.tool,
        };
        match serde_json::to_writer(&mut w, &canon) {
            Ok(()) => (w.len, hex::encode(w.hash.finalize())),
            Err(_) => (0, hex::encode(Sha256::digest(b""))),
        }
    }
}

/// Counts and hashes what is written to it.
struct HashWriter {
    hash: Sha256,
    len: usize,
}

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hash.update(buf);
        self.len += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A value that Warden has authorized. Only [`Engine::decide`] makes one, so code that forwards
/// calls upstream can take a `Permitted<Call>` and cannot forget to check.
#[derive(Debug, Clone)]
pub struct Permitted<T> {
    inner: T,
    decision_id: String,
    tool: String,
    resource_labels: BTreeSet<String>,
}

impl<T> Permitted<T> {
    /// The authorized value.
    pub fn get(&self) -> &T {
        &self.inner
    }

    /// The id of the decision that allowed it.
    pub fn decision_id(&self) -> &str {
        &self.decision_id
    }

    /// Take the value out (to send it).
    pub fn into_inner(self) -> T {
        self.inner
    }
}

/// Circuit breakers in force (state only; detectors that trip them come with the store).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breakers {
    /// Everything is stopped (kill switch).
    pub global: bool,
    /// Agents whose breaker is tripped.
    pub agents: BTreeSet<String>,
    /// Sessions whose breaker is tripped.
    pub sessions: BTreeSet<String>,
    /// Missions revoked.
    pub missions: BTreeSet<String>,
}

/// A decision and, when allowed, the permitted call.
#[derive(Debug)]
pub struct Decided {
    /// The decision (always present; log it before forwarding).
    pub decision: Decision,
    /// The call, when the decision is allow.
    pub permitted: Option<Permitted<Call>>,
}

/// A decision and, when allowed, the facts the permitted call needs (the call itself is
/// attached by [`Engine::decide`], without copying it).
type Inner = (Decision, Option<Permitted<()>>);

/// The decision engine: a loaded configuration.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    /// The context attributes the loaded policies read.
    wanted: Wanted,
}

/// The attributes `context` can build: top-level names, each with its sub-attributes (none for
/// plain values), in the order `Engine::context` lists them.
const CONTEXT_NAMES: [(&str, &[&str]); 17] = [
    ("tool", &[]),
    ("server", &[]),
    ("effect", &[]),
    ("agent", &[]),
    ("on_behalf_of", &[]),
    ("has_audience", &[]),
    ("acts_as", &[]),
    ("acts_as_other", &[]),
    (
        "flow",
        &[
            "labels",
            "resource_labels",
            "argument_labels",
            "sensitive",
            "untrusted_input",
            "untrusted_direction",
            "privileged_advice",
            "fetch",
        ],
    ),
    (
        "exposure",
        &[
            "audience",
            "count",
            "external",
            "external_exposed",
            "labels",
        ],
    ),
    (
        "mission",
        &[
            "id",
            "template",
            "purpose",
            "approval_effects",
            "publish_to",
            "seconds_left",
            "calls_left",
        ],
    ),
    ("session", &["calls", "untrusted_input", "sensitive_read"]),
    (
        "rule_of_two",
        &[
            "untrusted_input",
            "sensitive_data",
            "external_action",
            "count",
        ],
    ),
    ("hour_utc", &[]),
    ("args", &[]),
    ("arg_summaries", &[]),
    ("origin", &["args", "directing", "text", "weakest"]),
];

/// The indices of `args` and `arg_summaries` in [`CONTEXT_NAMES`].
const ARGS: usize = 14;
const ARG_SUMMARIES: usize = 15;

/// A [`ContextUse`] as flags over [`CONTEXT_NAMES`], so building a context compares no names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wanted {
    /// Bit `i`: top-level attribute `i` is built.
    top: u32,
    /// Per top-level attribute, bit `j`: its sub-attribute `j` is built.
    sub: [u32; CONTEXT_NAMES.len()],
}

impl Wanted {
    const ALL: Wanted = Wanted {
        top: u32::MAX,
        sub: [u32::MAX; CONTEXT_NAMES.len()],
    };

    fn of(u: &ContextUse) -> Wanted {
        let mut w = Wanted {
            top: 0,
            sub: [0; CONTEXT_NAMES.len()],
        };
        for (i, (top, subs)) in CONTEXT_NAMES.iter().enumerate() {
            if u.wants(top) {
                w.top |= 1 << i;
            }
            for (j, sub) in subs.iter().enumerate() {
                if u.wants_sub(top, sub) {
                    if let Some(bits) = w.sub.get_mut(i) {
                        *bits |= 1 << j;
                    }
                }
            }
        }
        w
    }

    fn top(&self, i: usize) -> bool {
        self.top & (1 << i) != 0
    }

    fn sub(&self, i: usize, j: usize) -> bool {
        self.sub.get(i).is_some_and(|bits| bits & (1 << j) != 0)
    }
}

struct Ctx<'a> {
    call: &'a Call,
    name: String,
    mission: &'a Mission,
    session: &'a SessionState,
    usage: &'a MissionUsage,
    breakers: &'a Breakers,
    now_ms: i64,
    digest: String,
    call_bytes: usize,
}

impl Ctx<'_> {
    fn decision(&self, outcome: Outcome, reasons: Vec<Reason>) -> Decision {
        Decision {
            id: decision_id(
                &self.session.id,
                self.session.calls + 1,
                &self.digest,
                self.now_ms,
            ),
            decision: outcome,
            reasons,
            policies: Vec::new(),
            ask_policies: Vec::new(),
            exposure: None,
            flow: FlowFacts::default(),
            tool: self.name.clone(),
            effect: None,
            resource: None,
            agent: self.mission.agent.clone(),
            principal: self.mission.principal.clone(),
            session: self.session.id.clone(),
            mission: self.mission.id.clone(),
            call_digest: self.digest.clone(),
            at_ms: self.now_ms,
            elapsed_us: None,
        }
    }

    fn deny(&self, stage: Stage, text: String) -> Inner {
        (
            self.decision(
                Outcome::Deny,
                vec![Reason {
                    stage,
                    outcome: Outcome::Deny,
                    policy: None,
                    text,
                }],
            ),
            None,
        )
    }
}

/// `d-` and the first 20 hex digits of the SHA-256 of `session \n call \n digest \n now_ms`
/// (numbers in decimal).
fn decision_id(session: &str, call: u64, digest: &str, now_ms: i64) -> String {
    use std::io::Write as _;
    // The numbers are written into the hash as text, without allocating.
    let mut h = Sha256::new();
    h.update(session.as_bytes());
    let _ = write!(h, "\n{call}\n");
    h.update(digest.as_bytes());
    let _ = write!(h, "\n{now_ms}");
    let hash = h.finalize();
    let mut id = String::with_capacity(22);
    id.push_str("d-");
    id.push_str(&hex::encode(hash.get(..10).unwrap_or_default()));
    id
}

// The policy context is built as Cedar values directly: no expression is built and then
// interpreted, which is what `Context::from_pairs` does and costs several times more.

fn vstr(s: &str) -> CValue {
    CValue::from(Literal::from(s))
}

fn vset<'a, S: AsRef<str> + 'a>(it: impl IntoIterator<Item = &'a S>) -> CValue {
    let mut it = it.into_iter().peekable();
    if it.peek().is_none() {
        // Most sets are empty; they share one value (a reference-counted clone).
        static EMPTY: std::sync::OnceLock<CValue> = std::sync::OnceLock::new();
        return EMPTY
            .get_or_init(|| CValue::set_of_lits(std::iter::empty(), None))
            .clone();
    }
    CValue::set_of_lits(it.map(|s| Literal::from(s.as_ref())), None)
}

fn vlong(n: u64) -> CValue {
    CValue::from(Literal::from(i64::try_from(n).unwrap_or(i64::MAX)))
}

fn vbool(b: bool) -> CValue {
    CValue::from(Literal::from(b))
}

fn vuid(u: EntityUid) -> CValue {
    CValue::from(Literal::from(u.as_ref().clone()))
}

/// Collect the string leaves of a JSON value, bounded in bytes.
fn strings_of(v: &Value, out: &mut String, budget: usize) {
    if out.len() >= budget {
        return;
    }
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(a) => a.iter().for_each(|x| strings_of(x, out, budget)),
        Value::Object(m) => m.values().for_each(|x| strings_of(x, out, budget)),
        Value::Number(n) => {
            out.push_str(&n.to_string());
            out.push('\n');
        }
        _ => {}
    }
}

/// The content arguments of a call (not those that say where it goes), each as its text.
fn argument_parts(spec: &ToolSpec, args: &Value, budget: usize) -> Vec<(String, String)> {
    let Value::Object(m) = args else {
        return Vec::new();
    };
    m.iter()
        .filter(|(k, _)| !spec.is_addressing_arg(k))
        .map(|(k, v)| {
            let mut text = String::new();
            strings_of(v, &mut text, budget);
            (k.clone(), text)
        })
        .collect()
}

impl Engine {
    /// An engine over a loaded configuration.
    pub fn new(config: Config) -> Self {
        let wanted = Wanted::of(config.policies.context_use());
        Engine { config, wanted }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Grant a mission from a template (checks the template, agent and principal exist).
    pub fn grant(
        &self,
        id: &str,
        template: &str,
        agent: &str,
        principal: &str,
        purpose: &str,
        now_ms: i64,
    ) -> Result<Mission, String> {
        let t = self
            .config
            .templates
            .get(template)
            .ok_or_else(|| format!("unknown mission template `{template}`"))?;
        if !self.config.agents.contains_key(agent) {
            return Err(format!("unknown agent `{agent}`"));
        }
        if !t.agents.is_empty() && !t.agents.iter().any(|a| a == agent) {
            return Err(format!(
                "mission template `{template}` is not for agent `{agent}`"
            ));
        }
        if self.config.directory.user(principal).is_none() {
            return Err(format!(
                "unknown principal `{principal}`: the directory has no such user"
            ));
        }
        Ok(Mission {
            id: id.to_string(),
            template: template.to_string(),
            agent: agent.to_string(),
            principal: principal.to_string(),
            purpose: purpose.to_string(),
            granted_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(t.lifetime_secs.saturating_mul(1000)),
        })
    }

    /// The tools a session under `mission` could ever be allowed to use (ceiling ∩ mission ∩
    /// catalog). What `tools/list` shows.
    pub fn visible_tools(&self, mission: &Mission) -> Vec<&ToolSpec> {
        let Some(agent) = self.config.agents.get(&mission.agent) else {
            return Vec::new();
        };
        let Some(t) = self.config.templates.get(&mission.template) else {
            return Vec::new();
        };
        self.config
            .catalog
            .tools()
            .filter(|s| agent.may_use(&s.name) && t.allows_tool(&s.name))
            .collect()
    }

    /// The Cedar context `decide` gives policies for a call, with the call's action: for tools
    /// that explain decisions, and for checking that contexts conform to the schema. Errors
    /// when the call cannot be resolved (unknown tool, bad arguments, unknown template).
    pub fn policy_context(
        &self,
        call: &Call,
        mission: &Mission,
        session: &SessionState,
        usage: &MissionUsage,
        now_ms: i64,
    ) -> Result<(EntityUid, Context), String> {
        let cfg = &self.config;
        let (call_bytes, digest) = call.canonical();
        let breakers = Breakers::default();
        let cx = Ctx {
            call,
            name: call.name(),
            mission,
            session,
            usage,
            breakers: &breakers,
            now_ms,
            digest,
            call_bytes,
        };
        let spec = cfg
            .catalog
            .get(&cx.name)
            .ok_or_else(|| format!("unknown tool `{}`", cx.name))?;
        let resolved = spec
            .resolve(&call.args, &cfg.directory)
            .map_err(|e| e.to_string())?;
        let template = cfg
            .templates
            .get(&mission.template)
            .ok_or_else(|| format!("unknown mission template `{}`", mission.template))?;
        let (flow, exposure, advice) = self.flow(&cx, spec, &resolved, template);
        let argv = spec.typed_args(&call.args).map_err(|e| e.to_string())?;
        let context = self.context(
            &cx,
            spec,
            &resolved,
            &flow,
            exposure.as_ref(),
            advice,
            template,
            &Wanted::ALL,
            Some(&argv),
        )?;
        Ok((uid("Action", &spec.name), context))
    }

    /// Decide one call. Pure: the same inputs give the same decision.
    pub fn decide(
        &self,
        call: Call,
        mission: &Mission,
        session: &SessionState,
        usage: &MissionUsage,
        breakers: &Breakers,
        now_ms: i64,
    ) -> Decided {
        let name = call.name();
        let (call_bytes, digest) = call.canonical();
        let cx = Ctx {
            call: &call,
            name: name.clone(),
            mission,
            session,
            usage,
            breakers,
            now_ms,
            digest,
            call_bytes,
        };
        let (mut decision, permit) = self.decide_inner(&cx);
        decision.tool = name;
        let permitted = match permit {
            Some(p) if decision.decision == Outcome::Allow => Some(Permitted {
                inner: call,
                decision_id: decision.id.clone(),
                tool: p.tool,
                resource_labels: p.resource_labels,
            }),
            _ => None,
        };
        Decided {
            decision,
            permitted,
        }
    }

    fn decide_inner(&self, cx: &Ctx<'_>) -> Inner {
        let cfg = &self.config;
        let call = cx.call;
        let mission = cx.mission;
        // 0. Input bounds.
        let arg_bytes = cx.call_bytes;
        if arg_bytes > cfg.limits.max_argument_bytes {
            return cx.deny(
                Stage::Input,
                format!(
                    "the arguments are {arg_bytes} bytes; the limit is {}",
                    cfg.limits.max_argument_bytes
                ),
            );
        }
        if cx.name.len() > 256 {
            return cx.deny(
                Stage::Input,
                "the tool name is longer than 256 bytes".into(),
            );
        }
        // 1. Breakers.
        let b = cx.breakers;
        if b.global {
            return cx.deny(
                Stage::Breaker,
                "the global kill switch is on: every call is denied until a person resets it"
                    .into(),
            );
        }
        if b.agents.contains(&mission.agent) {
            return cx.deny(
                Stage::Breaker,
                format!("the breaker of agent `{}` is tripped", mission.agent),
            );
        }
        if b.sessions.contains(&cx.session.id) {
            return cx.deny(
                Stage::Breaker,
                format!("the breaker of session `{}` is tripped", cx.session.id),
            );
        }
        if b.missions.contains(&mission.id) {
            return cx.deny(
                Stage::Breaker,
                format!("the mission `{}` was revoked", mission.id),
            );
        }
        // 2. Resolve.
        let Some(spec) = cfg.catalog.get(&cx.name) else {
            return cx.deny(
                Stage::Resolve,
                format!(
                    "unknown tool `{}`: the catalog does not describe it, so it is denied",
                    cx.name
                ),
            );
        };
        let resolved = match spec.resolve(&call.args, &cfg.directory) {
            Ok(r) => r,
            Err(e) => return cx.deny(Stage::Resolve, e.to_string()),
        };
        let resource_uid = uid(&resolved.resource_type, &resolved.resource_id);
        let mut out = self.decide_resolved(cx, spec, &resolved, &resource_uid);
        out.0.effect = Some(spec.effect);
        out.0.resource = Some(uid_text(
            &resolved.resource_type,
            &resolved.resource_id,
            &resource_uid,
        ));
        out
    }

    fn decide_resolved(
        &self,
        cx: &Ctx<'_>,
        spec: &ToolSpec,
        resolved: &Resolved,
        resource_uid: &EntityUid,
    ) -> Inner {
        let cfg = &self.config;
        let mission = cx.mission;
        // 3. Ceiling.
        let Some(agent) = cfg.agents.get(&mission.agent) else {
            return cx.deny(Stage::Ceiling, format!("unknown agent `{}`", mission.agent));
        };
        if !agent.may_use(&spec.name) {
            return cx.deny(
                Stage::Ceiling,
                format!(
                    "`{}` is outside the ceiling of agent `{}` (it may use {})",
                    spec.name,
                    agent.id,
                    agent
                        .ceiling
                        .iter()
                        .map(|p| format!("`{p}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        // 4. Mission.
        let Some(template) = cfg.templates.get(&mission.template) else {
            return cx.deny(
                Stage::Mission,
                format!("unknown mission template `{}`", mission.template),
            );
        };
        if cfg.directory.user(&mission.principal).is_none() {
            return cx.deny(
                Stage::Mission,
                format!(
                    "unknown principal `{}`: the directory has no such user",
                    mission.principal
                ),
            );
        }
        if let Err(v) = template.check(
            mission,
            cx.usage,
            spec,
            &cx.call.args,
            &resolved.resource_id,
            &resolved.labels,
            resolved.audience.as_ref(),
            cx.now_ms,
        ) {
            return cx.deny(Stage::Mission, v.0);
        }
        // 5. Flow.
        let (flow, exposure, advice) = self.flow(cx, spec, resolved, template);
        // 6. Policy, twice. Typed arguments are built only when policies read them.
        let argv = if self.wanted.top(ARGS) || self.wanted.top(ARG_SUMMARIES) {
            match spec.typed_args(&cx.call.args) {
                Ok(v) => Some(v),
                Err(e) => return cx.deny(Stage::Resolve, e.to_string()),
            }
        } else {
            None
        };
        if let Some(text) = argv
            .as_ref()
            .and_then(|v| crate::args::refuse_summarised(spec, v, cfg.policies.context_use()))
        {
            return cx.deny(Stage::Flow, text);
        }
        let context = match self.context(
            cx,
            spec,
            resolved,
            &flow,
            exposure.as_ref(),
            advice,
            template,
            &self.wanted,
            argv.as_ref(),
        ) {
            Ok(c) => c,
            Err(e) => {
                return cx.deny(
                    Stage::Flow,
                    format!("could not build the policy context: {e}"),
                )
            }
        };
        let action = uid("Action", &spec.name);
        let agent_uid = uid("Agent", &mission.agent);
        let user_uid = uid("User", &mission.principal);
        // Contexts are built as values, unchecked, and only with what policies read. Debug
        // builds (every test) also build the whole context and check it against the schema.
        // A summarised required argument is absent from `args`, which the schema does not
        // allow: such contexts are not checked.
        #[cfg(debug_assertions)]
        if let Ok(argv) = spec.typed_args(&cx.call.args) {
            let full = self.context(
                cx,
                spec,
                resolved,
                &flow,
                exposure.as_ref(),
                advice,
                template,
                &Wanted::ALL,
                Some(&argv),
            );
            let checked = full.and_then(|c| {
                if !argv.summarised.is_empty() {
                    return Ok(());
                }
                cedar_policy::Request::new(
                    agent_uid.clone(),
                    action.clone(),
                    resource_uid.clone(),
                    c,
                    Some(cfg.policies.schema()),
                )
                .map(|_| ())
                .map_err(|e| e.to_string())
            });
            if let Err(e) = checked {
                return cx.deny(
                    Stage::Flow,
                    format!("the policy context does not conform to the schema: {e}"),
                );
            }
        }
        let entities = cfg.directory.entities();
        let ancestors = cfg.directory.ancestors(&mission.principal);
        let groups = [
            uid("Action", spec.effect.as_str()),
            uid("Action", &spec.server),
        ];
        let (by_agent, by_user) = cfg.policies.evaluate_pair(
            &agent_uid,
            &user_uid,
            &ancestors,
            &action,
            &groups,
            resource_uid,
            context,
            entities,
        );
        // 7. Combine.
        let mut d = self.combine(cx, spec, resolved, &by_agent, &by_user);
        if d.decision != Outcome::Allow {
            if let Some(text) = explain_flow(&flow, exposure.as_ref(), resolved) {
                d.reasons.push(Reason {
                    stage: Stage::Flow,
                    outcome: d.decision,
                    policy: None,
                    text,
                });
            }
        }
        d.flow = flow;
        d.exposure = exposure;
        let permitted = (d.decision == Outcome::Allow).then(|| Permitted {
            inner: (),
            decision_id: String::new(),
            tool: spec.name.clone(),
            resource_labels: resolved.labels.clone(),
        });
        (d, permitted)
    }

    /// A policy's `@reason`, or the fallback (built only when there is no reason).
    fn policy_text(&self, id: &str, fallback: impl FnOnce() -> String) -> String {
        self.config
            .policies
            .info(id)
            .and_then(|i| i.reason.clone())
            .unwrap_or_else(fallback)
    }

    fn combine(
        &self,
        cx: &Ctx<'_>,
        spec: &ToolSpec,
        resolved: &Resolved,
        by_agent: &Evaluation,
        by_user: &Evaluation,
    ) -> Decision {
        let m = cx.mission;
        let mut reasons = Vec::new();
        let mut policies = BTreeSet::new();
        // Only the "no permit" reasons say what the call does.
        let what = || {
            format!(
                "{} `{}` on `{}`",
                spec.effect, spec.name, resolved.resource_id
            )
        };
        // Errors deny.
        for (stage, ev) in [
            (Stage::AgentPolicy, by_agent),
            (Stage::PrincipalPolicy, by_user),
        ] {
            for e in &ev.errors {
                reasons.push(Reason {
                    stage,
                    outcome: Outcome::Deny,
                    policy: None,
                    text: format!("policy evaluation failed, so the call is denied: {e}"),
                });
            }
        }
        // Hard forbids deny.
        for (stage, ev) in [
            (Stage::AgentPolicy, by_agent),
            (Stage::PrincipalPolicy, by_user),
        ] {
            for id in &ev.forbids {
                if !policies.insert(id.clone()) {
                    continue;
                }
                reasons.push(Reason {
                    stage,
                    outcome: Outcome::Deny,
                    policy: Some(id.clone()),
                    text: self.policy_text(id, || format!("forbidden by policy `{id}`")),
                });
            }
        }
        // No permit denies.
        if by_agent.permits.is_empty() && by_agent.forbids.is_empty() {
            reasons.push(Reason {
                stage: Stage::AgentPolicy,
                outcome: Outcome::Deny,
                policy: None,
                text: format!("no policy permits agent `{}` to {}", m.agent, what()),
            });
        }
        if by_user.permits.is_empty() && by_user.forbids.is_empty() {
            reasons.push(Reason {
                stage: Stage::PrincipalPolicy,
                outcome: Outcome::Deny,
                policy: None,
                text: format!(
                    "`{}` may not {} themselves, so agent `{}` may not do it on their behalf",
                    m.principal,
                    what(),
                    m.agent
                ),
            });
        }
        let denied = reasons.iter().any(|r| r.outcome == Outcome::Deny);
        let mut asks = BTreeSet::new();
        if !denied {
            for (stage, ev) in [
                (Stage::AgentPolicy, by_agent),
                (Stage::PrincipalPolicy, by_user),
            ] {
                for id in &ev.asks {
                    if asks.insert(id.clone()) {
                        policies.insert(id.clone());
                        reasons.push(Reason {
                            stage,
                            outcome: Outcome::Ask,
                            policy: Some(id.clone()),
                            text: self
                                .policy_text(id, || format!("needs approval under policy `{id}`")),
                        });
                    }
                }
            }
        }
        let outcome = if denied {
            Outcome::Deny
        } else if !asks.is_empty() {
            Outcome::Ask
        } else {
            for (stage, ev) in [
                (Stage::AgentPolicy, by_agent),
                (Stage::PrincipalPolicy, by_user),
            ] {
                for id in &ev.permits {
                    if !policies.insert(id.clone()) {
                        continue;
                    }
                    reasons.push(Reason {
                        stage,
                        outcome: Outcome::Allow,
                        policy: Some(id.clone()),
                        text: self.policy_text(id, || format!("permitted by policy `{id}`")),
                    });
                }
            }
            Outcome::Allow
        };
        let mut d = cx.decision(outcome, reasons);
        d.policies = policies.into_iter().collect();
        d.ask_policies = asks.into_iter().collect();
        d
    }

    /// Scan the content of a call's arguments. Arguments that say where the call goes
    /// (recipients, channels, paths, the act-as name) are addresses, not content: they are
    /// checked by exposure and provenance instead.
    fn scan_arguments(&self, spec: &ToolSpec, args: &Value) -> (Scan, String) {
        let budget = self.config.detectors.limits().max_bytes;
        let mut text = String::new();
        match args {
            Value::Object(m) => {
                for (k, v) in m {
                    if spec.is_addressing_arg(k) {
                        continue;
                    }
                    strings_of(v, &mut text, budget);
                }
            }
            other => strings_of(other, &mut text, budget),
        }
        (self.config.detectors.scan(&text), text)
    }

    /// True when a URL argument of the call holds text the session read from a trusted source
    /// (a part of at least [`URL_TOKEN_MIN`] characters).
    fn url_carries_session_data(&self, spec: &ToolSpec, cx: &Ctx<'_>) -> bool {
        spec.audience.iter().any(|r| {
            let crate::catalog::AudienceRule::Url(arg) = r else {
                return false;
            };
            cx.call
                .args
                .get(arg)
                .and_then(Value::as_str)
                .is_some_and(|url| crate::links::url_carries_session_text(url, cx.session))
        })
    }

    /// True when every URL the call reaches (its URL audience arguments) is, as a whole, a link
    /// the person wrote in the purpose or a trusted output showed: nothing the mission composed.
    fn links_as_seen(&self, spec: &ToolSpec, cx: &Ctx<'_>) -> bool {
        let mut urls = spec
            .audience
            .iter()
            .filter_map(|r| match r {
                crate::catalog::AudienceRule::Url(arg) => Some(cx.call.args.get(arg)),
                _ => None,
            })
            .peekable();
        urls.peek().is_some()
            && urls.all(|v| {
                v.and_then(Value::as_str).is_some_and(|url| {
                    matches!(
                        crate::provenance::origin_as_written(
                            &self.config,
                            cx.mission,
                            cx.session,
                            url
                        ),
                        crate::provenance::Origin::Principal | crate::provenance::Origin::Trusted
                    )
                })
            })
    }

    /// The information-flow facts of a call: labels in, exposure, provenance.
    fn flow(
        &self,
        cx: &Ctx<'_>,
        spec: &ToolSpec,
        resolved: &Resolved,
        template: &crate::mission::MissionTemplate,
    ) -> (FlowFacts, Option<Exposure>, bool) {
        let cfg = &self.config;
        let s = cx.session;
        let mut f = FlowFacts {
            resource_labels: resolved.labels.clone(),
            untrusted_input: crate::holds::untrusted_counts(s, spec, resolved),
            ..Default::default()
        };
        let (scan, scanned) = self.scan_arguments(spec, &cx.call.args);
        let advice = scan.labels.contains(PRIVILEGED_ADVICE);
        // A part of a secret the mission read, or the rest of one it began sending.
        let parts = argument_parts(spec, &cx.call.args, cfg.detectors.limits().max_bytes);
        if crate::detect::fingerprint::carried(&cfg.detectors, s, &scanned, &parts) {
            f.argument_labels.insert("secret".into());
        }
        if spec.effect != Effect::Read {
            f.sent_tails = s.sent_tails.after(&parts);
        }
        let max_findings = self.config.detectors.limits().max_findings;
        for l in &crate::holds::argument_labels(&scan, &scanned, max_findings, s) {
            f.argument_labels.insert(l.clone());
        }
        if scan.truncated {
            // What was not scanned is treated as the most sensitive thing an argument can hold.
            f.argument_labels.insert("secret".into());
        }
        // What the session holds flows into every call that reaches people. A read that reaches
        // a host outside (a fetch) sends it there, unless the mission names the host; so does
        // one whose URL holds some of it.
        // A fetch of links exactly as the person wrote them or a trusted output showed them
        // sends nothing the mission composed: their hosts learn only their own addresses.
        let links_as_seen = spec.effect == Effect::Read && self.links_as_seen(spec, cx);
        let url_data = !links_as_seen && self.url_carries_session_data(spec, cx);
        let fetch = spec.effect == Effect::Read
            && crate::links::fetched_hosts(cfg, spec, &cx.call.args)
                .iter()
                .any(|h| !template.names_host(h));
        f.fetch = fetch && !url_data;
        // A call that sends only the person's own words carries nothing the mission read.
        let persons_words = spec.effect != Effect::Read
            && content_is_the_persons(spec, &cx.call.args, &cx.mission.purpose);
        let taint_flows = (spec.effect != Effect::Read && !persons_words)
            || url_data
            || (fetch && !links_as_seen);
        let mut labels: BTreeSet<Label> = BTreeSet::new();
        if taint_flows {
            // One pass over the taint for the labels and their first sources. The taint is
            // sorted already: collecting it builds the set without reordering. Labels are
            // shared, so this copies no text.
            let mut names: Vec<Label> = Vec::with_capacity(s.taint.len());
            for (l, src) in s.taint.iter().filter(|(l, _)| cfg.is_confidentiality(l)) {
                if f.sources.len() < MAX_SOURCES {
                    let mut src = src.clone();
                    // The deciding session is not named; another session of the mission is.
                    if src.session.as_deref() == Some(s.id.as_str()) {
                        src.session = None;
                    }
                    f.sources.push(src);
                }
                names.push(l.clone());
            }
            labels = names.into_iter().collect();
        }
        if s.taint_overflow && taint_flows {
            labels.extend(cfg.sensitive.iter().map(|l| Label::from(l.as_str())));
        }
        // The labels the call brings itself: its arguments' always, its resource's when it
        // writes there.
        let from_resource = spec.effect != Effect::Read;
        let brought = f.argument_labels.iter().map(|l| (l, false)).chain(
            resolved
                .labels
                .iter()
                .filter(|_| from_resource)
                .map(|l| (l, true)),
        );
        for (l, in_resource) in brought {
            if !cfg.is_confidentiality(l) || labels.contains(l.as_str()) {
                continue;
            }
            let l = Label::from(l.as_str());
            labels.insert(l.clone());
            f.sources.push(LabelSource {
                label: l,
                source: if in_resource {
                    format!("resource {}", resolved.resource_id).into()
                } else {
                    "arguments".into()
                },
                call: s.calls + 1,
                at_ms: cx.now_ms,
                session: None,
            });
        }
        f.labels = labels;
        f.sensitive = cfg.sensitive.iter().any(|l| f.labels.contains(l.as_str()))
            || (spec.effect == Effect::Read
                && resolved.labels.iter().any(|l| cfg.sensitive.contains(l)));
        // Provenance of the values that direct the call.
        let call = crate::provenance::Call {
            spec,
            args: &cx.call.args,
            directing: &resolved.directing,
            to_principal_only: resolved
                .audience
                .as_ref()
                .is_some_and(|a| a.only(&cx.mission.principal)),
        };
        let p = crate::provenance::assess(cfg, call, cx.mission, s);
        f.untrusted_direction = p.untrusted;
        f.provenance = p.provenance;
        // Exposure: of the audience to everything flowing in, and of each host a link reaches
        // to what its URL carries.
        let mut exposure = resolved
            .audience
            .as_ref()
            .map(|aud| crate::own::exposure(&cfg.directory, aud, &f.labels, s));
        let links = if spec.effect == Effect::Read {
            Vec::new()
        } else {
            crate::links::link_exits(cfg, spec, &cx.call.args, s, &f.labels)
        };
        if let Some(more) = crate::links::links_exposure(cfg, &links) {
            exposure.get_or_insert_with(Exposure::default).add(more);
        }
        f.external_action = !links.is_empty()
            || match spec.effect {
                Effect::Read => false,
                Effect::Egress => true,
                _ => !resolved
                    .audience
                    .as_ref()
                    .is_some_and(|a: &Audience| a.only(&cx.mission.principal)),
            };
        (f, exposure, advice)
    }

    #[allow(clippy::too_many_arguments)]
    fn context(
        &self,
        cx: &Ctx<'_>,
        spec: &ToolSpec,
        resolved: &Resolved,
        f: &FlowFacts,
        exposure: Option<&Exposure>,
        advice: bool,
        template: &crate::mission::MissionTemplate,
        want: &Wanted,
        argv: Option<&crate::args::ArgValues>,
    ) -> Result<Context, String> {
        let m = cx.mission;
        let s = cx.session;
        let acts_as = resolved.acts_as.is_some();
        let acts_as_other = resolved
            .acts_as
            .as_deref()
            .is_some_and(|u| u != m.principal);
        // Borrowed: an exposure can carry a hundred label names, which the context filters.
        static NO_EXPOSURE: Exposure = Exposure {
            audience: 0,
            count: 0,
            external: 0,
            external_exposed: 0,
            sample: Vec::new(),
            labels: BTreeSet::new(),
        };
        let e = exposure.unwrap_or(&NO_EXPOSURE);
        let approval: Vec<String> = template
            .approval_effects
            .iter()
            .map(|e| e.as_str().to_string())
            .collect();
        let r2_sensitive = f.sensitive || s.sensitive_read;
        let r2_count = [f.untrusted_input, r2_sensitive, f.external_action]
            .iter()
            .filter(|b| **b)
            .count() as u64;
        let calls_left = template
            .budgets
            .calls
            .map(|c| c.saturating_sub(cx.usage.calls))
            .unwrap_or(u64::MAX >> 1);
        let seconds_left = ((m.expires_at_ms - cx.now_ms) / 1000).max(0) as u64;
        // Only what the loaded policies read is built (`ContextUse`); `policy_context` builds all.
        let u = want;
        type Field<'f> = (&'static str, &'f dyn Fn() -> CValue);
        // The index of a top-level attribute in `CONTEXT_NAMES` (and in `top` below).
        let index = |name: &str| CONTEXT_NAMES.iter().position(|(t, _)| *t == name);
        let rec = |top: &str, fields: &[Field<'_>]| -> CValue {
            let i = index(top).unwrap_or(usize::MAX);
            CValue::record(
                fields
                    .iter()
                    .enumerate()
                    .filter(|(j, (k, _))| {
                        debug_assert_eq!(
                            CONTEXT_NAMES.get(i).and_then(|(_, subs)| subs.get(*j)),
                            Some(k),
                            "CONTEXT_NAMES lists {top}'s attributes in this order"
                        );
                        u.sub(i, *j)
                    })
                    .map(|(_, (k, f))| (SmolStr::new_static(k), f())),
                None,
            )
        };
        let empty = || CValue::record(std::iter::empty::<(SmolStr, CValue)>(), None);
        let prov = &f.provenance;
        let top: [Field<'_>; 17] = [
            ("tool", &|| vstr(&spec.name)),
            ("server", &|| vstr(&spec.server)),
            ("effect", &|| vstr(spec.effect.as_str())),
            ("agent", &|| vuid(uid("Agent", &m.agent))),
            ("on_behalf_of", &|| vuid(uid("User", &m.principal))),
            ("has_audience", &|| vbool(exposure.is_some())),
            ("acts_as", &|| vbool(acts_as)),
            ("acts_as_other", &|| vbool(acts_as_other)),
            ("flow", &|| {
                rec(
                    "flow",
                    &[
                        ("labels", &|| {
                            vset(f.labels.iter().filter(|l| !is_reader_set(l)))
                        }),
                        ("resource_labels", &|| vset(&f.resource_labels)),
                        ("argument_labels", &|| vset(&f.argument_labels)),
                        ("sensitive", &|| vbool(f.sensitive)),
                        ("untrusted_input", &|| vbool(f.untrusted_input)),
                        ("untrusted_direction", &|| {
                            vbool(!f.untrusted_direction.is_empty())
                        }),
                        ("privileged_advice", &|| vbool(advice)),
                        ("fetch", &|| vbool(f.fetch)),
                    ],
                )
            }),
            ("exposure", &|| {
                rec(
                    "exposure",
                    &[
                        ("audience", &|| vlong(e.audience)),
                        ("count", &|| vlong(e.count)),
                        ("external", &|| vlong(e.external)),
                        ("external_exposed", &|| vlong(e.external_exposed)),
                        ("labels", &|| {
                            vset(e.labels.iter().filter(|l| !is_reader_set(l)))
                        }),
                    ],
                )
            }),
            ("mission", &|| {
                rec(
                    "mission",
                    &[
                        ("id", &|| vstr(&m.id)),
                        ("template", &|| vstr(&m.template)),
                        ("purpose", &|| vstr(&m.purpose)),
                        ("approval_effects", &|| vset(&approval)),
                        ("publish_to", &|| vstr(template.publish_to.as_str())),
                        ("seconds_left", &|| vlong(seconds_left)),
                        ("calls_left", &|| vlong(calls_left)),
                    ],
                )
            }),
            ("session", &|| {
                rec(
                    "session",
                    &[
                        ("calls", &|| vlong(s.calls)),
                        ("untrusted_input", &|| vbool(s.untrusted_input)),
                        ("sensitive_read", &|| vbool(s.sensitive_read)),
                    ],
                )
            }),
            ("rule_of_two", &|| {
                rec(
                    "rule_of_two",
                    &[
                        ("untrusted_input", &|| vbool(f.untrusted_input)),
                        ("sensitive_data", &|| vbool(r2_sensitive)),
                        ("external_action", &|| vbool(f.external_action)),
                        ("count", &|| vlong(r2_count)),
                    ],
                )
            }),
            ("hour_utc", &|| {
                vlong(((cx.now_ms / 3_600_000) % 24).max(0) as u64)
            }),
            ("args", &|| argv.map_or_else(empty, |a| a.args.clone())),
            ("arg_summaries", &|| {
                argv.map_or_else(empty, |a| a.summaries.clone())
            }),
            ("origin", &|| {
                rec(
                    "origin",
                    &[
                        ("args", &|| vset(&prov.arg_origins())),
                        ("directing", &|| vstr(prov.directing().as_str())),
                        ("text", &|| vstr(prov.in_text().as_str())),
                        ("weakest", &|| vstr(prov.weakest().as_str())),
                    ],
                )
            }),
        ];
        let map: std::collections::BTreeMap<SmolStr, CValue> = top
            .iter()
            .enumerate()
            .filter(|(i, (k, _))| {
                debug_assert_eq!(CONTEXT_NAMES.get(*i).map(|(t, _)| t), Some(k));
                u.top(*i)
            })
            .map(|(_, (k, f))| (SmolStr::new_static(k), f()))
            .collect();
        Ok(Context::from(CoreContext::Value(Arc::new(map))))
    }

    /// Count a decided call in the session and, when allowed, in the mission's usage. Call this
    /// once per decision, after the decision is durably logged.
    pub fn commit(
        &self,
        decision: &Decision,
        session: &mut SessionState,
        usage: &mut MissionUsage,
    ) {
        session.calls += 1;
        if decision.decision == Outcome::Allow {
            if !decision.flow.sent_tails.is_empty() {
                session.sent_tails.clone_from(&decision.flow.sent_tails);
            }
            session.allowed += 1;
            usage.calls += 1;
        }
        session.remember(HistoryEntry {
            call: session.calls,
            tool: decision.tool.clone(),
            outcome: decision.decision,
            at_ms: decision.at_ms,
        });
    }

    /// Label an allowed call's output and feed it to the session: taint, provenance text,
    /// record and byte budgets. Returns the labels the output carries.
    pub fn absorb(
        &self,
        permitted: &Permitted<Call>,
        output: &str,
        session: &mut SessionState,
        usage: &mut MissionUsage,
        now_ms: i64,
    ) -> BTreeSet<String> {
        let cfg = &self.config;
        let Some(spec) = cfg.catalog.get(&permitted.tool) else {
            return BTreeSet::new();
        };
        let scan = cfg.detectors.scan(output);
        if !scan.secret_values.is_empty() {
            let key = crate::detect::fingerprint::mission_key(&session.mission);
            session.secret_prints.add(key, &scan.secret_values);
        }
        let mut labels: BTreeMap<String, String> = BTreeMap::new();
        for l in &permitted.resource_labels {
            labels.insert(l.clone(), spec.name.clone());
        }
        let mut found = content_labels(&scan, cfg.detectors.limits().max_findings);
        let before = found.len();
        found.retain(|l| crate::holds::keeps_detector_label(l, &permitted.resource_labels));
        let dropped = found.len() < before;
        crate::holds::note_public_text(session, output, dropped, &permitted.resource_labels);
        for f in &scan.findings {
            if found.contains(&f.label) {
                labels
                    .entry(f.label.clone())
                    .or_insert_with(|| format!("{} (detector {})", spec.name, f.detector));
            }
        }
        for l in &found {
            labels
                .entry(l.clone())
                .or_insert_with(|| format!("{} (detector)", spec.name));
        }
        if scan.truncated {
            for l in spec_max_labels(spec, cfg) {
                labels
                    .entry(l)
                    .or_insert_with(|| format!("{} (not fully scanned)", spec.name));
            }
        }
        if crate::provenance::absorb_output(spec, output, &cfg.directory, session) {
            labels.insert(UNTRUSTED.into(), spec.name.clone());
            crate::holds::note_untrusted(session, &permitted.resource_labels);
        }
        let subject = spec
            .subject
            .as_deref()
            .and_then(|field| crate::own::subject_of(output, field, &cfg.directory));
        crate::own::note_subject(
            session,
            labels.keys().map(String::as_str),
            subject.as_deref(),
        );
        let call_no = session.calls;
        for (label, source) in &labels {
            if label == PRIVILEGED_ADVICE {
                continue;
            }
            if cfg.sensitive.contains(label) {
                session.sensitive_read = true;
            }
            if session.taint.contains_key(label.as_str()) {
                // First source wins: nothing to build.
                continue;
            }
            session.add_label(LabelSource {
                label: label.as_str().into(),
                source: source.as_str().into(),
                call: call_no,
                at_ms: now_ms,
                session: Some(session.id.as_str().into()),
            });
        }
        usage.bytes = usage.bytes.saturating_add(output.len() as u64);
        usage.records = usage
            .records
            .saturating_add(count_records(spec.records, output));
        labels.into_keys().collect()
    }
}

/// The most characters of a value from the call's arguments an explanation quotes.
const EXCERPT_CHARS: usize = 64;

/// Push `value` (text from the call, untrusted) as a bounded excerpt: at most
/// [`EXCERPT_CHARS`] characters, control and invisible characters escaped, `…` when cut.
fn push_excerpt(out: &mut String, value: &str) {
    for (i, c) in value.chars().enumerate() {
        if i == EXCERPT_CHARS {
            out.push('…');
            return;
        }
        if c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
        {
            let _ = std::fmt::Write::write_fmt(out, format_args!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
}

/// `value` as a bounded excerpt (see [`push_excerpt`]).
pub(crate) fn excerpt(value: &str) -> String {
    let mut out = String::new();
    push_excerpt(&mut out, value);
    out
}

/// `HH:MM:SS` (UTC) of a time in ms since the Unix epoch.
pub fn clock_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Group digits in thousands: `12000` → `12,000`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The most labels an explanation names in one list; the rest are counted ("and 91 more").
/// The decision's `exposure.labels` and `flow.sources` keep every one.
const EXPLAIN_LABELS: usize = 8;
/// The most sources an explanation names; the rest are counted.
const EXPLAIN_SOURCES: usize = 4;

/// Plain-language account of what flows where, for decisions that are not allowed:
/// "2,999 of 3,000 in the audience (channel eng-help) are not cleared for security-sensitive,
/// user-data — security-sensitive from logs.query_logs (call 2, 09:00:02 UTC) …". A long
/// session's labels are named up to [`EXPLAIN_LABELS`] and their sources up to
/// [`EXPLAIN_SOURCES`]: an approver reads the first few, the decision record holds them all.
fn explain_flow(f: &FlowFacts, exposure: Option<&Exposure>, resolved: &Resolved) -> Option<String> {
    use std::fmt::Write as _;
    // Written into one buffer: an exposure can name a hundred labels and a few dozen sources.
    let mut text = String::new();
    if let Some(x) = exposure.filter(|x| x.count > 0) {
        text.reserve(256);
        let _ = write!(
            text,
            "{} of {} in the audience (",
            thousands(x.count),
            thousands(x.audience)
        );
        let mut first = true;
        let mut sep = |text: &mut String| {
            if !std::mem::take(&mut first) {
                text.push_str(", ");
            }
        };
        if let Some(a) = &resolved.audience {
            for c in &a.channels {
                sep(&mut text);
                text.push_str("channel ");
                text.push_str(c);
            }
            for g in &a.groups {
                sep(&mut text);
                text.push_str("group ");
                text.push_str(g);
            }
            for name in &a.users {
                sep(&mut text);
                push_excerpt(&mut text, name);
            }
            for name in &a.external {
                sep(&mut text);
                push_excerpt(&mut text, name);
                text.push_str(" (outside the organisation)");
            }
            for name in &a.unknown {
                sep(&mut text);
                push_excerpt(&mut text, name);
                text.push_str(" (not in the directory)");
            }
        }
        // The readers of a place written (a public one: its readers are named as the public).
        if let Some(place) = resolved
            .audience
            .as_ref()
            .and_then(|a| a.place.as_ref())
            .filter(|p| !p.iter().any(|l| l == crate::directory::PUBLIC))
        {
            sep(&mut text);
            text.push_str("readers of ");
            push_excerpt(&mut text, &resolved.resource_id);
            if !place.is_empty() {
                text.push_str(" (cleared for ");
                push_joined(&mut text, place.iter().map(String::as_str), ", ");
                text.push(')');
            }
        }
        // Hosts the call's links reach (see `crate::links`).
        for name in x.sample.iter().filter(|n| n.contains(" (a link in `")) {
            sep(&mut text);
            text.push_str(name);
        }
        text.push_str(") are not cleared for ");
        push_listed(&mut text, x.labels.iter().map(|l| &**l), x.labels.len());
        // Grouped by (source, call), in order of first appearance. A decision carries at most
        // `MAX_SOURCES` sources from the session plus a few from its arguments and resource, so
        // a linear search over the groups is cheaper than an index.
        let mut groups: Vec<(&LabelSource, Vec<&str>)> = Vec::new();
        for src in f.sources.iter().filter(|s| x.labels.contains(&s.label)) {
            match groups
                .iter_mut()
                .find(|g| g.0.call == src.call && g.0.source == src.source)
            {
                Some(g) => g.1.push(&src.label),
                None => groups.push((src, vec![&src.label])),
            }
        }
        for (i, (src, labels)) in groups.iter().take(EXPLAIN_SOURCES).enumerate() {
            text.push_str(if i == 0 { ": " } else { "; " });
            push_listed(&mut text, labels.iter().copied(), labels.len());
            let _ = write!(text, " from {} (call {}, ", src.source, src.call);
            push_clock_time(&mut text, src.at_ms);
            text.push_str(" UTC");
            if let Some(session) = &src.session {
                let _ = write!(text, ", in session {session}");
            }
            text.push(')');
        }
        if groups.len() > EXPLAIN_SOURCES {
            let _ = write!(
                text,
                "; and {} more sources",
                groups.len() - EXPLAIN_SOURCES
            );
        }
    }
    if !f.untrusted_direction.is_empty() {
        if !text.is_empty() {
            text.push_str(". ");
        }
        text.push_str("taken from untrusted content only: ");
        for (i, d) in f.untrusted_direction.iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            push_excerpt(&mut text, d);
        }
    }
    f.provenance.explain(&mut text);
    (!text.is_empty()).then_some(text)
}

/// Append the first [`EXPLAIN_LABELS`] of `len` items, separated by commas, then how many
/// were left out.
fn push_listed<'a>(out: &mut String, items: impl Iterator<Item = &'a str>, len: usize) {
    push_joined(out, items.take(EXPLAIN_LABELS), ", ");
    if len > EXPLAIN_LABELS {
        use std::fmt::Write as _;
        let _ = write!(out, " and {} more", len - EXPLAIN_LABELS);
    }
}

/// Append the items, separated by `sep`.
fn push_joined<'a>(out: &mut String, items: impl Iterator<Item = &'a str>, sep: &str) {
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(item);
    }
}

/// Append `HH:MM:SS` (UTC), as [`clock_time`] writes it.
fn push_clock_time(out: &mut String, ms: i64) {
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    for (i, n) in [secs / 3600, (secs / 60) % 60, secs % 60]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            out.push(':');
        }
        // Each part is below 100.
        out.push(char::from(b'0' + (n / 10) as u8));
        out.push(char::from(b'0' + (n % 10) as u8));
    }
}

/// `Type::"id"`, as `EntityUid`'s `Display` writes it, without its per-character escaping
/// when the id has nothing to escape.
fn uid_text(ty: &str, id: &str, uid: &EntityUid) -> String {
    let plain = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:/@+=, ".contains(&b));
    if plain && crate::catalog::RESOURCE_TYPES.contains(&ty) {
        format!("{ty}::\"{id}\"")
    } else {
        uid.to_string()
    }
}

/// True for reader-set labels (`channel:<name>`). They are accounted for in the exposure
/// count but not listed in the policy context's label sets: a session can collect many of them
/// and no policy names one.
fn is_reader_set(label: &str) -> bool {
    label.starts_with(crate::directory::CHANNEL_LABEL_PREFIX)
}

/// The most label sources a decision carries for explanation.
pub const MAX_SOURCES: usize = 32;

/// The shortest URL component that counts as carrying session data.
pub const URL_TOKEN_MIN: usize = 8;

/// True when the call's content (every argument that neither directs nor addresses it) is text
/// made of the person's own words ([`crate::words::from_purpose`]), and there is some.
fn content_is_the_persons(spec: &ToolSpec, args: &Value, purpose: &str) -> bool {
    let Value::Object(map) = args else {
        return false;
    };
    let mut any = false;
    for (k, v) in map {
        if spec.directs.iter().any(|d| d == k) || spec.is_addressing_arg(k) {
            continue;
        }
        match v {
            Value::String(s) if crate::words::from_purpose(s, purpose) => any = true,
            _ => return false,
        }
    }
    any
}

/// How many distinct email addresses make content personal data (a contact list, not a
/// signature or a mention).
pub const EMAILS_FOR_PII: usize = 3;

/// The labels content carries according to its scan. One or two email addresses are a mention,
/// not personal data; every other finding counts. When findings were capped, every label the
/// scan saw counts.
pub fn content_labels(scan: &Scan, max_findings: usize) -> BTreeSet<String> {
    if scan.findings.len() >= max_findings {
        return scan.labels.clone();
    }
    let mut out: BTreeSet<String> = scan
        .findings
        .iter()
        .filter(|f| f.detector != "email")
        .map(|f| f.label.clone())
        .collect();
    let emails: BTreeSet<(usize, Option<&str>)> = scan
        .findings
        .iter()
        .filter(|f| f.detector == "email")
        .map(|f| (f.offset, f.encoding.as_deref()))
        .collect();
    if emails.len() >= EMAILS_FOR_PII {
        out.insert("pii".into());
    }
    out
}

/// Every label a tool's output could carry: its catalog labels plus what detectors find.
fn spec_max_labels(spec: &ToolSpec, cfg: &Config) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = spec.possible_labels();
    out.insert("secret".into());
    out.insert("pii".into());
    out.retain(|l| cfg.is_confidentiality(l));
    out
}

fn count_records(kind: RecordCount, output: &str) -> u64 {
    match kind {
        RecordCount::None => 0,
        RecordCount::Lines => output.lines().filter(|l| !l.trim().is_empty()).count() as u64,
        RecordCount::JsonArray => match serde_json::from_str::<Value>(output) {
            Ok(Value::Array(a)) => a.len() as u64,
            Ok(Value::Object(m)) => m
                .values()
                .find_map(|v| v.as_array().map(|a| a.len() as u64))
                .unwrap_or(1),
            _ => output.lines().filter(|l| !l.trim().is_empty()).count() as u64,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_flow_is_explained_by_its_first_labels_and_sources() {
        // Twenty labels from ten reads (two per read) reach an audience not cleared for them.
        let labels: BTreeSet<Label> = (0..20).map(|i| Label::from(format!("l{i:02}"))).collect();
        let f = FlowFacts {
            labels: labels.clone(),
            sources: labels
                .iter()
                .enumerate()
                .map(|(i, l)| LabelSource {
                    label: l.clone(),
                    source: "forum.read_thread".into(),
                    call: i as u64 / 2 + 1,
                    at_ms: 0,
                    // The first read was made by another session of the mission.
                    session: (i < 2).then(|| "3f9a0c1d".into()),
                })
                .collect(),
            ..FlowFacts::default()
        };
        let x = Exposure {
            audience: 3_000,
            count: 2_999,
            labels,
            ..Exposure::default()
        };
        let resolved = Resolved {
            resource_type: "Channel".into(),
            resource_id: "eng-help".into(),
            labels: BTreeSet::new(),
            audience: Some(Audience {
                channels: vec!["eng-help".into()],
                ..Audience::default()
            }),
            acts_as: None,
            directing: Vec::new(),
        };
        let text = explain_flow(&f, Some(&x), &resolved).unwrap_or_default();
        assert!(
            text.starts_with(
                "2,999 of 3,000 in the audience (channel eng-help) are not cleared for \
                 l00, l01, l02, l03, l04, l05, l06, l07 and 12 more: l00, l01 from \
                 forum.read_thread (call 1, 00:00:00 UTC, in session 3f9a0c1d); l02, l03 from"
            ),
            "{text}"
        );
        assert!(!text.contains("l08"), "{text}");
        assert!(
            text.ends_with(
                "l06, l07 from forum.read_thread (call 4, 00:00:00 UTC); and 6 more sources"
            ),
            "{text}"
        );
    }

    #[test]
    fn digest_is_the_hash_of_the_canonical_json() {
        for args in [
            serde_json::json!({}),
            serde_json::json!({"b": "x\ny \"q\" \u{1} é", "a": [1, 2.5, null, true, {"z": "", "y": -3}]}),
            serde_json::json!({"body": "a".repeat(10_000)}),
        ] {
            let call = Call::new("srv", "t\"ool", args.clone());
            let text = format!(
                "{{\"args\":{},\"server\":\"srv\",\"tool\":\"t\\\"ool\"}}",
                serde_json::to_string(&args).unwrap_or_default()
            );
            assert_eq!(call.canonical().0, text.len());
            assert_eq!(call.digest(), hex::encode(Sha256::digest(text.as_bytes())));
        }
    }

    #[test]
    fn decision_id_is_the_hash_of_session_call_digest_and_time() {
        for (session, call, digest, now) in [
            ("s-1", 1u64, "abc", 1_768_478_400_000i64),
            ("", 0, "", -5),
            ("séssion", u64::MAX, "ff00", i64::MIN),
        ] {
            let text = format!("{session}\n{call}\n{digest}\n{now}");
            let full = hex::encode(Sha256::digest(text.as_bytes()));
            assert_eq!(
                decision_id(session, call, digest, now),
                format!("d-{}", &full[..20])
            );
        }
    }

    #[test]
    fn push_clock_time_matches_clock_time() {
        for ms in [
            0,
            999,
            1_000,
            59_999,
            3_599_999,
            86_399_999,
            86_400_000,
            -1,
            -86_400_001,
        ]
        .into_iter()
        .chain((0..2_000).map(|i| 1_768_478_400_000 + i * 43_211))
        {
            let mut s = String::from("x");
            push_clock_time(&mut s, ms);
            assert_eq!(s, format!("x{}", clock_time(ms)), "{ms}");
        }
    }

    #[test]
    fn uid_text_matches_cedar_display() {
        for (ty, id) in [
            ("Channel", "eng-help"),
            ("Dataset", "logs:auth"),
            ("File", "docs/public/faq.md"),
            ("Mailbox", "mallory@evil.example, bob@acme.example"),
            ("File", "we\"ird\\path\n"),
            ("Url", "https://x.example/a?b=c"),
            ("File", "ünïcode"),
        ] {
            let u = uid(ty, id);
            assert_eq!(uid_text(ty, id, &u), u.to_string(), "{ty} {id}");
        }
    }
}
