//! The labels a call's arguments earn from a tool's label rules, as written and in their
//! canonical forms (see `crate::canon`).

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Match, ToolSpec, CHANNEL_LABEL_PREFIX};

impl ToolSpec {
    /// Whether a value a label rule reads has another spelling.
    pub(super) fn has_other_spellings(&self, map: &serde_json::Map<String, Value>) -> bool {
        self.labels.iter().any(|rule| {
            map.get(&rule.arg).is_some_and(|v| {
                self.values(&rule.arg, v)
                    .iter()
                    .any(|x| crate::canon::canonical_in(x, self.fold).is_some())
            })
        })
    }

    /// Whether a value a label rule reads carries percent-escapes.
    pub(super) fn has_escapes(&self, map: &serde_json::Map<String, Value>) -> bool {
        self.labels.iter().any(|rule| {
            map.get(&rule.arg)
                .is_some_and(|v| self.values(&rule.arg, v).iter().any(|x| x.contains('%')))
        })
    }

    /// The labels the label rules give the call's arguments, as written or (`canonical`) in
    /// their canonical forms, and whether any rule matched; the default labels when none did.
    pub(super) fn labels_of(
        &self,
        map: &serde_json::Map<String, Value>,
        canonical: bool,
    ) -> (BTreeSet<String>, bool) {
        let mut labels = BTreeSet::new();
        let mut matched = false;
        for rule in &self.labels {
            let Some(v) = map.get(&rule.arg) else {
                continue;
            };
            let mut values = self.values(&rule.arg, v);
            for x in values.iter_mut() {
                if canonical {
                    if let Some(c) = crate::canon::canonical_in(x, self.fold) {
                        *x = c;
                    }
                } else if self.fold == crate::canon::Fold::Case {
                    *x = x.to_lowercase();
                }
            }
            let hit = match &rule.matcher {
                Match::Any => !values.is_empty(),
                Match::Equals(set) => values.iter().any(|x| set.contains(x)),
                Match::ContainsAny(set) => values.iter().any(|x| set.contains(x)),
                Match::Glob(gs) => values
                    .iter()
                    .any(|x| gs.iter().any(|g| g.is_match(x.trim_start_matches('/')))),
            };
            if hit {
                matched = true;
                labels.extend(rule.add.iter().cloned());
                if rule.channel_readers {
                    for ch in &values {
                        labels.insert(format!("{CHANNEL_LABEL_PREFIX}{ch}"));
                    }
                }
            }
        }
        if !matched {
            labels.extend(self.default_labels.iter().cloned());
        }
        (labels, matched)
    }
}
