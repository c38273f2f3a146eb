//! Mission state: what a mission has done and read, whichever of its sessions did it. The
//! sessions of one mission (a second MCP connection, a reconnect, a stateless request, another
//! `session` in a trace) share one [`SessionState`], so opening a new session washes nothing
//! out. Its `id` names the session acting now; each label keeps the session that read it.
//!
//! The state is plain data so that any store can keep it (in memory here; SQLite and PostgreSQL
//! behind the same [`SessionStore`] trait). It is bounded: at most [`MAX_TAINT_LABELS`] labels,
//! [`MAX_TEXT`] bytes each of untrusted and trusted text kept for provenance checks (as read and
//! normalised), and [`MAX_HISTORY`] history entries — about 4.1 MiB at most per session,
//! typically a few KiB.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::detect::fingerprint::{SecretPrints, SentTails};
use crate::mission::MissionUsage;
use crate::model::{Label, LabelSource, Outcome};

/// The most distinct labels a session keeps; past it, further labels collapse into `overflow`.
pub const MAX_TAINT_LABELS: usize = 256;
/// The most bytes of untrusted (and, separately, trusted) text kept for provenance checks.
pub const MAX_TEXT: usize = 1 << 20;
/// The most history entries kept.
pub const MAX_HISTORY: usize = 128;

/// Text kept for provenance checks, lowercased, bounded; `overflowed` records that older text
/// was dropped (provenance then fails closed: a value not found in trusted text counts as
/// untrusted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundedText {
    /// The kept text (most recent last).
    pub text: String,
    /// Whether some text was dropped.
    pub overflowed: bool,
}

/// When the kept text passes [`MAX_TEXT`], it is cut down to this many bytes (the oldest
/// quarter goes), so the buffer is moved once per 256 KiB appended rather than on every push.
const KEEP_AFTER_CUT: usize = MAX_TEXT - MAX_TEXT / 4;

/// The first char boundary at or after `at`.
fn boundary_from(s: &str, mut at: usize) -> usize {
    while at < s.len() && !s.is_char_boundary(at) {
        at += 1;
    }
    at
}

impl BoundedText {
    /// Append text (lowercased). When the kept text would pass [`MAX_TEXT`] bytes, the oldest
    /// text is dropped down to three quarters of it and `overflowed` is set.
    pub fn push(&mut self, s: &str) {
        // ASCII text (most tool output) is copied once and lowercased in place; other text
        // goes through Unicode lowercasing first. Both keep the same bytes.
        let ascii = s.is_ascii();
        let lowered;
        // The text to keep: `s` itself when ASCII (lowercased once copied), else its lowercase.
        let text = if ascii {
            s
        } else {
            lowered = s.to_lowercase();
            lowered.as_str()
        };
        if text.len() >= KEEP_AFTER_CUT {
            let cut = boundary_from(text, text.len() - KEEP_AFTER_CUT);
            self.text.clear();
            self.text.push_str(text.get(cut..).unwrap_or_default());
            if ascii {
                self.text.make_ascii_lowercase();
            }
            self.overflowed = true;
            return;
        }
        let start = self.text.len();
        self.text.push('\n');
        self.text.push_str(text);
        if ascii {
            if let Some(added) = self.text.get_mut(start..) {
                added.make_ascii_lowercase();
            }
        }
        if self.text.len() > MAX_TEXT {
            let cut = boundary_from(&self.text, self.text.len() - KEEP_AFTER_CUT);
            self.text.drain(..cut);
            self.overflowed = true;
        }
    }

    /// Take in another copy's text: nothing when this text holds it already, the other when it
    /// holds this one, else the other appended (bounded as [`BoundedText::push`]).
    pub fn merge_from(&mut self, other: &BoundedText) {
        self.overflowed |= other.overflowed;
        if other.text.is_empty() || self.text.contains(other.text.as_str()) {
            return;
        }
        if other.text.contains(self.text.as_str()) {
            self.text.clone_from(&other.text);
            return;
        }
        let overflowed = self.overflowed;
        // Already lowercased: pushing lowercases again, which keeps it as it is.
        self.push(other.text.trim_start_matches('\n'));
        self.overflowed |= overflowed;
    }

    /// True when the (lowercased) needle occurs in the kept text.
    pub fn contains(&self, needle: &str) -> bool {
        self.text.contains(&needle.to_lowercase())
    }
}

/// One decided call, kept for explanation and anomaly detection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// 1-based call number in the session.
    pub call: u64,
    /// `server.tool`.
    pub tool: String,
    /// The outcome.
    pub outcome: Outcome,
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
}

