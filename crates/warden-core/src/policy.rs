//! Cedar policies: Warden's schema, loading with precise errors, and sliced evaluation.
//!
//! # Model
//!
//! Every catalog tool is a Cedar action `Action::"server.tool"`, member of its effect group
//! (`Action::"publish"`) and of its server group (`Action::"forum"`). The principal is the agent
//! (`Agent::"forum-helper"`) in one evaluation and the person it acts for (`User::"alice"`) in
//! the other; both must permit. The resource is what the call touches (`Channel::"eng-help"`,
//! `Dataset::"logs:auth"`, `File::"docs/public/faq.md"`). Everything Warden knows about the call
//! (mission, flow, exposure, session counters) is in `context`; see [`SCHEMA_BASE`].
//!
//! Agent ceilings from the config become `permit` policies with ids `ceiling:<agent>`.
//! A `forbid` annotated `@warden("ask")` means "not without approval". An optional
//! `@reason("…")` annotation gives the plain-language text shown when a policy decides.
//!
//! # Slicing
//!
//! Bare Cedar evaluates every policy for every request. Warden indexes policies by their
//! principal scope: a policy scoped to `principal == Agent::"x"` or `principal in Group::"g"` is
//! only evaluated for requests whose principal is, or descends from, that entity; policies with
//! an open principal scope (or only `is T`) form a shared slice, and policies that never read
//! `principal` are evaluated once per decision (with the agent) and count for both. The slices
//! that can apply to a (principal, action) pair are merged into one [`PolicySet`], memoized, and
//! evaluated once, so the cost does not grow with the number of policies written for other
//! agents, groups and tenants.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use cedar_policy::{
    ActionConstraint, Context, Effect as CedarEffect, Entities, EntityUid, Policy, PolicyId,
    PolicySet, PrincipalConstraint, Schema,
};
use cedar_policy_core::ast::Effect as CoreEffect;
use cedar_policy_core::ast::{
    EntityUIDEntry, Expr, Literal, Policy as CorePolicy, PolicyID, Request as CoreRequest,
    ValueKind,
};
use cedar_policy_core::evaluator::Evaluator;
use cedar_policy_core::extensions::Extensions;
use miette::Diagnostic;

pub use crate::entity::uid;
use crate::error::{Issues, LineIndex};
use crate::pattern::ToolPattern;
pub use crate::schema::{build_schema, schema_text, SCHEMA_BASE};

/// One policy, with where it came from.
#[derive(Debug, Clone)]
pub struct PolicyInfo {
    /// The policy id (`@id` annotation, or `file#n`).
    pub id: String,
    /// The file it was read from (`<ceiling>` for generated ones).
    pub file: String,
    /// 1-based line of its first character.
    pub line: usize,
    /// `@warden("ask")`.
    pub ask: bool,
    /// `permit` or `forbid`.
    pub permit: bool,
    /// `@reason` text, if any.
    pub reason: Option<String>,
    /// For an ask: what kind of hold it makes (`@hold("consent")`, `@hold("exposure")`, …;
    /// `review` when not said). Approver policies see it as `resource.kind`.
    pub hold: Option<String>,
    /// For an ask: how many different people must approve its hold (`@approvers("2")`; 1 when
    /// not said).
    pub approvers: u32,
}

/// The most (principal, action) pairs whose merged policy set is remembered; past it the
/// memo starts over (it is a cache: a miss costs a few microseconds, never a wrong answer).
const MERGED_BY_REQUEST_MAX: usize = 65_536;
/// The most distinct merged policy sets remembered.
const MERGED_SETS_MAX: usize = 16_384;

/// Which slices apply to one (principal, action) pair, merged into one policy set.
#[derive(Debug)]
struct MergedEntry {
    with_shared: bool,
    principal: EntityUid,
    ancestors: Vec<EntityUid>,
    action: EntityUid,
    groups: Vec<EntityUid>,
    set: Option<Arc<Merged>>,
}

/// A merged policy set, ready to evaluate: each policy with its condition expression, built
/// once (Cedar's `Evaluator::evaluate` rebuilds it from the policy's scope and body on every
/// call), in the set's iteration order.
#[derive(Debug)]
struct Merged {
    policies: Vec<(CorePolicy, Arc<Expr>)>,
}

