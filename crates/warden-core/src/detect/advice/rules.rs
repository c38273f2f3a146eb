//! The deployer's own privileged-advice rules: named regular expressions from
//! `[[detectors.advice.rules]]` in `warden.toml`, each run once over every scanned layer.
//!
//! Patterns are compiled case-insensitively by the `regex` crate (linear time, bounded
//! size) and checked when the configuration loads: a pattern that does not compile, is too
//! large, or matches the empty text is refused with the rule's name.

use std::sync::Arc;

use regex::bytes::{Regex, RegexBuilder};

use super::super::text::phrase;
use super::super::{Ctx, Layer, LABEL_PRIVILEGED_ADVICE};

/// The most bytes a compiled rule may take.
const SIZE_LIMIT: usize = 1 << 20;

/// One rule as configured: a name and a regular expression.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdviceRule {
    /// Name shown in findings (`advice-rule:<name>`).
    pub name: String,
    /// Regular expression (Rust `regex` syntax, matched case-insensitively).
    pub pattern: String,
}

/// Why a configured rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The rule has no name.
    #[error("rule {index}: `name` is empty")]
    NoName {
        /// Position of the rule in the list, from 0.
        index: usize,
    },
    /// The pattern does not compile or is too large.
    #[error("rule `{name}`: invalid pattern: {message}")]
    Invalid {
        /// The rule's name.
        name: String,
        /// What the regex compiler said.
        message: String,
    },
    /// The pattern matches the empty text, so it would flag everything.
    #[error("rule `{name}`: the pattern matches empty text, which would flag every text")]
    MatchesEmpty {
        /// The rule's name.
        name: String,
    },
}

/// Compiled rules, shared by the clones of one [`super::super::Detectors`].
#[derive(Debug, Clone, Default)]
pub(in crate::detect) struct Rules(Arc<Vec<(String, Regex)>>);

impl Rules {
    /// Compile and check `rules`.
    pub(in crate::detect) fn build(rules: &[AdviceRule]) -> Result<Self, RuleError> {
        let mut out = Vec::with_capacity(rules.len());
        for (index, r) in rules.iter().enumerate() {
            if r.name.trim().is_empty() {
                return Err(RuleError::NoName { index });
            }
            let re = RegexBuilder::new(&r.pattern)
                .case_insensitive(true)
                .size_limit(SIZE_LIMIT)
                .dfa_size_limit(SIZE_LIMIT)
                .build()
                .map_err(|e| RuleError::Invalid {
                    name: r.name.clone(),
                    message: e.to_string(),
                })?;
            if re.is_match(b"") {
                return Err(RuleError::MatchesEmpty {
                    name: r.name.clone(),
                });
            }
            out.push((format!("advice-rule:{}", r.name), re));
        }
        Ok(Self(Arc::new(out)))
    }

    /// True when no rule is configured.
    pub(in crate::detect) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Run every rule over the layer; each reports its first match.
    pub(in crate::detect) fn scan(&self, ctx: &mut Ctx<'_>, layer: &Layer<'_>) {
        for (name, re) in self.0.iter() {
            if !ctx.wants(LABEL_PRIVILEGED_ADVICE) {
                return;
            }
            if let Some(m) = re.find(layer.hay) {
                ctx.report(
                    name,
                    LABEL_PRIVILEGED_ADVICE,
                    m.start(),
                    layer.encoding,
                    || phrase(m.as_bytes(), 64),
                );
            }
        }
    }
}
