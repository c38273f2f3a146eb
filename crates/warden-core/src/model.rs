//! The vocabulary types shared by every part of Warden: effects, outcomes, decisions.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// What a tool call does to the world. Policies see it as the action group the tool's action belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Reads data into the agent's context.
    Read,
    /// Changes stored state that others can read.
    Write,
    /// Shows content to an audience (posts, replies, messages).
    Publish,
    /// Removes data.
    Delete,
    /// Runs code or commands.
    Execute,
    /// Sends data outside the organisation.
    Egress,
    /// Changes who may do what (ACLs, grants, roles).
    Admin,
}

impl Effect {
    /// Every effect, in a fixed order.
    pub const ALL: [Effect; 7] = [
        Effect::Read,
        Effect::Write,
        Effect::Publish,
        Effect::Delete,
        Effect::Execute,
        Effect::Egress,
        Effect::Admin,
    ];

    /// The lowercase name used in config files and in Cedar (`Action::"publish"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Read => "read",
            Effect::Write => "write",
            Effect::Publish => "publish",
            Effect::Delete => "delete",
            Effect::Execute => "execute",
            Effect::Egress => "egress",
            Effect::Admin => "admin",
        }
    }

    /// Parse a lowercase effect name.
    pub fn parse(s: &str) -> Option<Effect> {
        Effect::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// True for effects that change the world or reach people (everything but `read`).
    pub fn is_action(self) -> bool {
        self != Effect::Read
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The three outcomes of a decision. Ordered by strength: `Deny` overrides `Ask` overrides `Allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The call may go ahead.
    Allow,
    /// The call is held until an authorized person approves it.
    Ask,
    /// The call is refused.
    Deny,
}

impl Outcome {
    /// The lowercase name (`allow`, `ask`, `deny`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Ask => "ask",
            Outcome::Deny => "deny",
        }
    }

    /// Parse a lowercase outcome name.
    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "allow" => Some(Outcome::Allow),
            "ask" => Some(Outcome::Ask),
            "deny" => Some(Outcome::Deny),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which step of the decision produced a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Request shape and size checks.
    Input,
    /// A tripped circuit breaker.
    Breaker,
    /// Mapping the call to an effect, resource and audience through the catalog.
    Resolve,
    /// The agent's ceiling.
    Ceiling,
    /// The mission's scope, budgets and expiry.
    Mission,
    /// Information flow: labels, exposure, provenance.
    Flow,
    /// Cedar evaluated with the agent as principal.
    AgentPolicy,
    /// Cedar evaluated with the person the agent acts for as principal.
    PrincipalPolicy,
    /// A person's approval of a held call: given, used, or not applicable.
    Approval,
}

/// One reason behind a decision: which step, which policy (if any), and plain text a person can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// The step that produced this reason.
    pub stage: Stage,
    /// The outcome this reason argues for.
    pub outcome: Outcome,
    /// The Cedar policy id, when a policy produced it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub policy: Option<String>,
    /// Plain-language explanation.
    pub text: String,
}

/// A label name. Shared rather than copied: a session's labels go into every decision they
/// flow into (a hundred or more in a long session), so copying one is a reference count, not
/// an allocation. Serialized as a plain string.
pub type Label = std::sync::Arc<str>;

/// For a publish, write or egress: who in the audience is not cleared for what flows in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exposure {
    /// How many people the call would reach.
    pub audience: u64,
    /// How many of them are not cleared for every label flowing in (the blast radius).
    pub count: u64,
    /// How many recipients are outside the organisation.
    pub external: u64,
    /// How many of the exposed are outside the organisation.
    pub external_exposed: u64,
    /// A few of the exposed, by name.
    pub sample: Vec<String>,
    /// The labels that cause the exposure.
    pub labels: BTreeSet<Label>,
}

impl Exposure {
    /// Count the readers of `other` too (readers of both count twice: an exposure can be
    /// overstated, never understated).
    pub fn add(&mut self, other: Exposure) {
        self.audience += other.audience;
        self.count += other.count;
        self.external += other.external;
        self.external_exposed += other.external_exposed;
        for s in other.sample {
            if self.sample.len() < crate::directory::EXPOSURE_SAMPLE && !self.sample.contains(&s) {
                self.sample.push(s);
            }
        }
        self.labels.extend(other.labels);
    }
}

/// Where a label in the session came from: enough to explain it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSource {
    /// The label.
    pub label: Label,
    /// `server.tool` that brought it in, or `arguments` / `detector:<name>`.
    pub source: Label,
    /// The mission's call number (1-based) that brought it in.
    pub call: u64,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The session that read it (its name in the log). In a decision's flow it is set only
    /// when that is another session of the mission than the deciding one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Label>,
}

/// The information-flow facts behind a decision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowFacts {
    /// What the mission's calls will have sent once this call is committed (see
    /// [`crate::detect::fingerprint::SentTails`]); empty for reads. Not serialised: it is kept
    /// only between deciding and committing.
    #[serde(skip)]
    pub sent_tails: crate::detect::fingerprint::SentTails,
    /// Labels of the data the call touches (its resource).
    pub resource_labels: BTreeSet<String>,
    /// Labels found in the call's arguments by detectors.
    pub argument_labels: BTreeSet<String>,
    /// Labels flowing into the call: session taint ∪ argument labels (∪ resource labels for grants).
    pub labels: BTreeSet<Label>,
    /// Where each label in `labels` came from.
    pub sources: Vec<LabelSource>,
    /// Arguments that direct the action and whose value was taken from untrusted content only.
    pub untrusted_direction: Vec<String>,
    /// Where the values directing the call came from (its directing arguments and the values
    /// inside its free text).
    #[serde(
        default,
        skip_serializing_if = "crate::provenance::Provenance::is_empty"
    )]
    pub provenance: crate::provenance::Provenance,
    /// Whether the session has read untrusted content.
    pub untrusted_input: bool,
    /// Whether sensitive data flows into the call.
    pub sensitive: bool,
    /// Whether the call is an external or state-changing action beyond the principal.
    pub external_action: bool,
    /// Whether the call is a read that reaches a host outside the organisation the mission
    /// does not name (a fetch), its URL carrying none of the session's data.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fetch: bool,
}

/// A decision: the outcome, why, and the facts it rested on. Any error while deciding yields `Deny`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Stable id of this decision.
    pub id: String,
    /// Allow, ask or deny.
    pub decision: Outcome,
    /// Every reason that argued for the outcome (and the allow reasons when allowed).
    pub reasons: Vec<Reason>,
    /// The Cedar policy ids that determined the outcome.
    pub policies: Vec<String>,
    /// Policy ids of `@warden("ask")` forbids that held the call (an approval lifts exactly these).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub ask_policies: Vec<String>,
    /// The approval request this decision made or used (held: the request to answer;
    /// allowed: the approval it used).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub approval: Option<String>,
    /// Exposure, for calls that reach an audience.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exposure: Option<Exposure>,
    /// The information-flow facts.
    pub flow: FlowFacts,
    /// `server.tool`.
    pub tool: String,
    /// The tool's effect, when the catalog knows the tool.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub effect: Option<Effect>,
    /// The resource, as a Cedar entity uid (`Channel::"eng-help"`), when resolved.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resource: Option<String>,
    /// The agent.
    pub agent: String,
    /// The person the agent acts for.
    pub principal: String,
    /// The session.
    pub session: String,
    /// The mission id.
    pub mission: String,
    /// The mission ids from the root of its chain to this mission, for a narrowed mission (a
    /// sub-agent's); empty for a mission a person granted directly.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub mission_chain: Vec<String>,
    /// SHA-256 of the canonical call (server, tool, arguments): what an approval is bound to.
    pub call_digest: String,
    /// Time the decision was made, ms since the Unix epoch (passed in by the caller).
    pub at_ms: i64,
    /// Microseconds spent deciding, filled in by the caller that owns a clock.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub elapsed_us: Option<u64>,
}

impl Decision {
    /// The first reason that argues for the outcome, as one line.
    pub fn summary(&self) -> String {
        self.reasons
            .iter()
            .find(|r| r.outcome == self.decision)
            .map(|r| r.text.clone())
            .unwrap_or_else(|| format!("{}", self.decision))
    }

    /// True when the call may go ahead.
    pub fn is_allow(&self) -> bool {
        self.decision == Outcome::Allow
    }
}
