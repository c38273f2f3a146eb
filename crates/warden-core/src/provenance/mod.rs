//! Provenance: where the values that direct a call came from.
//!
//! A call is directed by its directing arguments (recipients, payees, URLs, groups, paths: the
//! catalog's `directs`) and by the directing values written inside its free-text arguments
//! (links, e-mail addresses, handles, IBANs, phone and account numbers in a body, a subject, a
//! memo). Each value gets an [`Origin`]:
//!
//! - [`Origin::Principal`]: the person's own words (the mission's purpose, not negated), or the
//!   person themself;
//! - [`Origin::Trusted`]: a trusted output the mission read, or, for a directing argument
//!   read in untrusted content, a channel or group the directory declares;
//! - [`Origin::Untrusted`]: untrusted content the mission read;
//! - [`Origin::None`]: seen nowhere.
//!
//! Values match as whole tokens of normalised text ([`normalize`]): `drop [at] evil [dot]
//! example` is `drop@evil.example`, and `smith@x.example` is not found inside
//! `alice.smith@x.example`. A purpose that mentions a value only to refuse it ("do not mail
//! X", "ignore X") does not make it the person's request.
//!
//! Outputs are split by integrity when absorbed ([`absorb_output`]): an untrusted output goes
//! to the untrusted text; a trusted one to the trusted text, except the fields its catalog
//! entry names in `untrusted_fields`.

mod normal;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::{Integrity, ToolSpec};
use crate::config::Config;
use crate::mission::Mission;
use crate::session::SessionState;

pub use normal::{
    contains_host, contains_token, find_values, host_positions, index_text, normalize,
    token_positions, Found, Kind, MAX_VALUES,
};

/// Where a directing value came from. Ordered weakest first: the weakest origin of several
/// values is their minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Untrusted content the mission read.
    Untrusted,
    /// Seen nowhere: not in the person's words, nor in anything the mission read.
    None,
    /// A trusted output the mission read.
    Trusted,
    /// The person's own words (the mission's purpose), or the person themself.
    Principal,
}

impl Origin {
    /// The name policies compare: `untrusted`, `none`, `trusted`, `principal`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Untrusted => "untrusted",
            Origin::None => "none",
            Origin::Trusted => "trusted",
            Origin::Principal => "principal",
        }
    }
}

/// The most free-text values a decision records (all are checked).
const MAX_RECORDED: usize = 8;

/// Values shorter than this (in bytes) are not judged: too short to tell apart from prose.
const MIN_VALUE: usize = 4;

/// Where the values directing one call came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// Per directing argument, the weakest origin of its values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, Origin>,
    /// The weakest origin of the directing values found inside free-text arguments, when any
    /// were found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Origin>,
    /// The first free-text values, `argument: value`, with their origin (weakest first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub text_values: Vec<(String, Origin)>,
}

impl Provenance {
    /// True when the call has no directing value at all.
    pub fn is_empty(&self) -> bool {
        self.args.is_empty() && self.text.is_none()
    }

    /// The weakest origin of the directing arguments; `principal` when there are none.
    pub fn directing(&self) -> Origin {
        self.args
            .values()
            .copied()
            .min()
            .unwrap_or(Origin::Principal)
    }

    /// The weakest origin of the values in free text; `principal` when there are none.
    pub fn in_text(&self) -> Origin {
        self.text.unwrap_or(Origin::Principal)
    }

    /// The weakest origin of every directing value; `principal` when there are none.
    pub fn weakest(&self) -> Origin {
        self.directing().min(self.in_text())
    }

    /// Append, for an explanation, the directing arguments a tool's output chose rather than the
    /// person (`trusted`): `chosen by a tool's output, not named by the person: to`. Untrusted
    /// ones are explained as untrusted direction.
    pub fn explain(&self, out: &mut String) {
        let mut first = true;
        for (arg, _) in self.args.iter().filter(|(_, o)| **o == Origin::Trusted) {
            if first {
                if !out.is_empty() {
                    out.push_str(". ");
                }
                out.push_str("chosen by a tool's output, not named by the person: ");
                first = false;
            } else {
                out.push_str(", ");
            }
            out.push_str(arg);
        }
    }

    /// `argument=origin` for each directing argument, as policies read them.
    pub fn arg_origins(&self) -> Vec<String> {
        self.args
            .iter()
            .map(|(a, o)| format!("{a}={}", o.as_str()))
            .collect()
    }
}

/// What [`assess`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assessment {
    /// Where each directing value came from.
    pub provenance: Provenance,
    /// `argument=value` for every value taken from untrusted content only.
    pub untrusted: Vec<String>,
}

