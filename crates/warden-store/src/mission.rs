//! Mission state shared by the backends: merging taint sources.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::canonical::canonical_string;
use crate::error::StoreError;

/// The most sources kept for one label of one mission (the first ones in canonical order).
/// A label is never dropped; only the list of where it came from is bounded.
pub const MAX_SOURCES_PER_LABEL: usize = 64;

/// The most bytes of one label name.
pub const MAX_LABEL_BYTES: usize = 256;

/// The union of two source sets: deduplicated, ordered by canonical text, bounded by
/// [`MAX_SOURCES_PER_LABEL`].
pub fn merge_sources(existing: &[Value], new: &[Value]) -> Vec<Value> {
    let mut set: BTreeMap<String, Value> = BTreeMap::new();
    for source in existing.iter().chain(new) {
        set.entry(canonical_string(source))
            .or_insert_with(|| source.clone());
    }
    set.into_values().take(MAX_SOURCES_PER_LABEL).collect()
}

/// The sources as stored: the canonical text of the JSON array.
pub(crate) fn sources_text(sources: &[Value]) -> String {
    canonical_string(&Value::Array(sources.to_vec()))
}

/// Parses stored sources; anything but an array is damage.
pub(crate) fn parse_sources(text: &str) -> Result<Vec<Value>, StoreError> {
    match serde_json::from_str(text) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(_) | Err(_) => Err(StoreError::Corrupt(format!(
            "taint sources `{text}` are not a JSON array"
        ))),
    }
}

/// Parses a stored JSON value.
pub(crate) fn parse_json(text: &str, what: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what} is not JSON: {e}")))
}

/// Checks the labels of an absorb.
pub(crate) fn check_labels<'a>(labels: impl Iterator<Item = &'a String>) -> Result<(), StoreError> {
    for label in labels {
        if label.is_empty() || label.len() > MAX_LABEL_BYTES {
            return Err(StoreError::Invalid(format!(
                "a label has 1 to {MAX_LABEL_BYTES} bytes, not {}",
                label.len()
            )));
        }
    }
    Ok(())
}

/// A u64 amount as the databases store it.
pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Invalid(format!("{what} {value} is too large")))
}

/// A stored i64 as a u64 (a negative one is damage).
pub(crate) fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} is negative")))
}
