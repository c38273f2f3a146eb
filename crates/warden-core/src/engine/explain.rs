//! The texts people see: bounded excerpts of what the agent wrote, times, numbers, and the
//! plain-language account of what flows where.

use cedar_policy::EntityUid;

use crate::catalog::Resolved;
use crate::model::{Exposure, FlowFacts, LabelSource};

/// The most characters of a value from the call's arguments an explanation quotes.
const EXCERPT_CHARS: usize = 64;

/// Push `value` (text from the call, untrusted) as a bounded excerpt: at most
/// [`EXCERPT_CHARS`] characters, control and invisible characters escaped, `…` when cut.
fn push_excerpt(out: &mut String, value: &str) {
    for (i, c) in value.chars().enumerate() {
        if i == EXCERPT_CHARS {
            out.push('…');
            return;
        }
        if c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
        {
            let _ = std::fmt::Write::write_fmt(out, format_args!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
}

/// `value` as a bounded excerpt (see [`push_excerpt`]).
pub(crate) fn excerpt(value: &str) -> String {
    let mut out = String::new();
    push_excerpt(&mut out, value);
    out
}

/// `HH:MM:SS` (UTC) of a time in ms since the Unix epoch.
pub fn clock_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Group digits in thousands: `12000` → `12,000`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One line describing a decision's exposure, when anyone is exposed: "2,999 of 3,000 people in
/// the audience are not cleared for security-sensitive, user-data".
pub fn exposure_line(d: &crate::model::Decision) -> Option<String> {
    let x = d.exposure.as_ref().filter(|x| x.count > 0)?;
    let labels = x.labels.iter().cloned().collect::<Vec<_>>().join(", ");
    Some(format!(
        "{} of {} people in the audience are not cleared for {}",
        thousands(x.count),
        thousands(x.audience),
        labels
    ))
}

/// The text an agent (or anyone on any surface) reads for a call that was not allowed: held for
/// approval or denied, the first reason, the decision id, and the exposure.
pub fn refusal_text(d: &crate::model::Decision) -> String {
    let mut text = match d.decision {
        crate::model::Outcome::Ask => format!(
            "Warden held `{}`: approval required: {} (decision {})",
            d.tool,
            d.summary(),
            d.id
        ),
        _ => format!(
            "Warden denied `{}`: {} (decision {})",
            d.tool,
            d.summary(),
            d.id
        ),
    };
    if let Some(x) = exposure_line(d) {
        text.push_str("\nexposure: ");
        text.push_str(&x);
    }
    if let (crate::model::Outcome::Ask, Some(id)) = (d.decision, &d.approval) {
        text.push_str(&format!(
            "\napproval request: {id} (an approver runs `warden approvals approve {id}`; the identical call goes through once after it is approved)"
        ));
    }
    text
}

/// The most labels an explanation names in one list; the rest are counted ("and 91 more").
/// The decision's `exposure.labels` and `flow.sources` keep every one.
const EXPLAIN_LABELS: usize = 8;
/// The most sources an explanation names; the rest are counted.
const EXPLAIN_SOURCES: usize = 4;

/// Plain-language account of what flows where, for decisions that are not allowed:
/// "2,999 of 3,000 in the audience (channel eng-help) are not cleared for security-sensitive,
/// user-data — security-sensitive from logs.query_logs (call 2, 09:00:02 UTC) …". A long
/// session's labels are named up to [`EXPLAIN_LABELS`] and their sources up to
/// [`EXPLAIN_SOURCES`]: an approver reads the first few, the decision record holds them all.
pub(super) fn explain_flow(
    f: &FlowFacts,
    exposure: Option<&Exposure>,
    resolved: &Resolved,
) -> Option<String> {
    use std::fmt::Write as _;
    // Written into one buffer: an exposure can name a hundred labels and a few dozen sources.
    let mut text = String::new();
    if let Some(x) = exposure.filter(|x| x.count > 0) {
        text.reserve(256);
        let _ = write!(
            text,
            "{} of {} in the audience (",
            thousands(x.count),
            thousands(x.audience)
        );
        let mut first = true;
        let mut sep = |text: &mut String| {
            if !std::mem::take(&mut first) {
                text.push_str(", ");
            }
        };
        if let Some(a) = &resolved.audience {
            for c in &a.channels {
                sep(&mut text);
                text.push_str("channel ");
                text.push_str(c);
            }
            for g in &a.groups {
                sep(&mut text);
                text.push_str("group ");
                text.push_str(g);
            }
            for name in &a.users {
                sep(&mut text);
                push_excerpt(&mut text, name);
            }
            for name in &a.external {
                sep(&mut text);
                push_excerpt(&mut text, name);
                text.push_str(" (outside the organisation)");
            }
            for name in &a.unknown {
                sep(&mut text);
                push_excerpt(&mut text, name);
                text.push_str(" (not in the directory)");
            }
        }
        // The readers of a place written (a public one: its readers are named as the public).
        if let Some(place) = resolved
            .audience
            .as_ref()
            .and_then(|a| a.place.as_ref())
            .filter(|p| !p.iter().any(|l| l == crate::entity::PUBLIC))
        {
            sep(&mut text);
            text.push_str("readers of ");
            push_excerpt(&mut text, &resolved.resource_id);
            if !place.is_empty() {
                text.push_str(" (cleared for ");
                push_joined(&mut text, place.iter().map(String::as_str), ", ");
                text.push(')');
            }
        }
        // Hosts the call's links reach (see `crate::links`).
        for name in x.sample.iter().filter(|n| n.contains(" (a link in `")) {
            sep(&mut text);
            text.push_str(name);
        }
        text.push_str(") are not cleared for ");
        push_listed(&mut text, x.labels.iter().map(|l| &**l), x.labels.len());
        // Grouped by (source, call), in order of first appearance. A decision carries at most
        // `MAX_SOURCES` sources from the session plus a few from its arguments and resource, so
        // a linear search over the groups is cheaper than an index.
        let mut groups: Vec<(&LabelSource, Vec<&str>)> = Vec::new();
        for src in f.sources.iter().filter(|s| x.labels.contains(&s.label)) {
            match groups
                .iter_mut()
                .find(|g| g.0.call == src.call && g.0.source == src.source)
            {
                Some(g) => g.1.push(&src.label),
                None => groups.push((src, vec![&src.label])),
            }
        }
        for (i, (src, labels)) in groups.iter().take(EXPLAIN_SOURCES).enumerate() {
            text.push_str(if i == 0 { ": " } else { "; " });
            push_listed(&mut text, labels.iter().copied(), labels.len());
            let _ = write!(text, " from {} (call {}, ", src.source, src.call);
            push_clock_time(&mut text, src.at_ms);
            text.push_str(" UTC");
            if let Some(session) = &src.session {
                let _ = write!(text, ", in session {session}");
            }
            text.push(')');
        }
        if groups.len() > EXPLAIN_SOURCES {
            let _ = write!(
                text,
                "; and {} more sources",
                groups.len() - EXPLAIN_SOURCES
            );
        }
    }
    if !f.untrusted_direction.is_empty() {
        if !text.is_empty() {
            text.push_str(". ");
        }
        text.push_str("taken from untrusted content only: ");
        for (i, d) in f.untrusted_direction.iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            push_excerpt(&mut text, d);
        }
    }
    f.provenance.explain(&mut text);
    (!text.is_empty()).then_some(text)
}

/// Append the first [`EXPLAIN_LABELS`] of `len` items, separated by commas, then how many
/// were left out.
fn push_listed<'a>(out: &mut String, items: impl Iterator<Item = &'a str>, len: usize) {
    push_joined(out, items.take(EXPLAIN_LABELS), ", ");
    if len > EXPLAIN_LABELS {
        use std::fmt::Write as _;
        let _ = write!(out, " and {} more", len - EXPLAIN_LABELS);
    }
}

/// Append the items, separated by `sep`.
fn push_joined<'a>(out: &mut String, items: impl Iterator<Item = &'a str>, sep: &str) {
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(item);
    }
}

