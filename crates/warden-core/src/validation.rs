//! Strict validation of a loaded policy set, once per policy shape.
//!
//! Cedar's strict validator typechecks every policy in every request environment of the schema
//! (each tool action × principal type × resource type: 1,400 environments for a 100-tool
//! catalog), so loading costs policies × environments: about 3 ms per policy at 100 tools,
//! 34 s for 10,000 policies. Large policy sets are written from a few patterns (one per agent,
//! per tenant, per group), and policies that differ only in the ids of the entities they name
//! (other than actions) validate alike: the validator looks at entity types, at action ids
//! (which decide the environments a policy applies to) and at every other part of a policy,
//! never at the id of a non-action entity (Warden's schema declares no enumerated entity
//! types, whose ids it would check). So the policies are grouped by their shape — the JSON form
//! without annotations, with the ids of non-action entities blanked — and one policy of each
//! group is validated. When it has errors, every policy of its group is validated on its own,
//! so that each reports Cedar's own errors, with its id and location.

use std::collections::{HashMap, HashSet};

use cedar_policy::{PolicyId, PolicySet, Schema, ValidationMode, ValidationResult, Validator};

/// Validate `all` strictly against `schema`; `json` holds each policy's JSON form (policies
/// without one are validated on their own). The errors of the result are those of every policy.
pub(crate) fn validate_strict(
    schema: &Schema,
    all: &PolicySet,
    json: &HashMap<PolicyId, serde_json::Value>,
) -> ValidationResult {
    let validator = Validator::new(schema.clone());
    // Shape → its policies, first seen first.
    let mut groups: HashMap<String, Vec<PolicyId>> = HashMap::new();
    let mut first = PolicySet::new();
    let mut alone = PolicySet::new();
    for p in all.policies() {
        let Some(key) = json.get(p.id()).map(shape) else {
            // Cannot happen for a policy that parsed; validated on its own all the same.
            let _ = alone.add(p.clone());
            continue;
        };
        let members = groups.entry(key).or_default();
        if members.is_empty() {
            let _ = first.add(p.clone());
        }
        members.push(p.id().clone());
    }
    let firsts = validator.validate(&first, ValidationMode::Strict);
    let failed: HashSet<&PolicyId> = firsts.validation_errors().map(|e| e.policy_id()).collect();
    if failed.is_empty() && alone.is_empty() {
        return firsts;
    }
    // Every policy of a group whose first policy failed, validated for its own errors.
    let mut again = alone;
    for members in groups.values() {
        if members.first().is_some_and(|id| failed.contains(id)) {
            for id in members {
                if let Some(p) = all.policy(id) {
                    let _ = again.add(p.clone());
                }
            }
        }
    }
    validator.validate(&again, ValidationMode::Strict)
}

/// The shape of a policy: its JSON form without annotations, with the id of every entity that
/// is not an action blanked.
fn shape(json: &serde_json::Value) -> String {
    let mut v = json.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("annotations");
    }
    blank_ids(&mut v);
    v.to_string()
}

/// Blank `id` in every entity reference (`{"type": T, "id": I}`, both strings) whose type is
/// not an action type.
fn blank_ids(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            let is_entity = m.len() == 2
                && m.get("id").is_some_and(serde_json::Value::is_string)
                && m.get("type")
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|t| t != "Action" && !t.ends_with("::Action"));
            if is_entity {
                m.insert("id".into(), serde_json::Value::String(String::new()));
            } else {
                m.values_mut().for_each(blank_ids);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(blank_ids),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::str::FromStr;

    use super::*;

    fn json_of(text: &str) -> serde_json::Value {
        PolicySet::from_str(text)
            .unwrap()
            .policies()
            .next()
            .unwrap()
            .to_json()
            .unwrap()
    }

    #[test]
    fn entity_ids_do_not_change_the_shape_but_action_ids_do() {
        let a = json_of(
            r#"@id("a") permit(principal == Agent::"x", action in Action::"read", resource)
               when { principal in Group::"g1" && context.n > 5 };"#,
        );
        let b = json_of(
            r#"@id("b") permit(principal == Agent::"y", action in Action::"read", resource)
               when { principal in Group::"g2" && context.n > 5 };"#,
        );
        let c = json_of(
            r#"@id("c") permit(principal == Agent::"y", action in Action::"write", resource)
               when { principal in Group::"g2" && context.n > 5 };"#,
        );
        let d = json_of(
            r#"@id("d") permit(principal == Agent::"y", action in Action::"read", resource)
               when { principal in Group::"g2" && context.n > 6 };"#,
        );
        assert_eq!(shape(&a), shape(&b));
        assert_ne!(shape(&b), shape(&c));
        assert_ne!(shape(&b), shape(&d));
    }

    #[test]
    fn the_schema_declares_no_enumerated_entity_types() {
        // Their ids would matter to validation, and shapes blank them.
        assert!(!crate::policy::SCHEMA_BASE.contains("enum"));
    }
}
