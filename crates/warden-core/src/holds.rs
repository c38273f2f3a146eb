//! Fewer needless holds: label rules that keep ordinary work from asking a person.
//!
//! - **Public text stays public.** Text read from a public source (a read whose resource is
//!   labelled [`PUBLIC`], such as a fetched web page) keeps that label: a detector finding
//!   contact details in it (`pii`) does not make it personal data. Secrets are the exception: a
//!   key on a public page is still a secret. This is about labels only; a recipient taken from
//!   such a page is still checked for where it came from. The same values (a phone number,
//!   addresses) in a later call's arguments are read as that public text.
//! - **A team's own thread.** Untrusted text read from one channel is written by that channel's
//!   members (the directory's readers of a channel are the people who post in it). A call that
//!   publishes back into that same channel, and nowhere else, reaches only those members: what
//!   their thread asks for, they could do themselves, so it is not untrusted input to them for
//!   the rule of two. Exposure is checked as always: the members must be cleared for everything
//!   the session holds, or the call is held for that.

use std::collections::BTreeSet;

use crate::catalog::{AudienceRule, Resolved, ToolSpec};
use crate::detect::{Finding, Scan};
use crate::engine::content_labels;
use crate::entity::{CHANNEL_LABEL_PREFIX, PUBLIC};
use crate::session::SessionState;

/// The label that stays on public text whatever detectors find.
pub const SECRET: &str = "secret";

/// Whether a detector label found in a read's output is kept, given the read's resource labels.
pub fn keeps_detector_label(label: &str, resource_labels: &BTreeSet<String>) -> bool {
    label == SECRET || !resource_labels.contains(PUBLIC)
}

/// The shortest value (characters) read back from public text.
pub const MIN_PUBLIC_VALUE: usize = 6;
/// The longest value (characters) read at a finding.
const MAX_VALUE: usize = 96;

/// Remember public text whose detector labels were not kept, so that the same values in a later
/// call's arguments are read as that public text.
pub fn note_public_text(
    session: &mut SessionState,
    output: &str,
    dropped_any: bool,
    resource_labels: &BTreeSet<String>,
) {
    if dropped_any && resource_labels.contains(PUBLIC) {
        session.public_text.push(output);
    }
}

/// The value a finding points at in `text`: from its offset, letters, digits and `@.+-_()`, and
/// spaces followed by a digit or `(` (a phone or card number), trailing `.`/`-` dropped. `None`
/// when the finding was in decoded text, the offset is not in `text`, or the value is short.
pub fn value_at<'t>(text: &'t str, f: &Finding) -> Option<&'t str> {
    if f.encoding.is_some() {
        return None;
    }
    let rest = text.get(f.offset..)?;
    let mut end = 0;
    let mut chars = rest.char_indices().peekable();
    let mut n = 0;
    while let Some((i, c)) = chars.next() {
        let ok = c.is_alphanumeric()
            || "@.+-_()".contains(c)
            || (c == ' '
                && chars
                    .peek()
                    .is_some_and(|(_, d)| d.is_ascii_digit() || *d == '('));
        if !ok || n == MAX_VALUE {
            break;
        }
        n += 1;
        end = i + c.len_utf8();
    }
    let v = rest[..end].trim_end_matches(['.', '-']);
    (v.chars().count() >= MIN_PUBLIC_VALUE).then_some(v)
}

/// The labels a call's arguments carry (see [`content_labels`]), less those whose every finding
/// is a value the session read in public text (`text` is what was scanned). Secrets always
/// count; so does everything when findings were capped.
pub fn argument_labels(
    scan: &Scan,
    text: &str,
    max_findings: usize,
    session: &SessionState,
) -> BTreeSet<String> {
    let mut labels = content_labels(scan, max_findings);
    let public = &session.public_text;
    if public.text.is_empty() || scan.findings.len() >= max_findings {
        return labels;
    }
    // The kept public text is lowercased.
    let public_value =
        |f: &Finding| value_at(text, f).is_some_and(|v| public.text.contains(&v.to_lowercase()));
    labels.retain(|l| {
        l == SECRET
            || !scan.findings.iter().any(|f| f.label == *l)
            || scan
                .findings
                .iter()
                .any(|f| f.label == *l && !public_value(f))
    });
    labels
}

