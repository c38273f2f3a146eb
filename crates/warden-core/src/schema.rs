//! Warden's Cedar schema: the entity types and the context shape ([`SCHEMA_BASE`]), and one
//! action per catalog tool, member of its effect group and of its server group.
//!
//! The schema is written out as Cedar schema text ([`schema_text`], what `warden policy schema`
//! prints) but built from Cedar's JSON schema format ([`build_schema`]): the base is converted
//! from text to JSON once per process and the actions are added as JSON, so a load never runs
//! Cedar's schema grammar over the generated actions (it builds a lexer for every identifier,
//! the largest cost of loading a small configuration). A test holds the two forms equal.

use std::sync::OnceLock;

use cedar_policy::{Schema, SchemaFragment};
use serde_json::{json, Map, Value};

use crate::args::{record_json, record_text};
use crate::catalog::{Catalog, ToolSpec};
use crate::entity::RESOURCE_TYPES;
use crate::model::Effect;
use crate::policy::PolicyError;

/// Entity types and the context shape. Actions are generated from the catalog.
pub const SCHEMA_BASE: &str = r#"
// People and groups. `clearances` are the labels a user is cleared for, including `public`
// and `channel:<name>` for every channel the user can read (computed by Warden).
entity Group in [Group];
entity User in [Group] { clearances: Set<String>, email: String };
// Agents: non-human actors with a ceiling.
entity Agent;
// Things calls touch.
entity Channel { readers: Set<Group> };
entity Dataset;
entity File;
entity Url;
entity Mailbox;
entity Resource;

// Information flow into the call.
type Flow = {
  // Everything flowing in: session taint ∪ argument labels (∪ resource labels for grants).
  // Reader-set labels (`channel:<name>`) are counted in `exposure`, not listed here.
  labels: Set<String>,
  // Labels of the data the call touches.
  resource_labels: Set<String>,
  // Labels detectors found in the arguments.
  argument_labels: Set<String>,
  // Sensitive data flows in.
  sensitive: Bool,
  // The session has read untrusted content.
  untrusted_input: Bool,
  // A directing argument (recipient, URL, path …) was taken from untrusted content only.
  untrusted_direction: Bool,
  // The arguments tell a reader to widen access.
  privileged_advice: Bool,
  // A read that reaches a host outside the organisation the mission does not name (a fetch),
  // its URL carrying none of the session's data: what the mission holds goes with it.
  fetch: Bool,
};

// Who would see the call's output and is not cleared for it (all zero without an audience).
type Exposure = {
  audience: Long,
  count: Long,
  external: Long,
  external_exposed: Long,
  // The labels that cause the exposure (reader-set labels left out, as in `flow.labels`).
  labels: Set<String>,
};

type Mission = {
  id: String,
  template: String,
  purpose: String,
  approval_effects: Set<String>,
  publish_to: String,
  seconds_left: Long,
  calls_left: Long,
  // Narrowings below the root mission the person granted (0: the root itself).
  depth: Long,
  // Seconds since this mission was granted (or narrowed).
  grant_age_secs: Long,
  // How the grant was proven: `local`, `jwt` or `trace`.
  auth: String,
};

type Session = {
  calls: Long,
  untrusted_input: Bool,
  sensitive_read: Bool,
};

// Meta's rule of two: at most two of these in one session without approval.
type RuleOfTwo = {
  untrusted_input: Bool,
  sensitive_data: Bool,
  external_action: Bool,
  count: Long,
};

// Where the values that direct the call came from, each one of `principal` (the person's own
// words: the mission's purpose, not negated, or the person themself), `trusted` (a trusted
// output the mission read), `untrusted` (untrusted content it read), `none` (seen nowhere).
type Origin = {
  // `argument=origin` for each directing argument (the weakest of its values).
  args: Set<String>,
  // The weakest origin of the directing arguments; `principal` when there are none.
  directing: String,
  // The weakest origin of the links, addresses, handles, IBANs and phone or account numbers
  // inside free-text arguments of a call that acts; `principal` when there are none.
  text: String,
  // The weakest of `directing` and `text`.
  weakest: String,
};