/// Words that, shortly before a value, say the person mentions it to refuse it. Short and
/// across languages on purpose: any of them in the clause before the value is enough.
const NEGATIONS: &[&str] = &[
    // English
    "not",
    "never",
    "no",
    "don",
    "dont",
    "doesn",
    "didn",
    "won",
    "shouldn",
    "mustn",
    "cannot",
    "without",
    "ignore",
    "ignoring",
    "except",
    "excluding",
    "exclude",
    "avoid",
    "instead",
    "nor",
    "neither",
    "block",
    "blocked",
    "phishing",
    "scam",
    "spam",
    "suspicious",
    "fraud",
    "fraudulent",
    "malicious",
    "attacker",
    "untrusted",
    "beware",
    // German
    "nicht",
    "kein",
    "keine",
    "keinen",
    "keinem",
    "niemals",
    "nie",
    "ohne",
    "außer",
    "ignoriere",
    "ignorieren",
    // French
    "ne",
    "pas",
    "jamais",
    "sans",
    "sauf",
    "ignorez",
    "ignorer",
    "ignore",
    // Spanish, Portuguese, Italian
    "nunca",
    "sin",
    "excepto",
    "ignora",
    "ignorar",
    "não",
    "nao",
    "sem",
    "exceto",
    "nem",
    "non",
    "mai",
    "senza",
    "tranne",
];

/// Negations written without spaces (CJK), before or after the value.
const NEGATIONS_CJK: &[&str] = &[
    "ない",
    "なし",
    "禁止",
    "無視",
    "不要",
    "しないで",
    "别",
    "勿",
    "不",
    "없",
    "말",
];

/// How far before a value its clause is read for a negation, in characters.
const NEGATION_WINDOW: usize = 48;

/// True when the mention at byte `at` (of `len` bytes) in normalised `text` is negated: a
/// negation word in its clause (up to [`NEGATION_WINDOW`] characters back to the start of the
/// sentence), or a CJK negation just around it.
fn negated(text: &str, at: usize, len: usize) -> bool {
    let before = text.get(..at).unwrap_or_default();
    let start = before
        .char_indices()
        .rev()
        .take(NEGATION_WINDOW)
        .take_while(|(_, c)| !matches!(c, '.' | ';' | '!' | '?' | '\n' | '。'))
        .last()
        .map_or(before.len(), |(i, _)| i);
    let clause = before.get(start..).unwrap_or_default();
    let words = clause
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty());
    for w in words {
        if NEGATIONS.contains(&w) {
            return true;
        }
    }
    let after: String = text
        .get(at + len..)
        .unwrap_or_default()
        .chars()
        .take(12)
        .collect();
    NEGATIONS_CJK
        .iter()
        .any(|n| clause.contains(n) || after.contains(n))
}

/// Whether `needle` (normalised) is the person's own request: a whole-token mention in the
/// purpose that is not negated.
fn in_purpose(purpose: &str, needle: &str) -> bool {
    token_positions(purpose, needle).any(|at| !negated(purpose, at, needle.len()))
}

/// What provenance compares a value against.
struct Sources<'a> {
    purpose: String,
    principal: &'a str,
    principal_email: Option<String>,
    session: &'a SessionState,
    cfg: &'a Config,
}

impl Sources<'_> {
    /// Whether a host is the organisation's own (its hosts are where its people are).
    fn internal(&self, host: &str) -> bool {
        self.cfg.directory.is_internal_host(host)
    }

    /// The origin of one normalised value, by its forms (the value, its canonical form).
    fn origin_of(&self, value: &str, canon: Option<&str>) -> Origin {
        let canon_needle = canon.map(|c| format!("{}{c}", '\u{1}'));
        let forms = || std::iter::once(value).chain(canon_needle.as_deref());
        let principal = value == self.principal
            || value.strip_prefix('@') == Some(self.principal)
            || self.principal_email.as_deref() == Some(value)
            || in_purpose(&self.purpose, value)
            || canon.is_some_and(|c| {
                // The purpose's numbers in canonical form.
                let (found, _) = find_values(&self.purpose);
                found.iter().any(|f| {
                    f.canon.as_deref() == Some(c)
                        && token_positions(&self.purpose, &f.text)
                            .any(|at| !negated(&self.purpose, at, f.text.len()))
                })
            });
        if principal {
            return Origin::Principal;
        }
        let s = self.session;
        if forms().any(|f| contains_token(&s.trusted_norm.text, f)) {
            return Origin::Trusted;
        }
        if forms().any(|f| contains_token(&s.untrusted_norm.text, f))
            || (s.untrusted_input && s.untrusted_norm.overflowed)
        {
            return Origin::Untrusted;
        }
        Origin::None
    }

    /// The origin of a found value; a link or an outside address also by its host when the
    /// value itself was seen nowhere (the host is where it leads: `drop+x@evil.example` after
    /// a page named `drop@evil.example`).
    fn origin_found(&self, f: &Found) -> Origin {
        let o = self.origin_of(&f.text, f.canon.as_deref());
        if o == Origin::Principal {
            return o;
        }
        let host = match f.kind {
            Kind::Url => crate::catalog::url_host(&f.text).to_lowercase(),
            Kind::Email => f
                .text
                .rsplit_once('@')
                .map(|(_, h)| h.to_string())
                .unwrap_or_default(),
            _ => return o,
        };
        if host.len() < MIN_VALUE || self.internal(&host) {
            return o;
        }
        // A link or an address at a host the person named (and did not rule out) is what they
        // asked for, wherever the mission read it: "vendor.example's support contacts".
        if host_positions(&self.purpose, &host).any(|at| !negated(&self.purpose, at, host.len())) {
            return Origin::Principal;
        }
        if o != Origin::None {
            return o;
        }
        let s = self.session;
        if contains_host(&s.trusted_norm.text, &host) {
            Origin::Trusted
        } else if contains_host(&s.untrusted_norm.text, &host)
            || (s.untrusted_input && s.untrusted_norm.overflowed)
        {
            Origin::Untrusted
        } else {
            Origin::None
        }
    }
}