/// Append `HH:MM:SS` (UTC), as [`clock_time`] writes it.
fn push_clock_time(out: &mut String, ms: i64) {
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    for (i, n) in [secs / 3600, (secs / 60) % 60, secs % 60]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            out.push(':');
        }
        // Each part is below 100.
        out.push(char::from(b'0' + (n / 10) as u8));
        out.push(char::from(b'0' + (n % 10) as u8));
    }
}

/// `Type::"id"`, as `EntityUid`'s `Display` writes it, without its per-character escaping
/// when the id has nothing to escape.
pub(super) fn uid_text(ty: &str, id: &str, uid: &EntityUid) -> String {
    let plain = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:/@+=, ".contains(&b));
    if plain && crate::entity::RESOURCE_TYPES.contains(&ty) {
        format!("{ty}::\"{id}\"")
    } else {
        uid.to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::directory::Audience;
    use crate::entity::uid;
    use crate::model::Label;

    #[test]
    fn a_long_flow_is_explained_by_its_first_labels_and_sources() {
        // Twenty labels from ten reads (two per read) reach an audience not cleared for them.
        let labels: BTreeSet<Label> = (0..20).map(|i| Label::from(format!("l{i:02}"))).collect();
        let f = FlowFacts {
            labels: labels.clone(),
            sources: labels
                .iter()
                .enumerate()
                .map(|(i, l)| LabelSource {
                    label: l.clone(),
                    source: "forum.read_thread".into(),
                    call: i as u64 / 2 + 1,
                    at_ms: 0,
                    // The first read was made by another session of the mission.
                    session: (i < 2).then(|| "3f9a0c1d".into()),
                })
                .collect(),
            ..FlowFacts::default()
        };
        let x = Exposure {
            audience: 3_000,
            count: 2_999,
            labels,
            ..Exposure::default()
        };
        let resolved = Resolved {
            resource_type: "Channel".into(),
            resource_id: "eng-help".into(),
            labels: BTreeSet::new(),
            audience: Some(Audience {
                channels: vec!["eng-help".into()],
                ..Audience::default()
            }),
            acts_as: None,
            directing: Vec::new(),
        };
        let text = explain_flow(&f, Some(&x), &resolved).unwrap_or_default();
        assert!(
            text.starts_with(
                "2,999 of 3,000 in the audience (channel eng-help) are not cleared for \
                 l00, l01, l02, l03, l04, l05, l06, l07 and 12 more: l00, l01 from \
                 forum.read_thread (call 1, 00:00:00 UTC, in session 3f9a0c1d); l02, l03 from"
            ),
            "{text}"
        );
        assert!(!text.contains("l08"), "{text}");
        assert!(
            text.ends_with(
                "l06, l07 from forum.read_thread (call 4, 00:00:00 UTC); and 6 more sources"
            ),
            "{text}"
        );
    }

    #[test]
    fn push_clock_time_matches_clock_time() {
        for ms in [
            0,
            999,
            1_000,
            59_999,
            3_599_999,
            86_399_999,
            86_400_000,
            -1,
            -86_400_001,
        ]
        .into_iter()
        .chain((0..2_000).map(|i| 1_768_478_400_000 + i * 43_211))
        {
            let mut s = String::from("x");
            push_clock_time(&mut s, ms);
            assert_eq!(s, format!("x{}", clock_time(ms)), "{ms}");
        }
    }

    #[test]
    fn uid_text_matches_cedar_display() {
        for (ty, id) in [
            ("Channel", "eng-help"),
            ("Dataset", "logs:auth"),
            ("File", "docs/public/faq.md"),
            ("Mailbox", "mallory@evil.example, bob@acme.example"),
            ("File", "we\"ird\\path\n"),
            ("Url", "https://x.example/a?b=c"),
            ("File", "ünïcode"),
        ] {
            let u = uid(ty, id);
            assert_eq!(uid_text(ty, id, &u), u.to_string(), "{ty} {id}");
        }
    }
}