impl Merged {
    fn of(set: &PolicySet, conditions: &HashMap<PolicyID, Arc<Expr>>) -> Merged {
        Merged {
            policies: set
                .as_ref()
                .policies()
                .map(|p| {
                    let condition = conditions
                        .get(p.id())
                        .cloned()
                        .unwrap_or_else(|| Arc::new(p.condition()));
                    (p.clone(), condition)
                })
                .collect(),
        }
    }
}

#[derive(Debug, Default)]
struct MergeCache {
    /// Hash of (with_shared, principal, ancestors, action, groups) → entry (checked in full on a hit).
    by_request: HashMap<u64, MergedEntry>,
    /// Sorted slice indexes → their merged set, so pairs that see the same slices share one set.
    by_slices: HashMap<Vec<usize>, Arc<Merged>>,
}

/// The loaded, validated and indexed policy set.
#[derive(Debug)]
pub struct PolicyEngine {
    schema: Schema,
    all: PolicySet,
    info: HashMap<String, PolicyInfo>,
    /// principal key → action key → index into `slice_policies`. Principal keys: `shared`
    /// (open scope, body never names `principal`: evaluated once per decision), `*`,
    /// `is:<Type>`, an entity uid. Action keys: `*` or an action uid (a tool, an effect group, a
    /// server group).
    slices: HashMap<String, HashMap<String, usize>>,
    slice_policies: Vec<Vec<Policy>>,
    /// Each policy's condition expression, built once at load and shared by the merged sets.
    conditions: HashMap<PolicyID, Arc<Expr>>,
    /// Ids of the policies in `shared` slices.
    shared: HashSet<String>,
    merged: RwLock<MergeCache>,
    context_use: ContextUse,
}

/// A source file of policies.
#[derive(Debug, Clone)]
pub struct PolicyFile {
    /// The file name (for errors and policy ids).
    pub file: String,
    /// Its text.
    pub text: String,
}

/// The result of one evaluation (one principal).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// Satisfied permits.
    pub permits: BTreeSet<String>,
    /// Satisfied hard forbids.
    pub forbids: BTreeSet<String>,
    /// Satisfied `@warden("ask")` forbids.
    pub asks: BTreeSet<String>,
    /// Evaluation errors (each denies).
    pub errors: Vec<String>,
}

/// Errors building the schema.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The generated schema did not parse (a catalog name Cedar cannot express).
    #[error("the schema generated from the catalog is invalid: {0}")]
    Schema(String),
}

/// The principal key of the slice evaluated once per decision.
const SHARED: &str = "shared";

fn principal_keys(principal: &EntityUid, ancestors: &[EntityUid]) -> Vec<String> {
    let mut keys = Vec::with_capacity(3 + ancestors.len());
    keys.push("*".to_string());
    keys.push(format!("is:{}", principal.type_name()));
    keys.push(principal.to_string());
    keys.extend(ancestors.iter().map(ToString::to_string));
    keys
}

fn action_keys(action: &EntityUid, groups: &[EntityUid]) -> Vec<String> {
    let mut keys = Vec::with_capacity(2 + groups.len());
    keys.push("*".to_string());
    keys.push(action.to_string());
    keys.extend(groups.iter().map(ToString::to_string));
    keys
}

/// Which parts of `context` the loaded policies read. Warden builds only those: an attribute
/// no policy reads cannot change a decision. Computed from every policy's JSON form; any use
/// of `context` other than a chain of attribute accesses or `has` tests keeps everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContextUse {
    /// Everything is needed.
    pub all: bool,
    /// Top-level attribute → `None` when it is read whole, or the sub-attributes read.
    pub top: BTreeMap<String, Option<BTreeSet<String>>>,
}

impl ContextUse {
    /// Everything (for tools that show the whole context).
    pub fn everything() -> ContextUse {
        ContextUse {
            all: true,
            top: BTreeMap::new(),
        }
    }

    /// True when the top-level attribute is read.
    pub fn wants(&self, top: &str) -> bool {
        self.all || self.top.contains_key(top)
    }

    /// True when `top.sub` is read (or `top` whole).
    pub fn wants_sub(&self, top: &str, sub: &str) -> bool {
        self.all
            || match self.top.get(top) {
                Some(None) => true,
                Some(Some(subs)) => subs.contains(sub),
                None => false,
            }
    }