/// What [`assess`] judges: one call and the mission it runs under.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The tool's catalog entry.
    pub spec: &'a ToolSpec,
    /// The call's arguments.
    pub args: &'a Value,
    /// Its directing `(argument, value)` pairs, as the catalog resolved them.
    pub directing: &'a [(String, String)],
    /// Whether the call reaches the principal alone (a note to self directs no one else: values
    /// in its text are recorded but not held as untrusted direction).
    pub to_principal_only: bool,
}

/// Where `value` itself was seen, as a whole token of normalised text: the purpose, a trusted
/// output, untrusted content, or nowhere. Unlike [`assess`] nothing is judged by the values or
/// hosts inside it: a link with a path or a query the mission composed is seen nowhere, even at
/// a host the person named.
pub fn origin_as_written(
    cfg: &Config,
    mission: &Mission,
    session: &SessionState,
    value: &str,
) -> Origin {
    let norm = normalize(value.trim());
    let norm = norm.trim();
    if norm.len() < MIN_VALUE {
        return Origin::None;
    }
    sources(cfg, mission, session).origin_of(norm, None)
}

/// What values of a call under `mission` are compared against.
fn sources<'a>(cfg: &'a Config, mission: &'a Mission, session: &'a SessionState) -> Sources<'a> {
    let principal_email = cfg
        .directory
        .user(&mission.principal)
        .and_then(|u| u.email.as_deref())
        .map(str::to_ascii_lowercase);
    Sources {
        purpose: normalize(&mission.purpose),
        principal: &mission.principal,
        principal_email,
        session,
        cfg,
    }
}

/// Where the values directing a call came from: its directing arguments and, for calls that
/// act (any effect but read), the directing values inside its other string arguments.
pub fn assess(
    cfg: &Config,
    call: Call<'_>,
    mission: &Mission,
    session: &SessionState,
) -> Assessment {
    let Call {
        spec,
        args,
        directing,
        to_principal_only,
    } = call;
    let src = sources(cfg, mission, session);
    let mut out = Assessment::default();
    for (arg, v) in directing {
        let v = v.trim();
        if v.len() < MIN_VALUE {
            continue;
        }
        let norm = normalize(v);
        let norm = norm.trim();
        let mut origin = src.origin_of(norm, None);
        if origin == Origin::None {
            // `Name <addr>`, a link with a path: judged by the values inside, and by their
            // hosts.
            let (found, _) = find_values(norm);
            if let Some(o) = found.iter().map(|f| src.origin_found(f)).min() {
                origin = o;
            }
        }
        if origin == Origin::Untrusted && declared(cfg, v) {
            // A channel or group the directory declares is the deployer's word, wherever else
            // its name was read: who reads it is known, and exposure judges what reaches them.
            origin = Origin::Trusted;
        }
        if origin == Origin::Untrusted {
            out.untrusted.push(format!("{arg}={v}"));
        }
        let e = out.provenance.args.entry(arg.clone()).or_insert(origin);
        *e = (*e).min(origin);
    }
    if spec.effect == crate::model::Effect::Read {
        return out;
    }
    let Value::Object(map) = args else {
        return out;
    };
    let budget = cfg.detectors.limits().max_bytes;
    let mut recorded: Vec<(String, Origin)> = Vec::new();
    let mut weakest: Option<Origin> = None;
    let mut more = false;
    for (arg, v) in map {
        if spec.directs.iter().any(|d| d == arg) || spec.is_addressing_arg(arg) {
            continue;
        }
        let mut text = String::new();
        crate::catalog::push_strings(v, &mut text);
        if text.len() > budget {
            more = true;
            text.truncate(floor_boundary(&text, budget));
        }
        let norm = normalize(&text);
        let (found, over) = find_values(&norm);
        more |= over;
        for f in &found {
            if f.text.len() < MIN_VALUE || colleague(cfg, f) {
                continue;
            }
            let o = src.origin_found(f);
            weakest = Some(weakest.map_or(o, |w| w.min(o)));
            // Values from free text are quoted as bounded excerpts: a link can be long.
            let quoted = crate::engine::excerpt(&f.text);
            if o == Origin::Untrusted && !to_principal_only {
                out.untrusted.push(format!("{arg} (in text)={quoted}"));
            }
            if recorded.len() < MAX_VALUES {
                recorded.push((format!("{arg}: {quoted}"), o));
            }
        }
    }
    if more && session.untrusted_input {
        // Values past the bounds were not judged: with untrusted content read, they count as
        // taken from it.
        weakest = Some(Origin::Untrusted);
        if !to_principal_only {
            out.untrusted.push("(text past the scanned bounds)".into());
        }
    }
    recorded.sort_by_key(|(_, o)| *o);
    recorded.truncate(MAX_RECORDED);
    out.provenance.text = weakest;
    out.provenance.text_values = recorded;
    out
}

