//! The audit records the pipeline appends: one per decision, one per forward's outcome.

use serde_json::{json, Value};
use warden_core::Decision;
use warden_store::{AuditColumns, AuditInput, AuditKind};

/// `entry` of a decision on a tool the session was offered.
pub const DECISION_ENTRY: &str = "decision";
/// `entry` of a call to a tool the session was never offered (always a deny; probing shows).
pub const UNEXPOSED_ENTRY: &str = "unexposed";

/// The body of a decision's record: the decision as JSON (reasons, exposure, labels with
/// their sources, call digest, mission, both principals), with `entry` and `policy_version`.
pub fn decision_body(decision: &Decision, entry: &str, policy_version: &str) -> Value {
    let mut body = serde_json::to_value(decision).unwrap_or_else(|e| {
        json!({ "id": decision.id, "error": format!("the decision could not be serialized: {e}") })
    });
    if let Value::Object(m) = &mut body {
        m.insert("entry".into(), Value::String(entry.to_string()));
        m.insert(
            "policy_version".into(),
            Value::String(policy_version.to_string()),
        );
    }
    body
}

/// The record of a decision.
pub(crate) fn decision_record(
    decision: &Decision,
    entry: &str,
    policy_version: &str,
) -> AuditInput {
    AuditInput {
        kind: AuditKind::Decision,
        at_ms: decision.at_ms,
        columns: AuditColumns {
            decision_id: Some(decision.id.clone()),
            mission_id: Some(decision.mission.clone()),
            principal: Some(decision.principal.clone()),
            agent: Some(decision.agent.clone()),
            tool: Some(decision.tool.clone()),
            outcome: Some(decision.decision.as_str().to_string()),
        },
        body: decision_body(decision, entry, policy_version),
    }
}

/// The record of what came of a forward.
pub(crate) fn outcome_record(
    decision_id: &str,
    tool: &str,
    outcome: &str,
    reason: &str,
    at_ms: i64,
) -> AuditInput {
    AuditInput {
        kind: AuditKind::Outcome,
        at_ms,
        columns: AuditColumns {
            decision_id: Some(decision_id.to_string()),
            tool: Some(tool.to_string()),
            outcome: Some(outcome.to_string()),
            ..AuditColumns::default()
        },
        body: json!({ "outcome": outcome, "reason": reason, "tool": tool }),
    }
}
