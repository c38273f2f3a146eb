//! How audit records read: one line each for `warden audit tail`, the full explanation of one
//! decision for `warden audit show`, and the JSON Lines of `warden audit export`.
//!
//! Pure functions of the records: no store, no clock, no printing.

use serde::Serialize;
use serde_json::Value;
use warden_core::model::{FlowFacts, LabelSource};
use warden_core::Decision;
use warden_mcp::gateway::{exposure_line, thousands};
use warden_store::{AuditKind, AuditRecord};

/// A time in Unix milliseconds as UTC: `2026-12-07T02:27:17.123Z`.
pub fn utc(at_ms: i64) -> String {
    let secs = at_ms.div_euclid(1000);
    let millis = at_ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let day_secs = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        day_secs / 3600,
        day_secs % 3600 / 60,
        day_secs % 60
    )
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01), after Howard
/// Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The name a value serializes to (`agent-policy` for a stage).
fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

fn or_dash(value: Option<&str>) -> &str {
    value.filter(|v| !v.is_empty()).unwrap_or("-")
}

/// A string member of a record's body.
fn body_str<'a>(record: &'a AuditRecord, key: &str) -> Option<&'a str> {
    record.body.get(key).and_then(Value::as_str)
}

/// The text of the first reason that argues for a decision record's outcome (the first reason
/// if none does).
fn first_reason(record: &AuditRecord) -> Option<&str> {
    let reasons = record.body.get("reasons")?.as_array()?;
    let outcome = record.columns.outcome.as_deref();
    reasons
        .iter()
        .find(|r| r.get("outcome").and_then(Value::as_str) == outcome)
        .or_else(|| reasons.first())
        .and_then(|r| r.get("text"))
        .and_then(Value::as_str)
}

/// One line of `warden audit tail`: seq, time, kind, outcome, tool, agent→principal, decision
/// id, and the reason (the first reason of a decision, the reason of an outcome).
pub fn tail_line(record: &AuditRecord) -> String {
    let c = &record.columns;
    let who = match (c.agent.as_deref(), c.principal.as_deref()) {
        (None, None) => "-".to_string(),
        (agent, principal) => format!("{}→{}", or_dash(agent), or_dash(principal)),
    };
    let kind = match (&record.kind, body_str(record, "entry")) {
        (AuditKind::Decision, Some("unexposed")) => "unexposed".to_string(),
        (kind, _) => kind.to_string(),
    };
    let mut line = format!(
        "{:>6}  {}  {:<9} {:<9} {}  {}  {}",
        record.seq,
        utc(record.at_ms),
        kind,
        or_dash(c.outcome.as_deref()),
        or_dash(c.tool.as_deref()),
        who,
        or_dash(c.decision_id.as_deref()),
    );
    let reason = match record.kind {
        AuditKind::Decision => first_reason(record),
        AuditKind::Outcome => body_str(record, "reason"),
        _ => None,
    };
    if let Some(reason) = reason.filter(|r| !r.is_empty()) {
        line.push_str("  ");
        line.push_str(&reason.replace('\n', " "));
    }
    line
}

/// The full explanation of one decision and the records that followed it (its outcome, …),
/// as lines. `records` are every record of the decision, in order.
pub fn explain(records: &[AuditRecord]) -> Vec<String> {
    let mut out = Vec::new();
    for record in records {
        if !out.is_empty() {
            out.push(String::new());
        }
        match record.kind {
            AuditKind::Decision => explain_decision(record, &mut out),
            _ => explain_other(record, &mut out),
        }
    }
    out
}