    /// From every policy's JSON form (`None`: a policy without one, which keeps everything).
    fn of<'a>(json: impl IntoIterator<Item = Option<&'a serde_json::Value>>) -> ContextUse {
        let mut u = ContextUse::default();
        for j in json {
            match j {
                Some(j) => u.walk(j),
                None => u.all = true,
            }
        }
        u
    }

    /// The attribute chain of an access on `context` (`context.flow.labels` → [flow, labels]).
    fn path(v: &serde_json::Value) -> Option<Vec<String>> {
        let m = v.as_object()?;
        if m.get("Var").and_then(|x| x.as_str()) == Some("context") {
            return Some(Vec::new());
        }
        let inner = m.get(".").or_else(|| m.get("has"))?;
        let left = inner.get("left")?;
        let attr = inner.get("attr")?.as_str()?;
        let mut p = Self::path(left)?;
        p.push(attr.to_string());
        Some(p)
    }

    fn walk(&mut self, v: &serde_json::Value) {
        if self.all {
            return;
        }
        if let Some(path) = Self::path(v) {
            match path.as_slice() {
                [] => self.all = true,
                [top] => {
                    self.top.insert(top.clone(), None);
                }
                [top, sub, ..] => {
                    let e = self
                        .top
                        .entry(top.clone())
                        .or_insert_with(|| Some(BTreeSet::new()));
                    if let Some(subs) = e {
                        subs.insert(sub.clone());
                    }
                }
            }
            return;
        }
        match v {
            serde_json::Value::Object(m) => m.values().for_each(|x| self.walk(x)),
            serde_json::Value::Array(a) => a.iter().for_each(|x| self.walk(x)),
            _ => {}
        }
    }
}

/// True when a policy's conditions refer to `principal` (its JSON form holds `{"Var": "principal"}`).
/// Policies with an open principal scope that never refer to it decide the same for the agent
/// and for the person, so they are evaluated once. Fails safe: when in doubt, true.
fn mentions_principal(json: Option<&serde_json::Value>) -> bool {
    fn walk(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(m) => {
                m.get("Var").and_then(|x| x.as_str()) == Some("principal") || m.values().any(walk)
            }
            serde_json::Value::Array(a) => a.iter().any(walk),
            _ => false,
        }
    }
    match json {
        Some(j) => j.get("conditions").is_none_or(walk),
        None => true,
    }
}

fn slice_key_principal(c: &PrincipalConstraint) -> String {
    match c {
        PrincipalConstraint::Any => "*".into(),
        PrincipalConstraint::Is(t) => format!("is:{t}"),
        PrincipalConstraint::Eq(u)
        | PrincipalConstraint::In(u)
        | PrincipalConstraint::IsIn(_, u) => u.to_string(),
    }
}

fn diag_line(d: &dyn Diagnostic, lines: &LineIndex) -> Option<usize> {
    d.labels()
        .and_then(|mut ls| ls.next())
        .map(|l| lines.line(l.offset()))
}

