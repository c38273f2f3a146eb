//! Who may approve a held call: Cedar policies over the action `approve`, with the approver as
//! principal and the hold as resource.
//!
//! A call is held by one or more `@warden("ask")` policies; each makes a *hold* that needs its
//! own approval. A hold is a Cedar entity `Hold` whose attributes say what it is about:
//!
//! | attribute | meaning |
//! | --- | --- |
//! | `kind` | the ask policy's `@hold` (`consent`, `exposure`, …; `review` when not said) |
//! | `policy` | the ask policy's id |
//! | `principal` | the person the mission acts for (`User`) |
//! | `agent` | the agent that made the call (`Agent`) |
//! | `tool`, `effect` | `server.tool` and its effect |
//! | `labels` | the labels flowing into the call (exposure labels included) |
//! | `resource_labels` | the labels of what the call touches |
//! | `exposure`, `audience` | people who would see data they are not cleared for, and everyone who would see it |
//! | `mission`, `template` | the mission's id and template |
//!
//! Approvers are `User` entities in their directory groups, with their `clearances`. Approver
//! policies live in their own files (`[approvals] policies`), validated against
//! [`APPROVE_SCHEMA`]. Without any, the built-in [`DEFAULT_APPROVERS`] apply: the principal
//! consents to act under their name, and nothing else can be approved.
//!
//! Two rules hold whatever the policies say: only the principal consents to act under their
//! name (a `consent` hold), and an agent is never an approver.

use std::collections::BTreeSet;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, EntityUid, PolicyId, PolicySet,
    Request, Schema, ValidationMode, Validator,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::directory::Directory;
use crate::error::Issues;
use crate::policy::PolicyFile;

/// The schema approver policies are validated against.
pub const APPROVE_SCHEMA: &str = r#"
entity Group in [Group];
entity User in [Group] { clearances: Set<String> };
entity Agent;
entity Hold {
  kind: String,
  policy: String,
  principal: User,
  agent: Agent,
  tool: String,
  effect: String,
  labels: Set<String>,
  resource_labels: Set<String>,
  exposure: Long,
  audience: Long,
  mission: String,
  template: String,
};
action approve appliesTo { principal: [User], resource: [Hold] };
"#;

/// The approver policies used when the configuration names none.
pub const DEFAULT_APPROVERS: &str = r#"
// Act-as consent: the principal, and only the principal.
@id("consent-by-principal")
permit (principal, action == Action::"approve", resource)
when { resource.kind == "consent" && principal == resource.principal };

// Separation of duties: the principal does not approve their own mission's other holds.
@id("no-self-approval")
forbid (principal, action == Action::"approve", resource)
when { resource.kind != "consent" && principal == resource.principal };
"#;

/// The hold kind of act-as consent.
pub const CONSENT: &str = "consent";
/// The hold kind of an ask policy that names none.
pub const REVIEW: &str = "review";

/// What one hold is about (the `Hold` entity's attributes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldFacts {
    /// `consent`, `exposure`, … (`review` when the ask policy does not say).
    pub kind: String,
    /// The ask policy that made it.
    pub policy: String,
    /// The person the mission acts for.
    pub principal: String,
    /// The agent that made the call.
    pub agent: String,
    /// `server.tool`.
    pub tool: String,
    /// The tool's effect.
    pub effect: String,
    /// Labels flowing into the call.
    pub labels: BTreeSet<String>,
    /// Labels of what the call touches.
    pub resource_labels: BTreeSet<String>,
    /// People who would see data they are not cleared for.
    pub exposure: u64,
    /// Everyone who would see the call's output.
    pub audience: u64,
    /// The mission's id.
    pub mission: String,
    /// The mission's template.
    pub template: String,
}

/// Whether a person may approve a hold, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MayApprove {
    /// True when they may.
    pub allowed: bool,
    /// The approver policies that decided.
    pub policies: Vec<String>,
    /// Why, in words.
    pub reason: String,
}

/// The approver policies in force.
#[derive(Debug, Clone)]
pub struct ApprovePolicies {
    /// `None` only when the built-in schema could not be read (then nobody may approve).
    schema: Option<Schema>,
    set: PolicySet,
    files: Vec<String>,
}

fn schema() -> Result<Schema, String> {
    Schema::from_cedarschema_str(APPROVE_SCHEMA)
        .map(|(s, _)| s)
        .map_err(|e| e.to_string())
}