/// Whether a value in free text names someone the directory knows (a colleague's address or
/// handle): naming a colleague in a message sends nothing to them.
fn colleague(cfg: &Config, f: &Found) -> bool {
    match f.kind {
        Kind::Email => cfg.directory.user_by_email(&f.text).is_some(),
        Kind::Handle => f
            .text
            .strip_prefix('@')
            .is_some_and(|u| cfg.directory.user(u).is_some()),
        _ => false,
    }
}

/// Whether a directing value names a channel or a group the directory declares.
fn declared(cfg: &Config, value: &str) -> bool {
    cfg.directory.has_channel(value) || cfg.directory.has_group(value)
}

/// Whether a record's writer (its `authors.field`, a user id or an address) is a directory user
/// in the `authors.group`.
fn written_by_member(
    record: &serde_json::Map<String, Value>,
    authors: &crate::catalog::Authors,
    dir: &crate::directory::Directory,
) -> bool {
    let Some(writer) = record.get(&authors.field).and_then(Value::as_str) else {
        return false;
    };
    let writer = writer.trim();
    let id = dir.user_by_email(writer).unwrap_or(writer);
    dir.user(id)
        .is_some_and(|u| u.groups.contains(&authors.group))
}

/// The largest char boundary at or below `at`.
fn floor_boundary(s: &str, mut at: usize) -> usize {
    at = at.min(s.len());
    while at > 0 && !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Feed an allowed call's output to the session's provenance text by integrity: untrusted
/// outputs, and the `untrusted_fields` of trusted JSON outputs, to the untrusted text; the rest
/// to the trusted text. A trusted output with `untrusted_fields` that is not JSON is untrusted
/// as a whole (its fields cannot be told apart). The fields of records written by members of
/// the catalog's `authors` group stay trusted. Returns whether untrusted content was read.
pub fn absorb_output(
    spec: &ToolSpec,
    output: &str,
    dir: &crate::directory::Directory,
    session: &mut SessionState,
) -> bool {
    let (untrusted, trusted): (Option<String>, Option<String>) = match spec.output {
        Integrity::Untrusted => (Some(output.to_string()), None),
        Integrity::Trusted if spec.untrusted_fields.is_empty() => (None, Some(output.to_string())),
        Integrity::Trusted => match serde_json::from_str::<Value>(output) {
            Ok(mut v) => {
                let mut taken = String::new();
                let by_member = |m: &serde_json::Map<String, Value>| {
                    spec.authors
                        .as_ref()
                        .is_some_and(|a| written_by_member(m, a, dir))
                };
                crate::catalog::take_fields_unless(
                    &mut v,
                    &spec.untrusted_fields,
                    &by_member,
                    &mut taken,
                );
                let mut rest = String::new();
                crate::catalog::push_strings(&v, &mut rest);
                ((!taken.is_empty()).then_some(taken), Some(rest))
            }
            Err(_) => (Some(output.to_string()), None),
        },
    };
    if let Some(t) = &trusted {
        session.trusted_text.push(t);
        session.trusted_norm.push(&index_text(t));
    }
    match &untrusted {
        Some(u) => {
            session.untrusted_input = true;
            session.untrusted_text.push(u);
            session.untrusted_norm.push(&index_text(u));
            true
        }
        None => false,
    }
}