impl PolicyEngine {
    /// Parse, id, validate and index policies. Agent ceilings become `ceiling:<agent>` permits.
    pub fn load(
        schema: Schema,
        files: &[PolicyFile],
        ceilings: &BTreeMap<String, Vec<ToolPattern>>,
        issues: &mut Issues,
    ) -> PolicyEngine {
        let mut all = PolicySet::new();
        let mut info: HashMap<String, PolicyInfo> = HashMap::new();
        // The lines of each file, by file index, and the file of each policy id.
        let lines: Vec<LineIndex> = files.iter().map(|f| LineIndex::new(&f.text)).collect();
        let mut file_of: HashMap<String, usize> = HashMap::new();
        for (fi, (f, lines)) in files.iter().zip(&lines).enumerate() {
            let set = match PolicySet::from_str(&f.text) {
                Ok(s) => s,
                Err(errs) => {
                    for e in errs.iter() {
                        issues.push(&f.file, diag_line(e, lines), e.to_string());
                    }
                    continue;
                }
            };
            let starts = statement_starts(&f.text);
            for (n, p) in set.policies().enumerate() {
                let idx = p
                    .id()
                    .to_string()
                    .strip_prefix("policy")
                    .and_then(|x| x.parse::<usize>().ok())
                    .unwrap_or(n);
                let line = starts.get(idx).map(|o| lines.line(*o)).unwrap_or(1);
                let id = p
                    .annotation("id")
                    .map(String::from)
                    .unwrap_or_else(|| format!("{}#{}", f.file, idx));
                if let Some(prev) = info.get(&id) {
                    issues.push(
                        &f.file,
                        Some(line),
                        format!(
                            "policy id `{id}` is already used at {}:{}",
                            prev.file, prev.line
                        ),
                    );
                    continue;
                }
                let ask = match p.annotation("warden") {
                    None => false,
                    Some("ask") if p.effect() == CedarEffect::Forbid => true,
                    Some("ask") => {
                        issues.push(
                            &f.file,
                            Some(line),
                            format!(
                                "policy `{id}`: @warden(\"ask\") applies to `forbid` policies only"
                            ),
                        );
                        false
                    }
                    Some(other) => {
                        issues.push(&f.file, Some(line), format!("policy `{id}`: unknown @warden(\"{other}\"); the only value is \"ask\""));
                        false
                    }
                };
                let reason = p.annotation("reason").map(String::from);
                let hold = p.annotation("hold").map(String::from);
                let approvers = match p.annotation("approvers") {
                    None => 1,
                    Some(n) => match n.parse::<u32>() {
                        Ok(n) if (1..=20).contains(&n) => n,
                        _ => {
                            issues.push(
                                &f.file,
                                Some(line),
                                format!("policy `{id}`: @approvers(\"{n}\") is not a number from 1 to 20"),
                            );
                            1
                        }
                    },
                };
                if (hold.is_some() || approvers > 1) && !ask {
                    issues.push(
                        &f.file,
                        Some(line),
                        format!("policy `{id}`: @hold and @approvers apply to @warden(\"ask\") policies only"),
                    );
                }
                let renamed = p.new_id(PolicyId::new(&id));
                if let Err(e) = all.add(renamed) {
                    issues.push(&f.file, Some(line), e.to_string());
                    continue;
                }
                file_of.insert(id.clone(), fi);
                info.insert(
                    id.clone(),
                    PolicyInfo {
                        id,
                        file: f.file.clone(),
                        line,
                        ask,
                        permit: p.effect() == CedarEffect::Permit,
                        reason,
                        hold,
                        approvers,
                    },
                );
            }
        }
        for (agent, pats) in ceilings {
            let id = format!("ceiling:{agent}");
            let actions: Vec<String> = pats
                .iter()
                .map(|p| match p {
                    ToolPattern::All => String::new(),
                    ToolPattern::Server(s) => format!("Action::\"{}\"", s.replace('"', "")),
                    ToolPattern::Tool(t) => format!("Action::\"{}\"", t.replace('"', "")),
                })
                .collect();
            let action_scope = if actions.iter().any(String::is_empty) {
                "action".to_string()
            } else {
                format!("action in [{}]", actions.join(", "))
            };
            let src = format!(
                "permit(principal == Agent::\"{}\", {action_scope}, resource);",
                agent.replace('"', "")
            );
            match Policy::parse(Some(PolicyId::new(&id)), &src) {
                Ok(p) => {
                    if let Err(e) = all.add(p) {
                        issues.push("<agents>", None, format!("ceiling of `{agent}`: {e}"));
                        continue;
                    }
                    info.insert(
                        id.clone(),
                        PolicyInfo {
                            id,
                            file: "<agents>".into(),
                            line: 0,
                            ask: false,
                            permit: true,
                            reason: Some(format!("within the ceiling of agent `{agent}`")),
                            hold: None,
                            approvers: 1,
                        },
                    );
                }
                Err(e) => issues.push("<agents>", None, format!("ceiling of `{agent}`: {e}")),
            }
        }

        // Each policy's JSON form, made once: for validation, slicing and the context's use.
        let json: HashMap<PolicyId, serde_json::Value> = all
            .policies()
            .filter_map(|p| p.to_json().ok().map(|j| (p.id().clone(), j)))
            .collect();
        let v = crate::validation::validate_strict(&schema, &all, &json);
        for e in v.validation_errors() {
            let id = e.policy_id().to_string();
            let (file, line) = match info.get(&id) {
                Some(i) => (
                    i.file.clone(),
                    file_of
                        .get(&id)
                        .and_then(|fi| lines.get(*fi))
                        .and_then(|l| diag_line(e, l))
                        .or(Some(i.line)),
                ),
                None => ("<policies>".into(), None),
            };
            let text = e.to_string();
            // A typed argument read where the tool lacks it: say how to fix it.
            let help = if text.contains("attribute `args.") {
                " (policies read the arguments the catalog types, `types` in the tool's entry; on a group of tools, guard the read with `context.args has …` or name the tool)"
            } else {
                ""
            };
            issues.push(&file, line, format!("policy `{id}`: {text}{help}"));
        }

        let mut grouped: HashMap<(String, String), Vec<Policy>> = HashMap::new();
        let mut shared = HashSet::new();
        for p in all.policies() {
            let mut pkey = slice_key_principal(&p.principal_constraint());
            if pkey == "*" && !mentions_principal(json.get(p.id())) {
                pkey = SHARED.to_string();
                shared.insert(p.id().to_string());
            }
            let akeys: Vec<String> = match p.action_constraint() {
                ActionConstraint::Any => vec!["*".to_string()],
                ActionConstraint::Eq(a) => vec![a.to_string()],
                ActionConstraint::In(list) => list.iter().map(ToString::to_string).collect(),
            };
            for akey in akeys {
                grouped
                    .entry((pkey.clone(), akey))
                    .or_default()
                    .push(p.clone());
            }
        }
        let mut slices: HashMap<String, HashMap<String, usize>> = HashMap::new();
        let mut slice_policies = Vec::with_capacity(grouped.len());
        for ((pk, ak), ps) in grouped {
            slices
                .entry(pk)
                .or_default()
                .insert(ak, slice_policies.len());
            slice_policies.push(ps);
        }
        let context_use = ContextUse::of(all.policies().map(|p| json.get(p.id())));
        let conditions = all
            .as_ref()
            .policies()
            .map(|p| (p.id().clone(), Arc::new(p.condition())))
            .collect();
        PolicyEngine {
            schema,
            all,
            info,
            slices,
            slice_policies,
            conditions,
            shared,
            merged: RwLock::new(MergeCache::default()),
            context_use,
        }
    }

