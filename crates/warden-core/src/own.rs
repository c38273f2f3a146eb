//! People's own data: sending a person what is only about them exposes nothing.
//!
//! A catalog entry can name the `subject` field of a read's records: the field that says whom
//! each record is about (a user id or an e-mail address the directory knows). When every record
//! of a read names the same person, the labels the read brought in are that person's own data.
//! A label stays someone's own only while every read that brought it in was about that one
//! person: a read about someone else, or a read that does not say, makes it everyone's.
//!
//! When a call reaches that person, they are not exposed to their own data: the exposure of
//! the call counts them only for the labels that are not theirs. Everyone else the call reaches
//! counts as always. Secrets are never anyone's own: a credential is not personal data.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::directory::{Audience, Directory};
use crate::model::{Exposure, Label};
use crate::session::SessionState;

/// The label that is never a person's own.
const SECRET: &str = "secret";

/// The most records of one output read for their subject; past it the read has no single subject.
const MAX_RECORDS: usize = 10_000;

/// The one directory user every record of `output` names in `field`, or `None` when the output
/// is not JSON records, a record does not name a known user, or records name different people.
pub fn subject_of(output: &str, field: &str, directory: &Directory) -> Option<String> {
    let value: Value = serde_json::from_str(output).ok()?;
    let records: Vec<&Value> = match &value {
        Value::Array(a) => a.iter().collect(),
        Value::Object(m) if m.contains_key(field) => vec![&value],
        // The records of a result object: its first list of objects (a list of names beside
        // them, such as the fields asked for, is not the records).
        Value::Object(m) => m
            .values()
            .filter_map(Value::as_array)
            .find(|a| a.first().is_some_and(Value::is_object))?
            .iter()
            .collect(),
        _ => return None,
    };
    if records.is_empty() || records.len() > MAX_RECORDS {
        return None;
    }
    let mut subject: Option<&str> = None;
    for r in records {
        let named = r.get(field)?.as_str()?.trim();
        let user = if named.contains('@') {
            directory.user_by_email(named)?
        } else {
            directory.user(named).map(|_| named)?
        };
        match subject {
            None => subject = Some(user),
            Some(s) if s == user => {}
            Some(_) => return None,
        }
    }
    subject.map(str::to_owned)
}

/// Record whose data a read brought `labels` in as: `subject` when the read is about one person.
/// `new_labels` are the labels this read added to the taint for the first time; a label the taint
/// held before keeps its owner only if this read is about the same person.
pub fn note_subject<'a>(
    session: &mut SessionState,
    labels: impl IntoIterator<Item = &'a str>,
    subject: Option<&str>,
) {
    for l in labels {
        let had = session.taint.contains_key(l);
        let owner = match (session.label_subjects.get(l), had) {
            // Held before, brought in by a read about someone: still theirs if this one is too.
            (Some(Some(prev)), true) => subject.filter(|s| *s == prev.as_str()).map(str::to_owned),
            // Held before with no single owner (or before owners were recorded): no one's.
            (_, true) => None,
            (_, false) => subject.map(str::to_owned),
        };
        session.label_subjects.insert(Label::from(l), owner);
    }
}

/// The labels of `labels` that are `user`'s own data in the session (never `secret`).
fn own_labels<'a>(
    session: &SessionState,
    labels: &'a BTreeSet<Label>,
    user: &str,
) -> BTreeSet<&'a Label> {
    labels
        .iter()
        .filter(|l| &***l != SECRET)
        .filter(|l| {
            session
                .label_subjects
                .get(&***l)
                .is_some_and(|o| o.as_deref() == Some(user))
        })
        .collect()
}

/// The exposure of `audience` to `labels`, where each person the audience names is not counted
/// for the labels that are their own data.
pub fn exposure(
    directory: &Directory,
    audience: &Audience,
    labels: &BTreeSet<Label>,
    session: &SessionState,
) -> Exposure {
    if session.label_subjects.values().all(Option::is_none) {
        return directory.exposure(audience, labels);
    }
    let owners: Vec<(&String, BTreeSet<&Label>)> = audience
        .users
        .iter()
        .map(|u| (u, own_labels(session, labels, u)))
        .filter(|(_, own)| !own.is_empty())
        .collect();
    if owners.is_empty() {
        return directory.exposure(audience, labels);
    }
    let mut rest = audience.clone();
    rest.users.retain(|u| !owners.iter().any(|(o, _)| *o == u));
    let mut exp = directory.exposure(&rest, labels);
    for (user, own) in owners {
        let theirs: BTreeSet<Label> = labels
            .iter()
            .filter(|l| !own.contains(l))
            .cloned()
            .collect();
        let one = Audience {
            users: vec![user.clone()],
            ..Audience::default()
        };
        exp.add(directory.exposure(&one, &theirs));
    }
    exp
}