// A call argument Cedar cannot hold (too large, not representable): the length in bytes of its
// JSON text and `sha256:` with the hex SHA-256 of that text.
type ArgSummary = { length: Long, digest: String };

// The context every tool action shares. Each tool's context is `Ctx` and two records typed
// from its catalog entry's `types`: `args` (the typed arguments, optional ones marked `?`) and
// `arg_summaries` (an `ArgSummary` for each typed argument Cedar cannot hold).
type Ctx = {
  tool: String,
  server: String,
  effect: String,
  agent: Agent,
  on_behalf_of: User,
  has_audience: Bool,
  // The call acts under a person's name.
  acts_as: Bool,
  // … under the name of someone other than the principal.
  acts_as_other: Bool,
  flow: Flow,
  exposure: Exposure,
  mission: Mission,
  session: Session,
  rule_of_two: RuleOfTwo,
  hour_utc: Long,
  origin: Origin,
};
"#;

/// Generate the full schema text: [`SCHEMA_BASE`] plus effect, server and tool actions.
pub fn schema_text(catalog: &Catalog) -> String {
    let mut s = String::from(SCHEMA_BASE);
    s.push_str("\n// Effect groups.\n");
    for e in Effect::ALL {
        s.push_str(&format!("action \"{}\";\n", e.as_str()));
    }
    s.push_str("\n// Server groups.\n");
    for srv in catalog.servers() {
        s.push_str(&format!("action \"{srv}\";\n"));
    }
    s.push_str("\n// Tools.\n");
    let resources = RESOURCE_TYPES.join(", ");
    // The shared attributes, as the base declares them in `Ctx`.
    let shared = base_json()
        .ok()
        .and_then(|b| ctx_attributes(b).ok())
        .map(|attrs| {
            attrs
                .iter()
                .map(|(k, v)| format!("{k}: {}", type_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    for t in catalog.tools() {
        let args = record_text(
            t.arg_types()
                .iter()
                .map(|(k, ty)| (k, ty.schema_text(), t.requires(k))),
        );
        let sums = summaries_text(t);
        s.push_str(&format!(
            "action \"{}\" in [\"{}\", \"{}\"] appliesTo {{\n  principal: [Agent, User],\n  resource: [{resources}],\n  context: {{ {shared},\n    args: {args},\n    arg_summaries: {sums} }}\n}};\n",
            t.name,
            t.effect.as_str(),
            t.server
        ));
    }
    s
}

fn summaries_text(t: &ToolSpec) -> String {
    let inner: Vec<String> = t
        .arg_types()
        .keys()
        .map(|k| format!("{}?: ArgSummary", Value::String(k.clone())))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// The attributes of `Ctx` in the base's JSON form.
fn ctx_attributes(base: &Map<String, Value>) -> Result<&Map<String, Value>, PolicyError> {
    base.get("")
        .and_then(|ns| ns.get("commonTypes"))
        .and_then(|ct| ct.get("Ctx"))
        .and_then(|c| c.get("attributes"))
        .and_then(Value::as_object)
        .ok_or_else(|| PolicyError::Schema("the base schema has no `Ctx` record".into()))
}

/// A type of Cedar's JSON schema format as schema text (the forms the base uses).
fn type_text(v: &Value) -> String {
    let name = || {
        v.get("name")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    match v.get("type").and_then(Value::as_str) {
        Some("Boolean") => "Bool".into(),
        Some("Set") => format!(
            "Set<{}>",
            v.get("element").map(type_text).unwrap_or_default()
        ),
        Some("Record") => {
            let attrs = v.get("attributes").and_then(Value::as_object);
            let inner: Vec<String> = attrs
                .into_iter()
                .flatten()
                .map(|(k, a)| {
                    let opt = a.get("required") == Some(&Value::Bool(false));
                    format!("{k}{}: {}", if opt { "?" } else { "" }, type_text(a))
                })
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        Some("Entity" | "EntityOrCommon" | "Extension") => name(),
        Some(other) => other.to_string(),
        None => "?".into(),
    }
}

/// A tool's context type in Cedar's JSON schema format: `Ctx`'s attributes, `args` and
/// `arg_summaries`.
fn context_json(shared: &Map<String, Value>, t: &ToolSpec) -> Value {
    let mut attrs = shared.clone();
    attrs.insert(
        "args".into(),
        record_json(t.arg_types().iter().map(|(k, ty)| (k, ty, t.requires(k)))),
    );
    let sums: Map<String, Value> = t
        .arg_types()
        .keys()
        .map(|k| {
            (
                k.clone(),
                json!({ "type": "EntityOrCommon", "name": "ArgSummary", "required": false }),
            )
        })
        .collect();
    attrs.insert(
        "arg_summaries".into(),
        json!({ "type": "Record", "attributes": sums }),
    );
    json!({ "type": "Record", "attributes": attrs })
}

/// [`SCHEMA_BASE`] in Cedar's JSON schema format (the empty namespace), converted once.
fn base_json() -> Result<&'static Map<String, Value>, PolicyError> {
    static BASE: OnceLock<Result<Map<String, Value>, String>> = OnceLock::new();
    BASE.get_or_init(|| {
        let (fragment, _warnings) =
            SchemaFragment::from_cedarschema_str(SCHEMA_BASE).map_err(|e| e.to_string())?;
        match fragment.to_json_value().map_err(|e| e.to_string())? {
            Value::Object(m) => Ok(m),
            other => Err(format!("the base schema is not a JSON object: {other}")),
        }
    })
    .as_ref()
    .map_err(|e| PolicyError::Schema(e.clone()))
}

/// An action name the schema text can write: no quote, backslash or control character.
fn expressible(name: &str) -> Result<(), PolicyError> {
    if name
        .chars()
        .any(|c| c == '"' || c == '\\' || c.is_control())
    {
        return Err(PolicyError::Schema(format!(
            "the action name {name:?} has a quote, a backslash or a control character"
        )));
    }
    Ok(())
}

/// Build the Cedar schema for a catalog: the same schema as [`schema_text`] describes.
pub fn build_schema(catalog: &Catalog) -> Result<Schema, PolicyError> {
    let base = base_json()?;
    let shared = ctx_attributes(base)?;
    let mut root = base.clone();
    let ns = root
        .get_mut("")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| PolicyError::Schema("the base schema has no empty namespace".into()))?;
    let mut actions = Map::new();
    let mut add = |name: &str, action: Value| -> Result<(), PolicyError> {
        expressible(name)?;
        if actions.insert(name.to_string(), action).is_some() {
            return Err(PolicyError::Schema(format!(
                "the action `{name}` is declared twice (a server, an effect or a tool of that name)"
            )));
        }
        Ok(())
    };
    for e in Effect::ALL {
        add(e.as_str(), json!({}))?;
    }
    for srv in catalog.servers() {
        add(srv, json!({}))?;
    }
    for t in catalog.tools() {
        add(
            &t.name,
            json!({
                "memberOf": [{ "id": t.effect.as_str() }, { "id": t.server }],
                "appliesTo": {
                    "principalTypes": ["Agent", "User"],
                    "resourceTypes": RESOURCE_TYPES,
                    "context": context_json(shared, t),
                },
            }),
        )?;
    }
    ns.insert("actions".into(), Value::Object(actions));
    Schema::from_json_value(Value::Object(root)).map_err(|e| PolicyError::Schema(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn acme_catalog() -> Catalog {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/acme");
        let text = std::fs::read_to_string(dir.join("catalog.toml")).unwrap();
        let labels = [
            "public",
            "internal",
            "pii",
            "hr-compensation",
            "security-sensitive",
        ]
        .into_iter()
        .chain(["user-data", "secret"])
        .map(String::from)
        .collect();
        let mut issues = crate::error::Issues::default();
        let catalog = Catalog::parse("catalog.toml", &text, &labels, &mut issues);
        assert!(issues.0.is_empty(), "{:?}", issues.0);
        catalog
    }

    /// Everything a schema says that validation reads: entity types, actions, action groups and
    /// memberships, and the principals and resources of every action.
    fn outline(s: &Schema) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for t in s.entity_types() {
            out.insert(format!("type {t}"));
        }
        for g in s.action_groups() {
            out.insert(format!("group {g}"));
        }
        for a in s.actions() {
            out.insert(format!("action {a}"));
            for p in s.principals_for_action(a).into_iter().flatten() {
                out.insert(format!("{a} principal {p}"));
            }
            for r in s.resources_for_action(a).into_iter().flatten() {
                out.insert(format!("{a} resource {r}"));
            }
        }
        let actions = s.action_entities().unwrap().to_json_value().unwrap();
        for a in actions.as_array().unwrap() {
            let mut parents: Vec<String> = a["parents"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].to_string())
                .collect();
            parents.sort();
            out.insert(format!("{} in {parents:?}", a["uid"]["id"]));
        }
        out
    }

    #[test]
    fn the_json_build_is_the_schema_the_text_describes() {
        let catalog = acme_catalog();
        let from_json = build_schema(&catalog).unwrap();
        let (from_text, _) = Schema::from_cedarschema_str(&schema_text(&catalog)).unwrap();
        let outline = outline(&from_json);
        assert_eq!(outline, super::tests::outline(&from_text));
        assert!(
            outline.contains("group Action::\"publish\""),
            "{outline:#?}"
        );
        assert!(outline.len() > 100, "{}", outline.len());
    }

    /// The context types agree: the same policies validate, or fail, against both forms.
    #[test]
    fn the_text_and_json_forms_type_contexts_alike() {
        use cedar_policy::{PolicySet, ValidationMode, Validator};
        let catalog = acme_catalog();
        let from_json = build_schema(&catalog).unwrap();
        let (from_text, _) = Schema::from_cedarschema_str(&schema_text(&catalog)).unwrap();
        let q = r#"action == Action::"logs.query_logs""#;
        let g = r#"action == Action::"acl.grant_access""#;
        for (scope, cond, valid) in [
            (
                q,
                "context.args has limit && context.args.limit > 1000",
                true,
            ),
            (q, "context.args.limit > 1000", false),
            (q, "context.args.nope == 1", false),
            (
                q,
                r#"context.arg_summaries has limit && context.arg_summaries.limit.length > 1 && context.arg_summaries.limit.digest like "sha256:*""#,
                true,
            ),
            (g, r#"context.args.permission == "admin""#, true),
            (g, "context.args.permission == 1", false),
            (
                g,
                r#"context.flow.labels.contains("secret") && context.mission.seconds_left > 0"#,
                true,
            ),
            (
                "action",
                "context.args has limit && context.args.limit > 1",
                true,
            ),
        ] {
            let src = format!("forbid (principal, {scope}, resource) when {{ {cond} }};");
            let set: PolicySet = src.parse().unwrap();
            for schema in [&from_json, &from_text] {
                let r = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
                assert_eq!(r.validation_passed(), valid, "{src}\n{r}");
            }
        }
    }

    #[test]
    fn a_server_named_like_an_effect_is_refused_as_the_text_form_refuses_it() {
        let text = "[tools.\"read.x\"]\neffect = \"read\"\nrequired = []\nresource = { type = \"File\", arg = \"p\" }\n";
        let mut issues = crate::error::Issues::default();
        let catalog = Catalog::parse("catalog.toml", text, &BTreeSet::new(), &mut issues);
        assert_eq!(catalog.tools().count(), 1, "{:?}", issues.0);
        let err = build_schema(&catalog).unwrap_err().to_string();
        assert!(err.contains("`read` is declared twice"), "{err}");
        assert!(Schema::from_cedarschema_str(&schema_text(&catalog)).is_err());
    }
}