/// The one channel a read's resource labels name, if exactly one.
pub fn channel_of(resource_labels: &BTreeSet<String>) -> Option<&str> {
    let mut it = resource_labels
        .iter()
        .filter_map(|l| l.strip_prefix(CHANNEL_LABEL_PREFIX));
    let first = it.next()?;
    it.next().is_none().then_some(first)
}

/// Record where an untrusted output came from: one channel, or somewhere else.
pub fn note_untrusted(session: &mut SessionState, resource_labels: &BTreeSet<String>) {
    match channel_of(resource_labels) {
        Some(c) if session.untrusted_places.len() < MAX_PLACES => {
            session.untrusted_places.insert(c.to_string());
        }
        _ => session.untrusted_elsewhere = true,
    }
}

/// The most channels a session remembers untrusted text from; past that, it is from elsewhere.
pub const MAX_PLACES: usize = 16;

/// Whether the session's untrusted input counts for a call: not when all of it came from the
/// one channel the call publishes to, and only to.
pub fn untrusted_counts(session: &SessionState, spec: &ToolSpec, resolved: &Resolved) -> bool {
    if !session.untrusted_input {
        return false;
    }
    if session.untrusted_elsewhere || session.untrusted_places.len() != 1 {
        return true;
    }
    let only_channel = !spec.audience.is_empty()
        && spec
            .audience
            .iter()
            .all(|r| matches!(r, AudienceRule::Channel(_)))
        && resolved.resource_type == "Channel";
    let same = session.untrusted_places.contains(&resolved.resource_id);
    let audience_inside = resolved.audience.as_ref().is_some_and(|a| {
        a.external.is_empty()
            && a.unknown.is_empty()
            && a.groups.is_empty()
            && a.users.is_empty()
            && a.place.is_none()
            && a.channels.iter().all(|c| *c == resolved.resource_id)
    });
    !(only_channel && same && audience_inside)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(xs: &[&str]) -> BTreeSet<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn public_reads_keep_only_secret_detector_labels() {
        let public = set(&["public"]);
        assert!(!keeps_detector_label("pii", &public));
        assert!(keeps_detector_label("secret", &public));
        assert!(keeps_detector_label("pii", &set(&["internal"])));
        assert!(keeps_detector_label("pii", &set(&[])));
    }

    fn finding(offset: usize) -> Finding {
        Finding {
            detector: "d".into(),
            label: "pii".into(),
            offset,
            encoding: None,
            excerpt: String::new(),
        }
    }

    #[test]
    fn a_value_is_read_whole_at_its_finding() {
        let t = "call +1 415 555 0142 and mail support@vendor.example, thanks.";
        assert_eq!(value_at(t, &finding(5)), Some("+1 415 555 0142"));
        assert_eq!(value_at(t, &finding(30)), Some("support@vendor.example"));
        assert_eq!(value_at(t, &finding(t.len())), None);
        assert_eq!(value_at(t, &finding(1000)), None);
        assert_eq!(value_at("a b", &finding(0)), None);
        let mut f = finding(5);
        f.encoding = Some("base64".into());
        assert_eq!(value_at(t, &f), None);
    }

    #[test]
    fn a_read_names_a_channel_only_when_it_names_one() {
        assert_eq!(channel_of(&set(&["channel:eng", "internal"])), Some("eng"));
        assert_eq!(channel_of(&set(&["channel:eng", "channel:ops"])), None);
        assert_eq!(channel_of(&set(&["public"])), None);
        let mut s = SessionState::default();
        note_untrusted(&mut s, &set(&["public"]));
        assert!(s.untrusted_elsewhere);
    }
}
