//! The canonical encoding of records and the chain's hash.
//!
//! See the crate documentation for the exact definition; this module is its only
//! implementation.

use std::io::Write;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::types::{AuditColumns, AuditKind, Hash};

/// The version of the canonical record layout, hashed as the `v` field.
pub const RECORD_VERSION: u64 = 1;

/// Writes `value` canonically: object keys in ascending byte order, no whitespace, strings and
/// numbers as `serde_json` writes them.
pub fn write_canonical(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_scalar(out, &Value::String(key.clone()));
                out.push(b':');
                write_canonical(out, item);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_canonical(out, item);
            }
            out.push(b']');
        }
        scalar => write_scalar(out, scalar),
    }
}

fn write_scalar(out: &mut Vec<u8>, value: &Value) {
    // Writing a scalar into a Vec cannot fail; if it ever did, the bytes would differ and the
    // chain would not verify, which is the safe direction.
    if serde_json::to_writer(&mut *out, value).is_err() {
        let _ = out.write_all(b"null");
    }
}

/// The canonical text of a value.
pub fn canonical_string(value: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(&mut out, value);
    String::from_utf8(out).unwrap_or_default()
}

/// The canonical bytes of one record: the object of its fields, as the crate docs define it.
pub fn record_bytes(
    seq: u64,
    kind: &AuditKind,
    at_ms: i64,
    columns: &AuditColumns,
    body: &Value,
) -> Vec<u8> {
    let mut body_bytes = Vec::with_capacity(128);
    write_canonical(&mut body_bytes, body);
    record_bytes_with_body(seq, kind, at_ms, columns, &body_bytes)
}

/// [`record_bytes`] with the body already in canonical form (the keys are written in their
/// sorted order by hand, so the body is not copied).
pub fn record_bytes_with_body(
    seq: u64,
    kind: &AuditKind,
    at_ms: i64,
    columns: &AuditColumns,
    body_canonical: &[u8],
) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, name: &str, value: &Option<String>) {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        match value {
            Some(text) => write_scalar(out, &Value::String(text.clone())),
            None => out.extend_from_slice(b"null"),
        }
    }
    let mut out = Vec::with_capacity(body_canonical.len() + 256);
    out.extend_from_slice(b"{\"agent\":");
    match &columns.agent {
        Some(text) => write_scalar(&mut out, &Value::String(text.clone())),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(format!(",\"at_ms\":{at_ms},\"body\":").as_bytes());
    out.extend_from_slice(body_canonical);
    field(&mut out, "decision_id", &columns.decision_id);
    field(&mut out, "kind", &Some(kind.as_str().to_string()));
    field(&mut out, "mission_id", &columns.mission_id);
    field(&mut out, "outcome", &columns.outcome);
    field(&mut out, "principal", &columns.principal);
    out.extend_from_slice(format!(",\"seq\":{seq}").as_bytes());
    field(&mut out, "tool", &columns.tool);
    out.extend_from_slice(format!(",\"v\":{RECORD_VERSION}}}").as_bytes());
    out
}

/// `SHA-256(canonical record bytes || prev_hash)`.
pub fn record_hash(canonical: &[u8], prev: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(canonical);
    hasher.update(prev.0);
    Hash(hasher.finalize().into())
}

/// The hash of a record from its fields.
pub fn hash_of(
    seq: u64,
    kind: &AuditKind,
    at_ms: i64,
    columns: &AuditColumns,
    body: &Value,
    prev: &Hash,
) -> Hash {
    record_hash(&record_bytes(seq, kind, at_ms, columns, body), prev)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_and_there_is_no_whitespace() {
        let value = json!({"b": 1, "a": [true, null, {"z": "é\n", "y": 1.5}], "A": -2});
        assert_eq!(
            canonical_string(&value),
            r#"{"A":-2,"a":[true,null,{"y":1.5,"z":"é\n"}],"b":1}"#
        );
    }

    #[test]
    fn numbers_and_escapes_are_as_documented() {
        let small = canonical_string(&json!([1e-7, 1.5e16, 1e16, 123456789.125]));
        assert_eq!(small, "[1e-7,1.5e+16,1e+16,123456789.125]");
        let value = json!({"f": [1.0, -0.0, 1e300, 0.1, 18446744073709551615u64, -5],
                           "s": "\u{1}\u{7f}/é\"\\\t"});
        assert_eq!(
            canonical_string(&value),
            "{\"f\":[1.0,-0.0,1e+300,0.1,18446744073709551615,-5],\"s\":\"\\u0001\u{7f}/é\\\"\\\\\\t\"}"
        );
    }

    /// What an outside verifier does, from the crate docs alone.
    #[test]
    fn the_documented_hash_of_a_first_record() {
        let text = r#"{"agent":"a","at_ms":1,"body":{"k":[true]},"decision_id":null,"kind":"decision","mission_id":null,"outcome":"allow","principal":null,"seq":1,"tool":null,"v":1}"#;
        let mut hasher = Sha256::new();
        hasher.update(text.as_bytes());
        hasher.update([0u8; 32]);
        let expected: [u8; 32] = hasher.finalize().into();
        let columns = AuditColumns {
            agent: Some("a".into()),
            outcome: Some("allow".into()),
            ..AuditColumns::default()
        };
        let hash = hash_of(
            1,
            &AuditKind::Decision,
            1,
            &columns,
            &json!({"k": [true]}),
            &Hash::ZERO,
        );
        assert_eq!(hash.0, expected);
    }

    #[test]
    fn hand_written_order_matches_the_sorted_object() {
        let columns = AuditColumns {
            decision_id: Some("d\"1".into()),
            mission_id: Some("m".into()),
            principal: None,
            agent: Some("a".into()),
            tool: Some("t/x".into()),
            outcome: Some("allow".into()),
        };
        let body = json!({"z": 1, "a": {"k": [1, 2.5, "\u{1}"]}});
        let mut object = serde_json::Map::new();
        let text = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
        object.insert("v".into(), json!(1));
        object.insert("tool".into(), text(&columns.tool));
        object.insert("seq".into(), json!(9));
        object.insert("principal".into(), text(&columns.principal));
        object.insert("outcome".into(), text(&columns.outcome));
        object.insert("mission_id".into(), text(&columns.mission_id));
        object.insert("kind".into(), json!("outcome"));
        object.insert("decision_id".into(), text(&columns.decision_id));
        object.insert("body".into(), body.clone());
        object.insert("at_ms".into(), json!(-5));
        object.insert("agent".into(), text(&columns.agent));
        assert_eq!(
            record_bytes(9, &AuditKind::Outcome, -5, &columns, &body),
            canonical_string(&Value::Object(object)).into_bytes()
        );
    }

    #[test]
    fn record_bytes_have_every_field() {
        let bytes = record_bytes(
            7,
            &AuditKind::Decision,
            1_700_000_000_000,
            &AuditColumns {
                decision_id: Some("d1".into()),
                ..AuditColumns::default()
            },
            &json!({"reasons": ["x"]}),
        );
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"agent":null,"at_ms":1700000000000,"body":{"reasons":["x"]},"decision_id":"d1","kind":"decision","mission_id":null,"outcome":null,"principal":null,"seq":7,"tool":null,"v":1}"#
        );
    }
}
