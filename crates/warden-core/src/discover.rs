//! Draft catalog entries from what an MCP server says about its tools (`tools/list`): the
//! effect from the tool annotations, the arguments from the `inputSchema`, and guessed roles for
//! the arguments, each guess marked for review. `warden catalog discover` prints them.
//!
//! The effect: `readOnlyHint` → `read`; `destructiveHint` → `delete`; `openWorldHint` →
//! `egress` (it reaches outside); otherwise `write`. Roles are guessed from argument names:
//! recipients (`to`, `cc`, `bcc`, `recipients` …) as an email audience, people (`user`,
//! `assignee`, `invitees` …) as a user audience, `channel` as a channel audience, URLs as a URL
//! audience, `as_user` / `from` / `author` … as acting as someone, paths as the resource. A
//! tool whose arguments name several audiences gets them all: each adds its readers.

use std::fmt::Write as _;

use serde_json::Value;

use crate::model::Effect;

/// What a server says about one tool.
#[derive(Debug, Clone, Default)]
pub struct ToolInfo {
    /// The tool's name on its server.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its `inputSchema` (a JSON Schema object).
    pub input_schema: Value,
    /// `readOnlyHint`.
    pub read_only: Option<bool>,
    /// `destructiveHint`.
    pub destructive: Option<bool>,
    /// `openWorldHint`.
    pub open_world: Option<bool>,
}

/// The role an argument's name suggests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Email,
    User,
    Channel,
    Url,
    ActsAs,
    Path,
    Content,
    Other,
}

fn role(arg: &str) -> Role {
    let a: String = arg
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    match a.as_str() {
        "to" | "cc" | "bcc" | "recipient" | "recipients" | "replyto" | "email" | "emails"
        | "emailaddress" | "address" | "addresses" => Role::Email,
        "user" | "users" | "username" | "userid" | "assignee" | "assignees" | "invitee"
        | "invitees" | "member" | "members" | "sharewith" | "sharedwith" | "reviewer"
        | "reviewers" | "attendees" | "participants" => Role::User,
        "channel" | "channelid" | "room" | "roomid" | "chat" | "chatid" | "conversation" => {
            Role::Channel
        }
        "url" | "uri" | "link" | "href" | "webhook" | "webhookurl" | "endpoint" | "callback"
        | "callbackurl" | "imageurl" => Role::Url,
        "asuser" | "from" | "sender" | "author" | "owner" | "onbehalfof" | "impersonate"
        | "postas" | "sendas" => Role::ActsAs,
        "path" | "file" | "filename" | "filepath" | "source" | "destination" | "dir"
        | "directory" => Role::Path,
        "body" | "message" | "text" | "content" | "contents" | "comment" | "description"
        | "summary" | "note" | "data" => Role::Content,
        _ => Role::Other,
    }
}

fn effect_of(t: &ToolInfo) -> Effect {
    if t.read_only == Some(true) {
        Effect::Read
    } else if t.destructive == Some(true) {
        Effect::Delete
    } else if t.open_world == Some(true) {
        Effect::Egress
    } else {
        Effect::Write
    }
}

/// A TOML string literal.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn list(items: &[&str]) -> String {
    let inner: Vec<String> = items.iter().map(|s| quoted(s)).collect();
    format!("[{}]", inner.join(", "))
}

