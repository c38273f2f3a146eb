//! Fewer needless holds: label rules that keep ordinary work from asking a person.
//!
//! - **Public text stays public.** Text read from a public source (a read whose resource is
//!   labelled [`PUBLIC`], such as a fetched web page) keeps that label: a detector finding
//!   contact details in it (`pii`) does not make it personal data. Secrets are the exception: a
//!   key on a public page is still a secret. This is about labels only; a recipient taken from
//!   such a page is still checked for where it came from. The same kind of finding in a later
//!   call's arguments (a phone number, addresses) is read as that public text.
//! - **A team's own thread.** Untrusted text read from one channel is written by that channel's
//!   members (the directory's readers of a channel are the people who post in it). A call that
//!   publishes back into that same channel, and nowhere else, reaches only those members: what
//!   their thread asks for, they could do themselves, so it is not untrusted input to them for
//!   the rule of two. Exposure is checked as always: the members must be cleared for everything
//!   the session holds, or the call is held for that.

use std::collections::BTreeSet;

use crate::catalog::{AudienceRule, Resolved, ToolSpec};
use crate::detect::{Finding, Scan};
use crate::directory::{CHANNEL_LABEL_PREFIX, PUBLIC};
use crate::engine::content_labels;
use crate::session::SessionState;

/// The label that stays on public text whatever detectors find.
pub const SECRET: &str = "secret";

/// Whether a detector label found in a read's output is kept, given the read's resource labels.
pub fn keeps_detector_label(label: &str, resource_labels: &BTreeSet<String>) -> bool {
    label == SECRET || !resource_labels.contains(PUBLIC)
}

/// The most detector kinds a session remembers as found in public text.
pub const MAX_PUBLIC_FINDINGS: usize = 64;

fn finding_key(f: &Finding) -> String {
    format!("{}/{}", f.label, f.detector)
}

/// Remember which detectors found what in public text (their labels were not kept), so that
/// the same kind of finding in a later call's arguments is read as that public text.
pub fn note_public_findings(
    session: &mut SessionState,
    scan: &Scan,
    resource_labels: &BTreeSet<String>,
) {
    for f in &scan.findings {
        if keeps_detector_label(&f.label, resource_labels) {
            continue;
        }
        if session.public_findings.len() >= MAX_PUBLIC_FINDINGS {
            return;
        }
        session.public_findings.insert(finding_key(f));
    }
}

/// The labels a call's arguments carry (see [`content_labels`]), less those whose every finding
/// is of a kind the session found only in public text. Secrets always count; so does everything
/// when findings were capped.
pub fn argument_labels(
    scan: &Scan,
    max_findings: usize,
    session: &SessionState,
) -> BTreeSet<String> {
    let mut labels = content_labels(scan, max_findings);
    if session.public_findings.is_empty() || scan.findings.len() >= max_findings {
        return labels;
    }
    labels.retain(|l| {
        l == SECRET
            || scan
                .findings
                .iter()
                .any(|f| f.label == *l && !session.public_findings.contains(&finding_key(f)))
            || !scan.findings.iter().any(|f| f.label == *l)
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