    /// The schema in force.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Every policy, unsliced (for comparison and analysis).
    pub fn policy_set(&self) -> &PolicySet {
        &self.all
    }

    /// The version of the policy set: SHA-256 (hex) of every policy's text, in order of their
    /// ids. Two loads of the same policies have the same version; any edit changes it.
    pub fn version(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut texts: Vec<(String, String)> = self
            .all
            .policies()
            .map(|p| (p.id().to_string(), p.to_string()))
            .collect();
        texts.sort();
        let mut h = Sha256::new();
        for (id, text) in texts {
            h.update((id.len() as u64).to_be_bytes());
            h.update(id.as_bytes());
            h.update((text.len() as u64).to_be_bytes());
            h.update(text.as_bytes());
        }
        hex::encode(h.finalize())
    }

    /// Which parts of the context the loaded policies read.
    pub fn context_use(&self) -> &ContextUse {
        &self.context_use
    }

    /// Where a policy came from.
    pub fn info(&self, id: &str) -> Option<&PolicyInfo> {
        self.info.get(id)
    }

    /// Number of policies (including generated ceilings).
    pub fn len(&self) -> usize {
        self.info.len()
    }

    /// True when no policy is loaded.
    pub fn is_empty(&self) -> bool {
        self.info.is_empty()
    }

    /// Evaluate one request over the slices that can apply to `principal` (given its ancestors)
    /// and to `action` (given its groups), the shared slices included.
    #[allow(clippy::too_many_arguments)]
    pub fn evaluate(
        &self,
        principal: &EntityUid,
        ancestors: &[EntityUid],
        action: &EntityUid,
        action_groups: &[EntityUid],
        resource: &EntityUid,
        context: Context,
        entities: &Entities,
    ) -> Evaluation {
        let mut out = Evaluation::default();
        if let Some(set) = self.merged(true, principal, ancestors, action, action_groups) {
            self.run(
                &set, principal, action, resource, &context, entities, &mut out, None,
            );
        }
        out
    }