fn explain_decision(record: &AuditRecord, out: &mut Vec<String>) {
    let decision: Decision = match serde_json::from_value(record.body.clone()) {
        Ok(d) => d,
        Err(e) => {
            out.push(format!(
                "record #{}: a decision whose body this release cannot read ({e}):",
                record.seq
            ));
            explain_other(record, out);
            return;
        }
    };
    let d = &decision;
    out.push(format!("decision {}  (record #{})", d.id, record.seq));
    let entry = body_str(record, "entry").unwrap_or("decision");
    let outcome = if entry == "unexposed" {
        format!(
            "{} (a call to a tool the session was never offered)",
            d.decision
        )
    } else {
        d.decision.to_string()
    };
    let mut field = |name: &str, value: &str| out.push(format!("  {name:<15}{value}"));
    field("outcome", &outcome);
    field("summary", &d.summary());
    field("tool", &d.tool);
    if let Some(effect) = d.effect {
        field("effect", effect.as_str());
    }
    if let Some(resource) = &d.resource {
        field("resource", resource);
    }
    field("agent", &d.agent);
    field("principal", &d.principal);
    field("mission", &d.mission);
    field("session", &d.session);
    field("time", &utc(d.at_ms));
    if !d.policies.is_empty() {
        field("policies", &d.policies.join(", "));
    }
    if !d.ask_policies.is_empty() {
        field("approval lifts", &d.ask_policies.join(", "));
    }
    field("call digest", &d.call_digest);
    field(
        "policy version",
        body_str(record, "policy_version").unwrap_or("-"),
    );
    field("hash", &record.hash.to_hex());

    out.push("reasons".into());
    if d.reasons.is_empty() {
        out.push("  (none recorded)".into());
    }
    for r in &d.reasons {
        let policy = r
            .policy
            .as_deref()
            .map(|p| format!(", policy {p}"))
            .unwrap_or_default();
        out.push(format!(
            "  - [{}] {}{policy}: {}",
            name_of(&r.stage),
            r.outcome,
            r.text
        ));
    }

    if let Some(x) = &d.exposure {
        out.push("exposure".into());
        match exposure_line(d) {
            Some(line) => out.push(format!("  {line}")),
            None => out.push(format!(
                "  none: {} in the audience, all cleared",
                thousands(x.audience)
            )),
        }
        if x.external > 0 {
            out.push(format!(
                "  {} outside the organisation, {} of them exposed",
                thousands(x.external),
                thousands(x.external_exposed)
            ));
        }
        if !x.sample.is_empty() {
            out.push(format!("  for example: {}", x.sample.join(", ")));
        }
    }
    explain_flow(&d.flow, out);
}

