//! The Cedar context a decision gives policies: built as values, and only with what the loaded
//! policies read.

use std::collections::BTreeSet;
use std::sync::Arc;

use cedar_policy::{Context, EntityUid};
use cedar_policy_core::ast::{Context as CoreContext, Literal, Value as CValue};
use smol_str::SmolStr;

use super::types::{Breakers, Call, Ctx};
use super::Engine;
use crate::catalog::{Resolved, ToolSpec};
use crate::entity::uid;
use crate::mission::{Mission, MissionUsage};
use crate::model::{Exposure, FlowFacts};
use crate::policy::ContextUse;
use crate::session::SessionState;

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
            "depth",
            "grant_age_secs",
            "auth",
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
pub(super) const ARGS: usize = 14;
pub(super) const ARG_SUMMARIES: usize = 15;

/// A [`ContextUse`] as flags over [`CONTEXT_NAMES`], so building a context compares no names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Wanted {
    /// Bit `i`: top-level attribute `i` is built.
    top: u32,
    /// Per top-level attribute, bit `j`: its sub-attribute `j` is built.
    sub: [u32; CONTEXT_NAMES.len()],
}

impl Wanted {
    pub(super) const ALL: Wanted = Wanted {
        top: u32::MAX,
        sub: [u32::MAX; CONTEXT_NAMES.len()],
    };

    pub(super) fn of(u: &ContextUse) -> Wanted {
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

    pub(super) fn top(&self, i: usize) -> bool {
        self.top & (1 << i) != 0
    }

    fn sub(&self, i: usize, j: usize) -> bool {
        self.sub.get(i).is_some_and(|bits| bits & (1 << j) != 0)
    }
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

impl Engine {
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
        let lifted = std::collections::BTreeSet::new();
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
            lifted: &lifted,
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

    #[allow(clippy::too_many_arguments)]
    pub(super) fn context(
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
        let grant_age_secs = (cx.now_ms.saturating_sub(m.granted_at_ms) / 1000).max(0) as u64;
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
                        ("depth", &|| vlong(m.depth() as u64)),
                        ("grant_age_secs", &|| vlong(grant_age_secs)),
                        ("auth", &|| vstr(&m.auth)),
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
}

/// True for reader-set labels (`channel:<name>`). They are accounted for in the exposure
/// count but not listed in the policy context's label sets: a session can collect many of them
/// and no policy names one.
fn is_reader_set(label: &str) -> bool {
    label.starts_with(crate::entity::CHANNEL_LABEL_PREFIX)
}