    /// Evaluate a call twice — the agent as principal, then the person it acts for — sharing
    /// the work for policies that never look at the principal: they are evaluated with the
    /// agent, and what they decide counts for both.
    #[allow(clippy::too_many_arguments)]
    pub fn evaluate_pair(
        &self,
        agent: &EntityUid,
        user: &EntityUid,
        user_ancestors: &[EntityUid],
        action: &EntityUid,
        action_groups: &[EntityUid],
        resource: &EntityUid,
        context: Context,
        entities: &Entities,
    ) -> (Evaluation, Evaluation) {
        let mut by_agent = Evaluation::default();
        let mut by_user = Evaluation::default();
        if let Some(set) = self.merged(true, agent, &[], action, action_groups) {
            self.run(
                &set,
                agent,
                action,
                resource,
                &context,
                entities,
                &mut by_agent,
                Some(&mut by_user),
            );
        }
        if let Some(set) = self.merged(false, user, user_ancestors, action, action_groups) {
            self.run(
                &set,
                user,
                action,
                resource,
                &context,
                entities,
                &mut by_user,
                None,
            );
        }
        (by_agent, by_user)
    }

    /// The merged policy set of the slices that can apply to a principal (given its ancestors)
    /// and an action (given its groups), `shared` slices included when asked. Remembered per
    /// pair; `None` when no policy can apply.
    fn merged(
        &self,
        with_shared: bool,
        principal: &EntityUid,
        ancestors: &[EntityUid],
        action: &EntityUid,
        groups: &[EntityUid],
    ) -> Option<Arc<Merged>> {
        // A fixed, fast hash: a collision only costs a recomputation (entries are checked in full).
        let mut h = std::hash::BuildHasher::build_hasher(&foldhash::fast::FixedState::default());
        (with_shared, principal, ancestors, action, groups).hash(&mut h);
        let key = h.finish();
        if let Ok(cache) = self.merged.read() {
            if let Some(e) = cache.by_request.get(&key) {
                if e.with_shared == with_shared
                    && &e.principal == principal
                    && e.action == *action
                    && e.ancestors == ancestors
                    && e.groups == groups
                {
                    return e.set.clone();
                }
            }
        }
        let akeys = action_keys(action, groups);
        let mut pkeys = principal_keys(principal, ancestors);
        if with_shared {
            pkeys.push(SHARED.to_string());
        }
        let mut ids: Vec<usize> = pkeys
            .iter()
            .filter_map(|pk| self.slices.get(pk))
            .flat_map(|by_action| akeys.iter().filter_map(|ak| by_action.get(ak).copied()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let set = if ids.is_empty() {
            None
        } else {
            let known = self
                .merged
                .read()
                .ok()
                .and_then(|c| c.by_slices.get(&ids).cloned());
            match known {
                Some(set) => Some(set),
                None => self
                    .merge(&ids)
                    .map(|set| Arc::new(Merged::of(&set, &self.conditions))),
            }
        };
        if let Ok(mut cache) = self.merged.write() {
            if cache.by_request.len() >= MERGED_BY_REQUEST_MAX {
                cache.by_request.clear();
            }
            if cache.by_slices.len() >= MERGED_SETS_MAX {
                cache.by_slices.clear();
            }
            if let Some(set) = &set {
                cache.by_slices.entry(ids).or_insert_with(|| set.clone());
            }
            cache.by_request.insert(
                key,
                MergedEntry {
                    with_shared,
                    principal: principal.clone(),
                    ancestors: ancestors.to_vec(),
                    action: action.clone(),
                    groups: groups.to_vec(),
                    set: set.clone(),
                },
            );
        }
        set
    }

    /// One policy set of the policies of some slices, each policy once.
    fn merge(&self, ids: &[usize]) -> Option<PolicySet> {
        let mut seen = HashSet::new();
        let policies: Vec<Policy> = ids
            .iter()
            .filter_map(|i| self.slice_policies.get(*i))
            .flatten()
            .filter(|p| seen.insert(p.id().clone()))
            .cloned()
            .collect();
        PolicySet::from_policies(policies).ok()
    }

    /// Evaluate one merged set: one pass of Cedar's evaluator reports every satisfied permit
    /// and forbid (the public `is_authorized` reports only the determining ones). Hits of
    /// shared policies are copied to `shared_to` (the other principal's evaluation).
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        set: &Merged,
        principal: &EntityUid,
        action: &EntityUid,
        resource: &EntityUid,
        context: &Context,
        entities: &Entities,
        out: &mut Evaluation,
        mut shared_to: Option<&mut Evaluation>,
    ) {
        let request = CoreRequest::new_unchecked(
            EntityUIDEntry::known(principal.as_ref().clone(), None),
            EntityUIDEntry::known(action.as_ref().clone(), None),
            EntityUIDEntry::known(resource.as_ref().clone(), None),
            Some(context.as_ref().clone()),
        );
        // Cedar's evaluator, policy by policy: every satisfied permit and forbid, without the
        // response maps `is_authorized` builds.
        let eval = Evaluator::new(request, entities.as_ref(), Extensions::all_available());
        for (p, condition) in &set.policies {
            let id: &str = p.id().as_ref();
            let shared = || self.shared.contains(id);
            // What `Evaluator::evaluate(p)` does, with the condition built once. A condition
            // that is not a boolean (a validated policy's never is) goes through `evaluate`
            // itself, for its error.
            let result = match eval.interpret(condition, p.env()) {
                Ok(v) => match v.value_kind() {
                    ValueKind::Lit(Literal::Bool(b)) => Ok(*b),
                    _ => eval.evaluate(p),
                },
                Err(e) => Err(e),
            };
            match result {
                Ok(false) => {}
                Ok(true) => {
                    let add = |ev: &mut Evaluation| match p.effect() {
                        CoreEffect::Permit => {
                            ev.permits.insert(id.to_string());
                        }
                        CoreEffect::Forbid if self.info.get(id).is_some_and(|i| i.ask) => {
                            ev.asks.insert(id.to_string());
                        }
                        CoreEffect::Forbid => {
                            ev.forbids.insert(id.to_string());
                        }
                    };
                    add(out);
                    if let Some(to) = shared_to.as_deref_mut().filter(|_| shared()) {
                        add(to);
                    }
                }
                Err(e) => {
                    let text = format!("while evaluating policy `{id}`: {e}");
                    if let Some(to) = shared_to.as_deref_mut().filter(|_| shared()) {
                        to.errors.push(text.clone());
                    }
                    out.errors.push(text);
                }
            }
        }
    }
}

/// Byte offsets where each top-level Cedar statement starts (annotations included), skipping
/// comments and strings. Used to give every policy a line number.
fn statement_starts(text: &str) -> Vec<usize> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut in_stmt = false;
    while i < b.len() {
        let c = b.get(i).copied().unwrap_or(b' ');
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b.get(i) != Some(&b'\n') {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if !in_stmt {
            out.push(i);
            in_stmt = true;
        }
        if c == b'"' {
            i += 1;
            while i < b.len() {
                match b.get(i) {
                    Some(b'\\') => i += 2,
                    Some(b'"') => break,
                    _ => i += 1,
                }
            }
        } else if c == b';' {
            in_stmt = false;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn uses(src: &str) -> ContextUse {
        let set = PolicySet::from_str(src).unwrap();
        let json: Vec<_> = set.policies().map(|p| p.to_json().ok()).collect();
        ContextUse::of(json.iter().map(Option::as_ref))
    }

    #[test]
    fn context_use_keeps_exactly_what_policies_read() {
        let u = uses(
            r#"forbid (principal, action, resource) when { context.flow.labels.contains("secret") && context.exposure.count > 0 };
               permit (principal, action, resource) when { context has acts_as && context.mission has purpose };
               forbid (principal, action, resource) when { context.session == {"calls": 1} };"#,
        );
        assert!(!u.all);
        assert!(u.wants_sub("flow", "labels"));
        assert!(!u.wants_sub("flow", "sensitive"));
        assert!(u.wants_sub("exposure", "count"));
        assert!(!u.wants_sub("exposure", "labels"));
        assert!(u.wants("acts_as"));
        assert!(u.wants_sub("mission", "purpose"));
        assert!(!u.wants_sub("mission", "id"));
        // Read whole: every sub-attribute is kept.
        assert!(u.wants_sub("session", "untrusted_input"));
        assert!(!u.wants("tool"));
        assert!(!u.wants("rule_of_two"));
    }

    #[test]
    fn context_used_as_a_value_keeps_everything() {
        let u = uses(r#"forbid (principal, action, resource) when { context == {"a": 1} };"#);
        assert!(u.all);
        assert!(u.wants("tool") && u.wants_sub("flow", "labels"));
    }
}