fn explain_flow(flow: &FlowFacts, out: &mut Vec<String>) {
    out.push("flow".into());
    if flow.labels.is_empty() {
        out.push("  labels: none".into());
    }
    for label in &flow.labels {
        let sources: Vec<String> = flow
            .sources
            .iter()
            .filter(|s| s.label == *label)
            .map(source_text)
            .collect();
        if sources.is_empty() {
            out.push(format!("  {label}"));
        } else {
            out.push(format!("  {label} from {}", sources.join("; ")));
        }
    }
    let set = |name: &str, labels: &std::collections::BTreeSet<String>| {
        (!labels.is_empty()).then(|| {
            format!(
                "  {name}: {}",
                labels.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    };
    out.extend(set("resource labels", &flow.resource_labels));
    out.extend(set("argument labels", &flow.argument_labels));
    if !flow.untrusted_direction.is_empty() {
        out.push(format!(
            "  directed by untrusted content: {}",
            flow.untrusted_direction.join(", ")
        ));
    }
    for (arg, origin) in &flow.provenance.args {
        out.push(format!("  `{arg}` came from: {}", origin.as_str()));
    }
    if let Some(origin) = flow.provenance.text {
        out.push(format!(
            "  values in free text came from: {}",
            origin.as_str()
        ));
    }
    let yes = |b: bool| if b { "yes" } else { "no" };
    out.push(format!(
        "  untrusted input read: {}; sensitive data: {}; external action: {}{}",
        yes(flow.untrusted_input),
        yes(flow.sensitive),
        yes(flow.external_action),
        if flow.fetch { "; a fetch" } else { "" }
    ));
}

fn source_text(s: &LabelSource) -> String {
    let session = s
        .session
        .as_deref()
        .map(|x| format!(", session {x}"))
        .unwrap_or_default();
    format!("{} (call {}, {}{session})", s.source, s.call, utc(s.at_ms))
}

fn explain_other(record: &AuditRecord, out: &mut Vec<String>) {
    let c = &record.columns;
    out.push(format!(
        "{} {}  (record #{})",
        record.kind,
        or_dash(c.outcome.as_deref()),
        record.seq
    ));
    let mut field = |name: &str, value: Option<&str>| {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            out.push(format!("  {name:<15}{v}"));
        }
    };
    field("decision", c.decision_id.as_deref());
    field("tool", c.tool.as_deref());
    field("agent", c.agent.as_deref());
    field("principal", c.principal.as_deref());
    field("mission", c.mission_id.as_deref());
    field("time", Some(&utc(record.at_ms)));
    match record.kind {
        AuditKind::Outcome => field("reason", body_str(record, "reason")),
        _ if !record.body.is_null() => {
            let body = serde_json::to_string(&record.body).unwrap_or_default();
            field("body", Some(&body));
        }
        _ => {}
    }
}

/// One line of `warden audit export --format jsonl`: for a decision, its body with `entry`
/// renamed `kind` (the line the JSON Lines decision log wrote); for an outcome, the outcome
/// line; for any other kind, the kind, the columns and the body. Each ends with `seq` and
/// `hash`.
pub fn export_line(record: &AuditRecord) -> String {
    let mut members: Vec<(String, Value)> = Vec::new();
    let c = &record.columns;
    match (&record.kind, &record.body) {
        (AuditKind::Decision, Value::Object(body)) => {
            let entry = body
                .get("entry")
                .cloned()
                .unwrap_or_else(|| Value::from("decision"));
            members.push(("kind".into(), entry));
            members.extend(
                body.iter()
                    .filter(|(k, _)| k.as_str() != "entry" && k.as_str() != "kind")
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        (AuditKind::Outcome, body) => {
            members.push(("kind".into(), Value::from("outcome")));
            members.push(("decision_id".into(), opt(&c.decision_id)));
            members.push(("tool".into(), opt(&c.tool)));
            members.push(("outcome".into(), opt(&c.outcome)));
            if let Some(reason) = body.get("reason").filter(|r| r.as_str() != Some("")) {
                members.push(("reason".into(), reason.clone()));
            }
            members.push(("at_ms".into(), Value::from(record.at_ms)));
        }
        (kind, body) => {
            members.push(("kind".into(), Value::from(kind.as_str())));
            for (name, value) in [
                ("decision_id", &c.decision_id),
                ("mission_id", &c.mission_id),
                ("principal", &c.principal),
                ("agent", &c.agent),
                ("tool", &c.tool),
                ("outcome", &c.outcome),
            ] {
                if value.is_some() {
                    members.push((name.into(), opt(value)));
                }
            }
            members.push(("at_ms".into(), Value::from(record.at_ms)));
            members.push(("body".into(), body.clone()));
        }
    }
    members.push(("seq".into(), Value::from(record.seq)));
    members.push(("hash".into(), Value::from(record.hash.to_hex())));
    ordered_object(&members)
}

fn opt(value: &Option<String>) -> Value {
    value.clone().map(Value::from).unwrap_or(Value::Null)
}

/// A JSON object with its members in the order given (`kind` first, `seq` and `hash` last).
fn ordered_object(members: &[(String, Value)]) -> String {
    let mut line = String::from("{");
    for (index, (key, value)) in members.iter().enumerate() {
        if index > 0 {
            line.push(',');
        }
        line.push_str(&Value::from(key.as_str()).to_string());
        line.push(':');
        line.push_str(&value.to_string());
    }
    line.push('}');
    line
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_with_milliseconds() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_763_629_200_123), "2025-11-20T09:00:00.123Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc(-1), "1969-12-31T23:59:59.999Z");
    }
}