impl ApprovePolicies {
    /// Parse and validate approver policies; [`DEFAULT_APPROVERS`] when `files` is empty.
    /// Problems go to `issues`, naming the file.
    pub fn load(files: &[PolicyFile], issues: &mut Issues) -> ApprovePolicies {
        let default = [PolicyFile {
            file: "<default approvers>".into(),
            text: DEFAULT_APPROVERS.into(),
        }];
        let files = if files.is_empty() {
            &default[..]
        } else {
            files
        };
        let schema = match schema() {
            Ok(s) => s,
            Err(e) => {
                issues.push("<approve schema>", None, e);
                return ApprovePolicies::empty();
            }
        };
        let mut set = PolicySet::new();
        for f in files {
            let parsed = match PolicySet::from_str(&f.text) {
                Ok(s) => s,
                Err(errs) => {
                    for e in errs.iter() {
                        issues.push(&f.file, None, e.to_string());
                    }
                    continue;
                }
            };
            for (n, p) in parsed.policies().enumerate() {
                let id = p
                    .annotation("id")
                    .map(String::from)
                    .unwrap_or_else(|| format!("{}#{n}", f.file));
                if let Err(e) = set.add(p.new_id(PolicyId::new(&id))) {
                    issues.push(&f.file, None, format!("policy `{id}`: {e}"));
                }
            }
        }
        let v = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
        for e in v.validation_errors() {
            issues.push(
                "<approvers>",
                None,
                format!("approver policy `{}`: {e}", e.policy_id()),
            );
        }
        ApprovePolicies {
            schema: Some(schema),
            set,
            files: files.iter().map(|f| f.file.clone()).collect(),
        }
    }

    /// No policy: nobody may approve anything.
    pub fn empty() -> ApprovePolicies {
        ApprovePolicies {
            schema: schema().ok(),
            set: PolicySet::new(),
            files: Vec::new(),
        }
    }

    /// The files the policies came from.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// How many policies are loaded.
    pub fn len(&self) -> usize {
        self.set.policies().count()
    }

    /// True when no policy is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `approver` (a directory user) may approve `hold`.
    pub fn may_approve(&self, dir: &Directory, approver: &str, hold: &HoldFacts) -> MayApprove {
        let refuse = |reason: String| MayApprove {
            allowed: false,
            policies: Vec::new(),
            reason,
        };
        if approver == hold.agent {
            return refuse(format!("`{approver}` is the agent that made the call"));
        }
        if dir.user(approver).is_none() {
            return refuse(format!("`{approver}` is not a person in the directory"));
        }
        if hold.kind == CONSENT && approver != hold.principal {
            return refuse(format!(
                "only `{}` may consent to act under their own name",
                hold.principal
            ));
        }
        let Some(schema) = &self.schema else {
            return refuse("the approver schema could not be read".into());
        };
        let entities = match self.entities(schema, dir, approver, hold) {
            Ok(e) => e,
            Err(e) => return refuse(format!("the hold cannot be evaluated: {e}")),
        };
        let uid = |t: &str, id: &str| EntityUid::from_str(&format!("{t}::{}", json!(id))).ok();
        let (Some(p), Some(a), Some(r)) = (
            uid("User", approver),
            uid("Action", "approve"),
            uid("Hold", &hold.policy),
        ) else {
            return refuse("the hold cannot be named in Cedar".into());
        };
        let request = match Request::new(p, a, r, Context::empty(), Some(schema)) {
            Ok(r) => r,
            Err(e) => return refuse(format!("the hold cannot be evaluated: {e}")),
        };
        let response = Authorizer::new().is_authorized(&request, &self.set, &entities);
        let policies: Vec<String> = response
            .diagnostics()
            .reason()
            .map(ToString::to_string)
            .collect();
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(ToString::to_string)
            .collect();
        match response.decision() {
            CedarDecision::Allow => MayApprove {
                allowed: true,
                reason: format!("permitted by {}", quoted(&policies)),
                policies,
            },
            CedarDecision::Deny if !policies.is_empty() => MayApprove {
                allowed: false,
                reason: format!("forbidden by {}", quoted(&policies)),
                policies,
            },
            CedarDecision::Deny if !errors.is_empty() => refuse(format!(
                "no approver policy could be evaluated: {}",
                errors.join("; ")
            )),
            CedarDecision::Deny => refuse(format!(
                "no approver policy permits `{approver}` to approve a `{}` hold",
                hold.kind
            )),
        }
    }

