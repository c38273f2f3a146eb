//! The words an agent reads: the text of a result Warden labels, refusals, failures.

use rmcp::model::{CallToolResult, ContentBlock, ResourceContents};
use rmcp::ErrorData;
use warden_core::Decision;

use crate::upstream::UpstreamError;
use warden_enforce::EnforceError;

/// The text of a tool result that Warden labels: its text blocks and embedded text resources;
/// the structured content when there is no text.
pub fn result_text(r: &CallToolResult) -> String {
    let mut out = String::new();
    for c in &r.content {
        match c {
            ContentBlock::Text(t) => push_line(&mut out, &t.text),
            ContentBlock::Resource(e) => {
                if let ResourceContents::TextResourceContents { text, .. } = &e.resource {
                    push_line(&mut out, text);
                }
            }
            _ => {}
        }
    }
    if out.is_empty() {
        if let Some(v) = &r.structured_content {
            out = v.to_string();
        }
    }
    out
}

pub(crate) fn push_line(out: &mut String, s: &str) {
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(s);
}

// The words of a refusal are the core's, so every surface (MCP, the CLI, the audit) shows the
// same text.
pub use warden_core::engine::{exposure_line, refusal_text, thousands};

pub(crate) fn refusal_result(d: &Decision) -> CallToolResult {
    let mut r = CallToolResult::error(vec![ContentBlock::text(refusal_text(d))]);
    r.structured_content = serde_json::to_value(d).ok();
    r
}

/// The text an agent reads when the pipeline could not go on: the store could not be read or
/// written, so nothing was forwarded (or the output was withheld).
pub fn enforce_failure_text(tool: &str, e: &EnforceError) -> String {
    match e.decision() {
        Some(d) => format!(
            "Warden denied `{tool}`: the decision could not be recorded ({e}); nothing was forwarded (decision {})",
            d.id
        ),
        None => format!("Warden denied `{tool}`: {e}; nothing was forwarded"),
    }
}

/// [`enforce_failure_text`] as a tool result, with the failure in its structured content.
pub(crate) fn enforce_failure(tool: &str, e: &EnforceError) -> CallToolResult {
    let mut r = CallToolResult::error(vec![ContentBlock::text(enforce_failure_text(tool, e))]);
    r.structured_content = Some(serde_json::json!({
        "decision": "deny",
        "error": e.kind(),
        "message": e.to_string(),
        "decision_id": e.decision().map(|d| d.id.clone()),
    }));
    r
}

/// [`enforce_failure_text`] as a JSON-RPC error.
pub(crate) fn enforce_failure_data(tool: &str, e: &EnforceError) -> ErrorData {
    ErrorData::invalid_request(
        enforce_failure_text(tool, e),
        Some(serde_json::json!({ "decision": "deny", "error": e.kind() })),
    )
}

pub(crate) fn first_text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .find_map(|c| c.as_text().map(|t| t.text.clone()))
        .unwrap_or_default()
}

pub(crate) fn upstream_failure(d: &Decision, e: &UpstreamError) -> CallToolResult {
    let mut r = CallToolResult::error(vec![ContentBlock::text(format!(
        "Warden allowed `{}` (decision {}), but the call failed: {e}",
        d.tool, d.id
    ))]);
    r.structured_content = Some(serde_json::json!({
        "decision": "allow",
        "decision_id": d.id,
        "error": "upstream",
        "message": e.to_string(),
    }));
    r
}

pub(crate) fn upstream_error_data(d: &Decision, e: &UpstreamError) -> ErrorData {
    match e {
        UpstreamError::Protocol { error, .. } => (**error).clone(),
        _ => ErrorData::internal_error(
            format!(
                "Warden allowed `{}` (decision {}), but the call failed: {e}",
                d.tool, d.id
            ),
            None,
        ),
    }
}

/// The text an agent reads when the kill switch stopped its call in flight.
fn killed_text(d: &Decision, why: &str) -> String {
    format!(
        "Warden stopped `{}` (decision {}) while it ran: {why}. The call was cancelled \
         upstream and its result is withheld.",
        d.tool, d.id
    )
}

/// [`killed_text`] as a tool result, with the kill in its structured content.
pub(crate) fn killed_result(d: &Decision, why: &str) -> CallToolResult {
    let mut r = CallToolResult::error(vec![ContentBlock::text(killed_text(d, why))]);
    r.structured_content = Some(serde_json::json!({
        "decision": "allow",
        "decision_id": d.id,
        "error": "killed",
        "message": why,
    }));
    r
}

/// [`killed_text`] as a JSON-RPC error.
pub(crate) fn killed_error_data(d: &Decision, why: &str) -> ErrorData {
    ErrorData::invalid_request(
        killed_text(d, why),
        Some(serde_json::json!({ "error": "killed", "decision_id": d.id })),
    )
}
