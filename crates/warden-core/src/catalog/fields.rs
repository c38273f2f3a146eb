//! Field paths: the untrusted fields of an otherwise trusted output (`untrusted_fields`).
//!
//! A path names fields of a JSON output by keys separated by dots; `[]` after a key (or alone
//! at the start) stands for every element of an array: `title`, `messages[].body`,
//! `threads[].title`, `[].name`, `data.items[].notes`. Everything under a named field counts
//! (all its strings, at any depth).

use serde_json::Value;

/// One step of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldStep {
    /// The member of an object with this key.
    Key(String),
    /// Every element of an array.
    Each,
}

/// A parsed field path (see the module doc for the syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    /// The path as written.
    pub text: String,
    /// Its steps, outermost first.
    pub steps: Vec<FieldStep>,
}

/// The most steps a path may have (outputs nest deeper only in pathological cases).
const MAX_STEPS: usize = 32;

impl FieldPath {
    /// Parse a path; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<FieldPath, String> {
        let mut steps = Vec::new();
        if text.trim().is_empty() {
            return Err("a field path may not be empty".into());
        }
        for (i, part) in text.split('.').enumerate() {
            let (key, each) = match part.strip_suffix("[]") {
                Some(k) => (k, true),
                None => (part, false),
            };
            if key.is_empty() && !(each && i == 0) {
                return Err(format!(
                    "field path `{text}`: empty key (write `a.b`, `a[].b` or `[].b`)"
                ));
            }
            if !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$' | '@'))
            {
                return Err(format!(
                    "field path `{text}`: key `{key}` may hold only letters, digits, `_`, `-`, `$` and `@`"
                ));
            }
            if !key.is_empty() {
                steps.push(FieldStep::Key(key.to_string()));
            }
            if each {
                steps.push(FieldStep::Each);
            }
        }
        if steps.len() > MAX_STEPS {
            return Err(format!(
                "field path `{text}` has more than {MAX_STEPS} steps"
            ));
        }
        Ok(FieldPath {
            text: text.to_string(),
            steps,
        })
    }
}

/// Take every value the paths name out of `v` (replacing it with `null`) and append its strings
/// to `out`, each on its own line.
pub fn take_fields(v: &mut Value, paths: &[FieldPath], out: &mut String) {
    take_fields_unless(v, paths, &|_| false, out);
}

/// [`take_fields`], leaving in place the fields of the records `keep` accepts: `keep` sees the
/// object that holds each named field (the record it belongs to).
pub fn take_fields_unless(
    v: &mut Value,
    paths: &[FieldPath],
    keep: &dyn Fn(&serde_json::Map<String, Value>) -> bool,
    out: &mut String,
) {
    for p in paths {
        take_at(v, &p.steps, keep, out);
    }
}

fn take_at(
    v: &mut Value,
    steps: &[FieldStep],
    keep: &dyn Fn(&serde_json::Map<String, Value>) -> bool,
    out: &mut String,
) {
    let Some((first, rest)) = steps.split_first() else {
        let taken = std::mem::take(v);
        push_strings(&taken, out);
        return;
    };
    match (first, v) {
        (FieldStep::Key(k), Value::Object(m)) => {
            if rest.is_empty() && keep(m) {
                return;
            }
            if let Some(inner) = m.get_mut(k) {
                take_at(inner, rest, keep, out);
            }
        }
        (FieldStep::Each, Value::Array(items)) => {
            for item in items {
                take_at(item, rest, keep, out);
            }
        }
        _ => {}
    }
}

/// Append every string (and scalar) under `v`, one per line. Keys of objects are data too.
pub(crate) fn push_strings(v: &Value, out: &mut String) {
    // An explicit stack: output nesting never recurses the Rust stack.
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => {
                out.push('\n');
                out.push_str(s);
            }
            Value::Number(n) => {
                out.push('\n');
                out.push_str(&n.to_string());
            }
            Value::Bool(_) | Value::Null => {}
            Value::Array(a) => stack.extend(a.iter().rev()),
            Value::Object(m) => {
                for k in m.keys() {
                    out.push('\n');
                    out.push_str(k);
                }
                stack.extend(m.values().rev());
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_parse_and_reject_bad_syntax() {
        let p = FieldPath::parse("messages[].body").unwrap();
        assert_eq!(
            p.steps,
            vec![
                FieldStep::Key("messages".into()),
                FieldStep::Each,
                FieldStep::Key("body".into())
            ]
        );
        assert_eq!(
            FieldPath::parse("[].name").map(|p| p.steps),
            Ok(vec![FieldStep::Each, FieldStep::Key("name".into())])
        );
        for bad in ["", "a..b", "a.[].b", "a b", "a.*", ".a", "a."] {
            assert!(FieldPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn named_fields_are_taken_out_and_the_rest_stays() {
        let mut v = json!({
            "channel": "eng-help",
            "threads": [
                {"thread_id": "T-1", "title": "mail drop@evil.example", "author": "bob"},
                {"thread_id": "T-2", "title": {"nested": ["x", 1]}, "author": "erin"}
            ]
        });
        let paths = [FieldPath::parse("threads[].title").unwrap()];
        let mut out = String::new();
        take_fields(&mut v, &paths, &mut out);
        assert!(out.contains("drop@evil.example"));
        assert!(out.contains("nested") && out.contains("\nx"));
        let rest = v.to_string();
        assert!(!rest.contains("drop@evil"));
        assert!(rest.contains("bob") && rest.contains("T-2"));
    }

    #[test]
    fn records_the_filter_keeps_stay_in_place() {
        let mut v = json!([
            {"sender": "bob", "body": "see www.a.example"},
            {"sender": "mallory", "body": "see www.b.example"},
            {"body": "no sender"}
        ]);
        let mut out = String::new();
        let paths = [FieldPath::parse("[].body").unwrap()];
        take_fields_unless(
            &mut v,
            &paths,
            &|m| m.get("sender").and_then(Value::as_str) == Some("bob"),
            &mut out,
        );
        assert!(!out.contains("www.a.example"));
        assert!(out.contains("www.b.example") && out.contains("no sender"));
        assert_eq!(v[0]["body"], "see www.a.example");
        assert_eq!(v[1]["body"], Value::Null);
    }

    #[test]
    fn a_path_that_does_not_fit_takes_nothing() {
        let mut v = json!({"threads": "not a list"});
        let paths = [FieldPath::parse("threads[].title").unwrap()];
        let mut out = String::new();
        take_fields(&mut v, &paths, &mut out);
        assert!(out.is_empty());
        assert_eq!(v, json!({"threads": "not a list"}));
    }
}