/// The state of one mission, shared by its sessions (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    /// The session acting now (set by whoever holds the state before deciding or absorbing).
    pub id: String,
    /// The mission it runs under.
    pub mission: String,
    /// Calls decided.
    pub calls: u64,
    /// Calls allowed.
    pub allowed: u64,
    /// Labels read into the session, each with its first source.
    pub taint: BTreeMap<Label, LabelSource>,
    /// More labels arrived than [`MAX_TAINT_LABELS`]; the session is treated as holding every
    /// sensitive label.
    pub taint_overflow: bool,
    /// The session has read untrusted content.
    pub untrusted_input: bool,
    /// The session has read sensitive data.
    pub sensitive_read: bool,
    /// The channels untrusted text was read from (bounded; see [`crate::holds`]).
    #[serde(default)]
    pub untrusted_places: std::collections::BTreeSet<String>,
    /// Untrusted text was read from somewhere other than one channel.
    #[serde(default)]
    pub untrusted_elsewhere: bool,
    /// Public text whose detector labels were not kept (see [`crate::holds`]).
    #[serde(default)]
    pub public_text: BoundedText,
    /// Whose own data each label is: `Some(user)` while every read that brought the label in
    /// was about that one person, `None` once any was not (see [`crate::own`]).
    #[serde(default)]
    pub label_subjects: BTreeMap<Label, Option<String>>,
    /// Untrusted text read, for provenance checks.
    pub untrusted_text: BoundedText,
    /// Trusted text read (tool outputs from trusted sources), for provenance checks.
    pub trusted_text: BoundedText,
    /// The untrusted text as provenance matches it: normalised, with canonical forms of the
    /// values in it (see `crate::provenance::index_text`).
    #[serde(default)]
    pub untrusted_norm: BoundedText,
    /// The trusted text as provenance matches it (as `untrusted_norm`).
    #[serde(default)]
    pub trusted_norm: BoundedText,
    /// Recent decisions.
    pub history: VecDeque<HistoryEntry>,
    /// Keyed fingerprints of the secrets the mission read (never the secrets themselves), so
    /// a part of one in a later call is recognised.
    #[serde(default, skip_serializing_if = "SecretPrints::is_empty")]
    pub secret_prints: SecretPrints,
    /// The end of what the mission's calls sent, per argument, so a secret split over calls is
    /// recognised.
    #[serde(default, skip_serializing_if = "SentTails::is_empty")]
    pub sent_tails: SentTails,
}

impl SessionState {
    /// A new session under a mission.
    pub fn new(id: impl Into<String>, mission: impl Into<String>) -> Self {
        SessionState {
            id: id.into(),
            mission: mission.into(),
            ..Default::default()
        }
    }

    /// Add a label with its source (first source wins).
    pub fn add_label(&mut self, src: LabelSource) {
        if self.taint.contains_key(&src.label) {
            return;
        }
        if self.taint.len() >= MAX_TAINT_LABELS {
            self.taint_overflow = true;
            return;
        }
        self.taint.insert(src.label.clone(), src);
    }

    /// Take in what another copy of this mission's state holds (a replica's, or what the
    /// store kept before a restart). The merge only adds: labels, flags, places, text and
    /// fingerprints are united, counters take the larger value, and a label whose subjects
    /// differ belongs to no one person. Merging the same state twice changes nothing, so
    /// copies that merged each other agree.
    pub fn merge_from(&mut self, other: &SessionState) {
        self.calls = self.calls.max(other.calls);
        self.allowed = self.allowed.max(other.allowed);
        for src in other.taint.values() {
            self.add_label(src.clone());
        }
        self.taint_overflow |= other.taint_overflow;
        self.untrusted_input |= other.untrusted_input;
        self.sensitive_read |= other.sensitive_read;
        self.untrusted_elsewhere |= other.untrusted_elsewhere;
        self.untrusted_places
            .extend(other.untrusted_places.iter().cloned());
        for (label, subject) in &other.label_subjects {
            let merged = match self.label_subjects.get(label) {
                None => subject.clone(),
                Some(mine) if mine == subject => mine.clone(),
                Some(_) => None,
            };
            self.label_subjects.insert(label.clone(), merged);
        }
        self.public_text.merge_from(&other.public_text);
        self.untrusted_text.merge_from(&other.untrusted_text);
        self.trusted_text.merge_from(&other.trusted_text);
        self.untrusted_norm.merge_from(&other.untrusted_norm);
        self.trusted_norm.merge_from(&other.trusted_norm);
        for h in &other.history {
            if !self.history.contains(h) {
                self.history.push_back(h.clone());
            }
        }
        if self.history.len() > 1 {
            self.history
                .make_contiguous()
                .sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then(a.call.cmp(&b.call)));
        }
        while self.history.len() > MAX_HISTORY {
            self.history.pop_front();
        }
        self.secret_prints.merge_from(&other.secret_prints);
        for (name, tail) in &other.sent_tails.0 {
            if !self.sent_tails.0.iter().any(|(n, _)| n == name) {
                self.sent_tails.0.push((name.clone(), tail.clone()));
            }
        }
    }

    /// Record a decided call in the history.
    pub fn remember(&mut self, entry: HistoryEntry) {
        if self.history.len() >= MAX_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(entry);
    }
}