/// The draft catalog entry of `tool` of server `server`, as TOML, with a comment on every
/// guess.
pub fn draft(server: &str, tool: &ToolInfo) -> String {
    let mut out = String::new();
    let name = format!("{server}.{}", tool.name);
    let _ = writeln!(out, "[tools.{}]", quoted(&name));
    if let Some(d) = tool.description.as_deref().filter(|d| !d.trim().is_empty()) {
        let first: String = d
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        let _ = writeln!(out, "description = {}", quoted(&first));
    }
    let effect = effect_of(tool);
    let hints = [
        ("readOnlyHint", tool.read_only),
        ("destructiveHint", tool.destructive),
        ("openWorldHint", tool.open_world),
    ]
    .iter()
    .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
    .collect::<Vec<_>>();
    let why = if hints.is_empty() {
        "no annotations".to_string()
    } else {
        hints.join(", ")
    };
    let _ = writeln!(
        out,
        "effect = {}  # REVIEW: from the annotations ({why})",
        quoted(effect.as_str())
    );
    let props: Vec<&str> = tool
        .input_schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let required: Vec<&str> = tool
        .input_schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let optional: Vec<&str> = props
        .iter()
        .copied()
        .filter(|p| !required.contains(p))
        .collect();
    let _ = writeln!(out, "required = {}", list(&required));
    if !optional.is_empty() {
        let _ = writeln!(out, "optional = {}", list(&optional));
    }
    let types: Vec<String> = props
        .iter()
        .filter_map(|p| {
            let ty = crate::args::from_json_schema(tool.input_schema.pointer(&format!(
                "/properties/{}",
                p.replace('~', "~0").replace('/', "~1")
            ))?)?;
            Some(format!(
                "{} = {}",
                crate::args::toml_key(p),
                ty.catalog_text()
            ))
        })
        .collect();
    if !types.is_empty() {
        let _ = writeln!(
            out,
            "types = {{ {} }}  # REVIEW: from the inputSchema; policies read these as `context.args`",
            types.join(", ")
        );
    }
    // A recipient argument whose schema speaks of users rather than addresses names users.
    let schema_of = |p: &str| {
        tool.input_schema
            .pointer(&format!("/properties/{p}"))
            .cloned()
    };
    let role_of = |p: &str| match role(p) {
        Role::Email => {
            let s = schema_of(p).unwrap_or_default();
            let about = s
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_ascii_lowercase();
            let email = s.get("format").and_then(Value::as_str) == Some("email")
                || about.contains("mail")
                || about.contains("address");
            if !email && about.contains("user") {
                Role::User
            } else {
                Role::Email
            }
        }
        r => r,
    };
    let of = |r: Role| -> Vec<&str> { props.iter().copied().filter(|p| role_of(p) == r).collect() };
    let path = of(Role::Path);
    let urls = of(Role::Url);
    let channels = of(Role::Channel);
    let resource = if let Some(p) = path.first() {
        format!("{{ type = \"File\", arg = {} }}", quoted(p))
    } else if let Some(c) = channels.first() {
        format!("{{ type = \"Channel\", arg = {} }}", quoted(c))
    } else if let Some(u) = urls.first() {
        format!("{{ type = \"Url\", arg = {} }}", quoted(u))
    } else {
        format!("{{ type = \"Resource\", id = {} }}", quoted(server))
    };
    let _ = writeln!(out, "resource = {resource}  # REVIEW: guessed");
    // Audiences, in order of how many people they can reach.
    let mut audiences: Vec<(&str, &str)> = Vec::new();
    for (r, kind) in [
        (Role::Channel, "channel"),
        (Role::Email, "email"),
        (Role::User, "user"),
        (Role::Url, "url"),
    ] {
        // Required arguments first: the one every call names is the likelier audience.
        let mut args = of(r);
        args.sort_by_key(|a| !required.contains(a));
        for a in args {
            audiences.push((kind, a));
        }
    }
    match audiences.as_slice() {
        [] => {}
        [(kind, arg)] => {
            let _ = writeln!(
                out,
                "audience = {{ kind = {}, arg = {} }}  # REVIEW: `{arg}` looks like who the call reaches",
                quoted(kind),
                quoted(arg)
            );
        }
        all => {
            let _ = writeln!(
                out,
                "audience = [  # REVIEW: each looks like who the call reaches; all of them count"
            );
            for (kind, arg) in all {
                let _ = writeln!(
                    out,
                    "  {{ kind = {}, arg = {} }},",
                    quoted(kind),
                    quoted(arg)
                );
            }
            let _ = writeln!(out, "]");
        }
    }
    if let Some(a) = of(Role::ActsAs).first() {
        let _ = writeln!(
            out,
            "acts_as = {}  # REVIEW: `{a}` looks like acting under someone's name",
            quoted(a)
        );
    }
    let directs: Vec<&str> = audiences
        .iter()
        .map(|(_, a)| *a)
        .chain(path.iter().copied())
        .collect();
    if !directs.is_empty() {
        let mut seen: Vec<&str> = Vec::new();
        for d in directs {
            if !seen.contains(&d) {
                seen.push(d);
            }
        }
        let _ = writeln!(
            out,
            "directs = {}  # REVIEW: arguments that say where the action goes",
            list(&seen)
        );
    }
    let content = of(Role::Content);
    if !content.is_empty() {
        let _ = writeln!(
            out,
            "# content: {} (scanned by the detectors)",
            content
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if effect == Effect::Read {
        let _ = writeln!(
            out,
            "default_labels = [\"internal\"]  # REVIEW: the labels of what it reads"
        );
        let _ = writeln!(
            out,
            "output = \"untrusted\"  # REVIEW: \"trusted\" when only the principal's side writes what it returns"
        );
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mail() -> ToolInfo {
        ToolInfo {
            name: "send_email".into(),
            description: Some("Send an email.\nMore text.".into()),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "to": {"type": "string"}, "cc": {"type": "array"}, "subject": {"type": "string"},
                    "body": {"type": "string"}, "from": {"type": "string"}
                },
                "required": ["to", "subject", "body"]
            }),
            open_world: Some(true),
            ..ToolInfo::default()
        }
    }

    #[test]
    fn a_mail_tool_is_drafted_with_its_audience_sender_and_arguments() {
        let d = draft("mail", &mail());
        assert!(
            d.starts_with("[tools.\"mail.send_email\"]\ndescription = \"Send an email.\"\n"),
            "{d}"
        );
        assert!(d.contains("effect = \"egress\""), "{d}");
        assert!(
            d.contains("required = [\"to\", \"subject\", \"body\"]"),
            "{d}"
        );
        assert!(d.contains("optional = [\"cc\", \"from\"]"), "{d}");
        assert!(d.contains("audience = [  # REVIEW"), "{d}");
        assert!(d.contains("  { kind = \"email\", arg = \"to\" },\n"), "{d}");
        assert!(d.contains("  { kind = \"email\", arg = \"cc\" },\n"), "{d}");
        assert!(d.contains("acts_as = \"from\""), "{d}");
        assert!(
            d.contains("types = { to = \"string\", subject = \"string\", body = \"string\", from = \"string\" }"),
            "{d}"
        );
    }

    #[test]
    fn every_draft_is_a_catalog_entry_warden_loads() {
        let labels: std::collections::BTreeSet<String> = ["public", "internal"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let text = format!(
            "{}\n{}",
            draft("mail", &mail()),
            draft(
                "misc",
                &ToolInfo {
                    name: "post \"it\"".into(),
                    input_schema: json!({"properties": {"channel": {}, "as_user": {}, "url": {}}}),
                    ..ToolInfo::default()
                }
            )
        );
        let mut issues = crate::error::Issues::default();
        let c = crate::catalog::Catalog::parse("draft.toml", &text, &labels, &mut issues);
        assert!(issues.0.is_empty(), "{:?}\n{text}", issues.0);
        assert!(c.get("mail.send_email").is_some_and(|t| t.declares("cc")));
        assert!(c
            .get("misc.post \"it\"")
            .is_some_and(|t| t.acts_as.as_deref() == Some("as_user")));
    }

    #[test]
    fn argument_types_are_drafted_from_the_input_schema() {
        let d = draft(
            "pay",
            &ToolInfo {
                name: "transfer".into(),
                input_schema: json!({"type": "object", "properties": {
                    "amount": {"type": "integer"}, "rate": {"type": "number"},
                    "dry run": {"type": "boolean"}, "tags": {"type": "array", "items": {"type": "string"}},
                    "memo": {"type": ["string", "null"]}, "blob": {},
                    "opts": {"type": "object", "properties": {"depth": {"type": "integer"}, "any": {}}},
                    "rows": {"type": "array", "items": {"type": "object"}}
                }, "required": ["amount"]}),
                ..ToolInfo::default()
            },
        );
        assert!(
            d.contains("types = { amount = \"long\", rate = \"decimal\", \"dry run\" = \"bool\", tags = \"set<string>\", memo = \"string\", opts = { depth = \"long\" } }"),
            "{d}"
        );
        let mut issues = crate::error::Issues::default();
        let labels = ["internal".to_string()].into_iter().collect();
        let c = crate::catalog::Catalog::parse("draft.toml", &d, &labels, &mut issues);
        assert!(issues.0.is_empty(), "{:?}\n{d}", issues.0);
        assert_eq!(c.get("pay.transfer").map(|t| t.arg_types().len()), Some(6));
    }

    #[test]
    fn a_read_only_file_tool_is_drafted_as_a_read_of_its_path() {
        let d = draft(
            "fs",
            &ToolInfo {
                name: "read_text_file".into(),
                input_schema: json!({"type": "object", "properties": {"path": {}, "head": {}}, "required": ["path"]}),
                read_only: Some(true),
                ..ToolInfo::default()
            },
        );
        assert!(d.contains("effect = \"read\""), "{d}");
        assert!(
            d.contains("resource = { type = \"File\", arg = \"path\" }"),
            "{d}"
        );
        assert!(d.contains("optional = [\"head\"]"), "{d}");
        assert!(d.contains("default_labels = [\"internal\"]"), "{d}");
    }
}