    fn entities(
        &self,
        schema: &Schema,
        dir: &Directory,
        approver: &str,
        hold: &HoldFacts,
    ) -> Result<Entities, String> {
        let user = |id: &str| {
            let groups: Vec<_> = dir
                .user(id)
                .map(|u| {
                    u.groups
                        .iter()
                        .map(|g| json!({"type": "Group", "id": g}))
                        .collect()
                })
                .unwrap_or_default();
            let clearances: Vec<&String> = dir
                .clearances(id)
                .map(|c| c.iter().collect())
                .unwrap_or_default();
            json!({
                "uid": {"type": "User", "id": id},
                "attrs": {"clearances": clearances},
                "parents": groups,
            })
        };
        let mut all = vec![user(approver)];
        if hold.principal != approver {
            all.push(user(&hold.principal));
        }
        all.push(json!({"uid": {"type": "Agent", "id": hold.agent}, "attrs": {}, "parents": []}));
        all.push(json!({
            "uid": {"type": "Hold", "id": hold.policy},
            "attrs": {
                "kind": hold.kind,
                "policy": hold.policy,
                "principal": {"__entity": {"type": "User", "id": hold.principal}},
                "agent": {"__entity": {"type": "Agent", "id": hold.agent}},
                "tool": hold.tool,
                "effect": hold.effect,
                "labels": hold.labels,
                "resource_labels": hold.resource_labels,
                "exposure": i64::try_from(hold.exposure).unwrap_or(i64::MAX),
                "audience": i64::try_from(hold.audience).unwrap_or(i64::MAX),
                "mission": hold.mission,
                "template": hold.template,
            },
            "parents": [],
        }));
        Entities::from_json_value(serde_json::Value::Array(all), Some(schema))
            .map_err(|e| e.to_string())
    }
}

fn quoted(ids: &[String]) -> String {
    ids.iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `[approvals]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApprovals {
    /// A folder of approver policies (`*.cedar`), relative to the configuration.
    #[serde(default)]
    pub policies: Option<String>,
    /// How long a request stays open, unanswered or unused (`1h`).
    #[serde(default)]
    pub expires: Option<String>,
    /// How long the gateway holds a call for an answer (`2m`; `0s`: answer at once).
    #[serde(default)]
    pub wait: Option<String>,
    /// Where approvers are told of new requests (read by the enforcer).
    #[serde(default)]
    pub webhook: Option<toml::Value>,
    /// Agents whose MCP client is operated by their principal: act-as consent may be asked
    /// through MCP elicitation on their sessions. Empty by default.
    #[serde(default)]
    pub elicit_consent: Vec<String>,
}

/// How calls held for approval are handled (`[approvals]`).
#[derive(Debug, Clone)]
pub struct ApprovalSettings {
    /// Who may approve what.
    pub policies: ApprovePolicies,
    /// How long a request stays open, in seconds.
    pub expires_secs: i64,
    /// How long the gateway holds a call for an answer, in seconds.
    pub wait_secs: i64,
    /// The `[approvals.webhook]` table, if any.
    pub webhook: Option<toml::Value>,
    /// Agents whose consent may be asked through MCP elicitation.
    pub elicit_consent: BTreeSet<String>,
}

/// The default lifetime of a request: one hour.
pub const DEFAULT_EXPIRES_SECS: i64 = 3600;
/// The default time the gateway holds a call: none (the agent is told at once which request
/// to wait for, and retries the identical call once it is approved).
pub const DEFAULT_WAIT_SECS: i64 = 0;

impl Default for ApprovalSettings {
    fn default() -> Self {
        ApprovalSettings {
            policies: ApprovePolicies::load(&[], &mut Issues::default()),
            expires_secs: DEFAULT_EXPIRES_SECS,
            wait_secs: DEFAULT_WAIT_SECS,
            webhook: None,
            elicit_consent: BTreeSet::new(),
        }
    }
}

impl ApprovalSettings {
    /// The settings of `raw`, with the approver policy `files` read from its folder.
    pub fn load(
        file: &str,
        raw: &RawApprovals,
        files: &[PolicyFile],
        agents: &BTreeSet<String>,
        issues: &mut Issues,
    ) -> ApprovalSettings {
        let mut secs = |what: &str, v: &Option<String>, default: i64, zero_ok: bool| match v {
            None => default,
            Some(t) => match crate::mission::parse_duration_secs(t) {
                Some(n) if n > 0 || (zero_ok && n == 0) => n,
                _ => {
                    issues.push(
                        file,
                        None,
                        format!("approvals.{what}: `{t}` is not a duration (`90s`, `10m`, `1h`)"),
                    );
                    default
                }
            },
        };
        let expires_secs = secs("expires", &raw.expires, DEFAULT_EXPIRES_SECS, false);
        let wait_secs = secs("wait", &raw.wait, DEFAULT_WAIT_SECS, true);
        for a in &raw.elicit_consent {
            if !agents.contains(a) {
                issues.push(
                    file,
                    None,
                    format!("approvals.elicit_consent names unknown agent `{a}`"),
                );
            }
        }
        ApprovalSettings {
            policies: ApprovePolicies::load(files, issues),
            expires_secs,
            wait_secs,
            webhook: raw.webhook.clone(),
            elicit_consent: raw.elicit_consent.iter().cloned().collect(),
        }
    }
}