/// Where sessions and mission usage are kept. Implementations: in memory (here), SQLite and
/// PostgreSQL (the store crate).
pub trait SessionStore {
    /// The store's error type.
    type Error: std::error::Error;
    /// Load a session.
    fn session(&self, id: &str) -> Result<Option<SessionState>, Self::Error>;
    /// Save a session.
    fn put_session(&mut self, state: &SessionState) -> Result<(), Self::Error>;
    /// Load a mission's usage.
    fn usage(&self, mission: &str) -> Result<MissionUsage, Self::Error>;
    /// Save a mission's usage.
    fn put_usage(&mut self, mission: &str, usage: &MissionUsage) -> Result<(), Self::Error>;
}

/// An in-memory [`SessionStore`].
#[derive(Debug, Default, Clone)]
pub struct MemorySessions {
    sessions: HashMap<String, SessionState>,
    usage: HashMap<String, MissionUsage>,
}

impl SessionStore for MemorySessions {
    type Error = std::convert::Infallible;

    fn session(&self, id: &str) -> Result<Option<SessionState>, Self::Error> {
        Ok(self.sessions.get(id).cloned())
    }

    fn put_session(&mut self, state: &SessionState) -> Result<(), Self::Error> {
        self.sessions.insert(state.id.clone(), state.clone());
        Ok(())
    }

    fn usage(&self, mission: &str) -> Result<MissionUsage, Self::Error> {
        Ok(self.usage.get(mission).copied().unwrap_or_default())
    }

    fn put_usage(&mut self, mission: &str, usage: &MissionUsage) -> Result<(), Self::Error> {
        self.usage.insert(mission.to_string(), *usage);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text as Unicode lowercasing of every push would keep it (the plain rule `push`
    /// speeds up for ASCII), for pushes that stay under the bound.
    fn lowered_model(pushes: &[&str]) -> String {
        pushes.iter().fold(String::new(), |mut t, p| {
            t.push('\n');
            t.push_str(&p.to_lowercase());
            t
        })
    }

    #[test]
    fn ascii_and_unicode_pushes_keep_the_lowercased_text() {
        let pushes = [
            "User BOB@Acme.Example asked: Grant ALL-EMPLOYEES read?",
            "Ünïcode ÄND ASCII Mixed: ΣΊΣΥΦΟΣ İstanbul",
            "AWS_SECRET_ACCESS_KEY=AbCdEf0123",
            "",
            "plain lowercase text",
        ];
        let mut t = BoundedText::default();
        for p in pushes {
            t.push(p);
        }
        assert_eq!(t.text, lowered_model(&pushes));
        assert!(t.contains("bob@acme.example"));
        assert!(t.contains("AWS_SECRET_ACCESS_KEY=ABCDEF0123"));
        assert!(!t.overflowed);
        // One ASCII push over the bound keeps its lowercased tail.
        let mut big = "X".repeat(2 * MAX_TEXT);
        big.push_str("Tail-END");
        t.push(&big);
        assert!(t.overflowed);
        assert!(t.text.ends_with("xxtail-end"));
        assert!(!t.text.bytes().any(|b| b.is_ascii_uppercase()));
    }

    #[test]
    fn bounded_text_keeps_the_newest_text_within_the_bound() {
        let mut t = BoundedText::default();
        let chunk = "é".repeat(10_000); // 2 bytes per char: cuts must respect boundaries
        for i in 0..200 {
            t.push(&format!("marker-{i} {chunk}"));
            assert!(
                t.text.len() <= MAX_TEXT,
                "{} bytes after push {i}",
                t.text.len()
            );
        }
        assert!(t.overflowed);
        assert!(t.contains("MARKER-199"));
        assert!(!t.contains("marker-0 "));
        assert!(t.text.len() >= KEEP_AFTER_CUT - 20_010);
    }

    #[test]
    fn one_huge_push_keeps_its_tail() {
        let mut t = BoundedText::default();
        t.push("old");
        let mut big = "a".repeat(2 * MAX_TEXT);
        big.push_str("TAIL");
        t.push(&big);
        assert!(t.overflowed);
        assert!(t.text.len() <= MAX_TEXT);
        assert!(t.contains("tail"));
        assert!(!t.contains("old"));
    }

    #[test]
    fn small_pushes_do_not_overflow() {
        let mut t = BoundedText::default();
        t.push("Alpha");
        t.push("Beta");
        assert!(!t.overflowed);
        assert_eq!(t.text, "\nalpha\nbeta");
    }
}
