//! The directory: users, groups, channels and their attributes, in Cedar's entity JSON format.
//!
//! Loaded once and shared. Besides the Cedar [`Entities`] used for policy evaluation, it keeps an
//! index for information flow: every user's *effective clearances* (declared clearances, plus
//! `channel:<name>` for every channel the user can read, plus `public`), interned into a few
//! distinct *profiles*, and for every group and channel the count of members per profile. The
//! exposure of a publish to a 12,000-member audience is then a sum over a handful of profiles,
//! not a walk over 12,000 people.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cedar_policy::{Entities, EntityUid, Schema};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::entity::uid;
pub use crate::entity::{CHANNEL_LABEL_PREFIX, PUBLIC};
use crate::error::Issues;
use crate::model::{Exposure, Label};

/// How many exposed names a decision reports.
pub const EXPOSURE_SAMPLE: usize = 5;

/// The most members `[[directory.generate]]` rules may make together: a directory of a million
/// people loads in seconds; a mistyped count of billions would never load.
pub const MAX_GENERATED_MEMBERS: u64 = 1_000_000;

/// Rules for generating directory members, so that audiences have real sizes without a huge file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GeneratedMembers {
    /// Id prefix; members are `<prefix>00001`, `<prefix>00002`, …
    pub prefix: String,
    /// How many.
    pub count: u32,
    /// Groups every generated member belongs to.
    pub groups: Vec<String>,
    /// Clearances every generated member has.
    #[serde(default)]
    pub clearances: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RawUid {
    #[serde(rename = "type")]
    ty: String,
    id: String,
}

#[derive(Debug, Deserialize)]
struct RawEntity {
    uid: RawUid,
    #[serde(default)]
    attrs: serde_json::Map<String, Value>,
    #[serde(default)]
    parents: Vec<RawUid>,
}

/// One person in the directory.
#[derive(Debug, Clone)]
pub struct User {
    /// Directory id (`alice`).
    pub id: String,
    /// Email address, if any.
    pub email: Option<String>,
    /// Every group the user is in, transitively.
    pub groups: BTreeSet<String>,
    profile: usize,
}

/// Per-audience counts of members by clearance profile.
#[derive(Debug, Clone, Default)]
struct AudienceIndex {
    total: u64,
    /// (profile, count, first few member ids)
    by_profile: Vec<(usize, u64, Vec<String>)>,
}

/// The index of every user in the directory.
const EVERYONE: &str = "everyone";

/// A resolved audience: who a call would reach.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Audience {
    /// Channels whose readers are reached.
    pub channels: Vec<String>,
    /// Groups whose members are reached.
    pub groups: Vec<String>,
    /// Individual users reached.
    pub users: Vec<String>,
    /// Addresses outside the organisation (cleared for `public` only).
    pub external: Vec<String>,
    /// Recipients named that the directory does not know (treated as external).
    pub unknown: Vec<String>,
    /// The readers of a place the call writes: everyone in the directory cleared for every one
    /// of these labels (`public` and reader-set labels are not asked for).
    pub place: Option<Vec<String>>,
}

impl Audience {
    /// True when the audience is exactly the given user (or empty).
    pub fn only(&self, user: &str) -> bool {
        self.channels.is_empty()
            && self.groups.is_empty()
            && self.external.is_empty()
            && self.unknown.is_empty()
            && self.place.is_none()
            && self.users.iter().all(|u| u == user)
    }
}

/// The loaded directory.
#[derive(Debug)]
pub struct Directory {
    entities: Entities,
    users: HashMap<String, User>,
    groups: BTreeMap<String, Vec<String>>,
    group_parents: HashMap<String, BTreeSet<String>>,
    channels: BTreeMap<String, Vec<String>>,
    profiles: Vec<BTreeSet<String>>,
    /// Every label some profile is cleared for, numbered; the bitsets below index into it.
    label_ids: HashMap<String, usize, foldhash::fast::RandomState>,
    label_names: Vec<String>,
    /// Per profile, the labels it is cleared for as a bitset over `label_ids`.
    profile_bits: Vec<Bits>,
    emails: HashMap<String, String>,
    internal_domains: Vec<String>,
    indexes: HashMap<String, AudienceIndex>,
}

/// Where the directory comes from.
#[derive(Debug, Clone, Default)]
pub struct DirectorySource {
    /// The file name (for error messages).
    pub file: String,
    /// Cedar entity JSON (an array of entities).
    pub json: String,
    /// Generated members.
    pub generated: Vec<GeneratedMembers>,
    /// Email domains that belong to the organisation.
    pub internal_domains: Vec<String>,
    /// Agents, added as `Agent` entities.
    pub agents: Vec<String>,
}

impl Directory {
    /// Load and index the directory. `known_labels` are the confidentiality labels in use;
    /// `schema` validates the entities.
    pub fn load(
        src: &DirectorySource,
        known_labels: &BTreeSet<String>,
        schema: &Schema,
        issues: &mut Issues,
    ) -> Option<Directory> {
        let raw: Vec<RawEntity> = match serde_json::from_str(&src.json) {
            Ok(v) => v,
            Err(e) => {
                issues.push(
                    &src.file,
                    Some(e.line()),
                    format!("invalid entity JSON: {e}"),
                );
                return None;
            }
        };
        let mut declared_clearances: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut user_groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut emails = HashMap::new();
        let mut emails_of = HashMap::new();
        let mut group_parents: HashMap<String, BTreeSet<String>> = HashMap::new();
        let mut channels: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut others: Vec<Value> = Vec::new();

        for (i, e) in raw.iter().enumerate() {
            let parents: BTreeSet<String> = e
                .parents
                .iter()
                .filter(|p| p.ty == "Group")
                .map(|p| p.id.clone())
                .collect();
            match e.uid.ty.as_str() {
                "User" => {
                    let clear: BTreeSet<String> = e
                        .attrs
                        .get("clearances")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(String::from)
                                .collect()
                        })
                        .unwrap_or_default();
                    for c in &clear {
                        if !known_labels.contains(c) {
                            issues.push(
                                &src.file,
                                None,
                                format!(
                                    "entity #{i} `User::\"{}\"`: unknown clearance `{c}`",
                                    e.uid.id
                                ),
                            );
                        }
                    }
                    if let Some(mail) = e.attrs.get("email").and_then(Value::as_str) {
                        emails.insert(mail.to_ascii_lowercase(), e.uid.id.clone());
                        emails_of.insert(e.uid.id.clone(), mail.to_string());
                    }
                    declared_clearances.insert(e.uid.id.clone(), clear);
                    user_groups.insert(e.uid.id.clone(), parents);
                }
                "Group" => {
                    group_parents
                        .entry(e.uid.id.clone())
                        .or_default()
                        .extend(parents);
                }
                "Channel" => {
                    let readers: Vec<String> = e
                        .attrs
                        .get("readers")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|r| {
                                    r.get("__entity")
                                        .unwrap_or(r)
                                        .get("id")
                                        .and_then(Value::as_str)
                                        .map(String::from)
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    if readers.is_empty() {
                        issues.push(
                            &src.file,
                            None,
                            format!(
                                "`Channel::\"{}\"` has no `readers`: say which groups can read it",
                                e.uid.id
                            ),
                        );
                    }
                    channels.insert(e.uid.id.clone(), readers);
                    others.push(raw_entity_json(e));
                }
                _ => others.push(raw_entity_json(e)),
            }
        }
        let asked: u64 = src.generated.iter().map(|g| u64::from(g.count)).sum();
        let generated: &[GeneratedMembers] = if asked > MAX_GENERATED_MEMBERS {
            issues.push(
                &src.file,
                None,
                format!(
                    "`[[directory.generate]]` asks for {asked} members; at most {MAX_GENERATED_MEMBERS} can be generated"
                ),
            );
            &[]
        } else {
            &src.generated
        };
        for g in generated {
            for c in &g.clearances {
                if !known_labels.contains(c) {
                    issues.push(
                        &src.file,
                        None,
                        format!("generated `{}`: unknown clearance `{c}`", g.prefix),
                    );
                }
            }
            for n in 1..=g.count {
                let id = format!("{}{:05}", g.prefix, n);
                declared_clearances.insert(id.clone(), g.clearances.iter().cloned().collect());
                user_groups.insert(id.clone(), g.groups.iter().cloned().collect());
            }
        }
        // Every group named anywhere exists.
        for gs in user_groups.values() {
            for g in gs {
                group_parents.entry(g.clone()).or_default();
            }
        }
        for readers in channels.values() {
            for g in readers {
                if !group_parents.contains_key(g) {
                    issues.push(
                        &src.file,
                        None,
                        format!("channel readers name unknown group `{g}`"),
                    );
                }
            }
        }

        // Transitive groups per user.
        let closure = |start: &BTreeSet<String>| -> BTreeSet<String> {
            let mut out = BTreeSet::new();
            let mut stack: Vec<String> = start.iter().cloned().collect();
            while let Some(g) = stack.pop() {
                if out.insert(g.clone()) {
                    if let Some(ps) = group_parents.get(&g) {
                        stack.extend(ps.iter().cloned());
                    }
                }
            }
            out
        };

        let mut profiles: Vec<BTreeSet<String>> = Vec::new();
        let mut profile_ids: HashMap<BTreeSet<String>, usize> = HashMap::new();
        let mut users = HashMap::new();
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for g in group_parents.keys() {
            groups.entry(g.clone()).or_default();
        }
        let mut cedar_users = Vec::with_capacity(user_groups.len());
        for (id, direct) in &user_groups {
            let all = closure(direct);
            let mut eff: BTreeSet<String> =
                declared_clearances.get(id).cloned().unwrap_or_default();
            eff.insert(PUBLIC.to_string());
            for (ch, readers) in &channels {
                if readers.iter().any(|r| all.contains(r)) {
                    eff.insert(format!("{CHANNEL_LABEL_PREFIX}{ch}"));
                }
            }
            let next = profiles.len();
            let pid = *profile_ids.entry(eff.clone()).or_insert(next);
            if pid == next {
                profiles.push(eff.clone());
            }
            for g in &all {
                groups.entry(g.clone()).or_default().push(id.clone());
            }
            let email = emails_of.get(id).cloned();
            cedar_users.push(json!({
                "uid": {"type": "User", "id": id},
                "attrs": {
                    "clearances": eff.iter().collect::<Vec<_>>(),
                    "email": email.clone().unwrap_or_default(),
                },
                "parents": direct.iter().map(|g| json!({"type": "Group", "id": g})).collect::<Vec<_>>(),
            }));
            users.insert(
                id.clone(),
                User {
                    id: id.clone(),
                    email,
                    groups: all,
                    profile: pid,
                },
            );
        }
        let mut all_json = cedar_users;
        for (g, ps) in &group_parents {
            all_json.push(json!({
                "uid": {"type": "Group", "id": g},
                "attrs": {},
                "parents": ps.iter().map(|p| json!({"type": "Group", "id": p})).collect::<Vec<_>>(),
            }));
        }
        for a in &src.agents {
            all_json.push(json!({"uid": {"type": "Agent", "id": a}, "attrs": {}, "parents": []}));
        }
        all_json.extend(others);
        let entities = match Entities::from_json_value(Value::Array(all_json), Some(schema)) {
            Ok(e) => e,
            Err(e) => {
                issues.push(
                    &src.file,
                    None,
                    format!("entities do not match the schema: {e}"),
                );
                return None;
            }
        };

        let mut label_names: Vec<String> = profiles
            .iter()
            .flatten()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        label_names.shrink_to_fit();
        let label_ids: HashMap<String, usize, foldhash::fast::RandomState> = label_names
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), i))
            .collect();
        let profile_bits = profiles
            .iter()
            .map(|p| {
                let mut b = Bits::new(label_names.len());
                for l in p {
                    if let Some(i) = label_ids.get(l) {
                        b.set(*i);
                    }
                }
                b
            })
            .collect();
        let mut dir = Directory {
            entities,
            users,
            groups,
            group_parents,
            channels,
            profiles,
            label_ids,
            label_names,
            profile_bits,
            emails,
            internal_domains: src
                .internal_domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            indexes: HashMap::new(),
        };
        dir.build_indexes();
        Some(dir)
    }

    fn build_indexes(&mut self) {
        let mut idx = HashMap::new();
        for (g, members) in &self.groups {
            idx.insert(format!("group:{g}"), self.index_of(members.iter()));
        }
        for (ch, readers) in &self.channels {
            let mut set: BTreeSet<&String> = BTreeSet::new();
            for r in readers {
                if let Some(ms) = self.groups.get(r) {
                    set.extend(ms.iter());
                }
            }
            idx.insert(format!("channel:{ch}"), self.index_of(set.into_iter()));
        }
        // In name order, so the sample of an exposure is the same on every run.
        let everyone: BTreeSet<&String> = self.users.keys().collect();
        idx.insert(EVERYONE.into(), self.index_of(everyone.into_iter()));
        self.indexes = idx;
    }

    fn index_of<'a>(&self, members: impl Iterator<Item = &'a String>) -> AudienceIndex {
        let mut by: BTreeMap<usize, (u64, Vec<String>)> = BTreeMap::new();
        let mut total = 0;
        for m in members {
            if let Some(u) = self.users.get(m) {
                total += 1;
                let e = by.entry(u.profile).or_default();
                e.0 += 1;
                if e.1.len() < EXPOSURE_SAMPLE {
                    e.1.push(m.clone());
                }
            }
        }
        for (_, (_, sample)) in by.iter_mut() {
            sample.sort();
        }
        AudienceIndex {
            total,
            by_profile: by.into_iter().map(|(p, (c, s))| (p, c, s)).collect(),
        }
    }

    /// The Cedar entities (users, groups, agents, channels, datasets …).
    pub fn entities(&self) -> &Entities {
        &self.entities
    }

    /// A user by id.
    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.get(id)
    }

    /// The ids of every user, in no particular order.
    pub fn user_ids(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// Number of users.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// True when the group exists.
    pub fn has_group(&self, id: &str) -> bool {
        self.group_parents.contains_key(id)
    }

    /// True when the channel exists.
    pub fn has_channel(&self, id: &str) -> bool {
        self.channels.contains_key(id)
    }

    /// The user's effective clearances (declared, `public`, and `channel:*` for readable channels).
    pub fn clearances(&self, user: &str) -> Option<&BTreeSet<String>> {
        self.users
            .get(user)
            .and_then(|u| self.profiles.get(u.profile))
    }

    /// Ancestors of a principal for policy slicing: the user's groups as Cedar uids.
    pub fn ancestors(&self, user: &str) -> Vec<EntityUid> {
        self.users
            .get(user)
            .map(|u| u.groups.iter().map(|g| uid("Group", g)).collect())
            .unwrap_or_default()
    }

    /// Resolve an email address to a user id, if it is an internal address the directory knows.
    pub fn user_by_email(&self, address: &str) -> Option<&str> {
        self.emails
            .get(&address.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// True when the address belongs to one of the organisation's domains.
    pub fn is_internal_address(&self, address: &str) -> bool {
        let a = address.to_ascii_lowercase();
        a.rsplit_once('@')
            .map(|(_, d)| self.internal_domains.iter().any(|x| x == d))
            .unwrap_or(false)
    }

    /// True when a host name is one of the organisation's domains or below one.
    pub fn is_internal_host(&self, host: &str) -> bool {
        let h = host.to_ascii_lowercase();
        self.internal_domains
            .iter()
            .any(|d| h == *d || h.ends_with(&format!(".{d}")))
    }

    /// Who in the audience is not cleared for every one of `labels` (confidentiality labels;
    /// `public` is ignored, everyone is cleared for it). A label no one in the directory is
    /// cleared for exposes everyone.
    ///
    /// Labels are matched as bitsets over the labels the directory's clearance profiles name,
    /// so the cost is one lookup per label plus a few word operations per profile, whatever
    /// the audience's size.
    pub fn exposure(&self, audience: &Audience, labels: &BTreeSet<Label>) -> Exposure {
        let mut exp = Exposure::default();
        let mut want = Bits::new(self.label_names.len());
        // Labels no profile names: no one is cleared for them.
        let mut nobody = false;
        // Per label of `labels`, in order: its number, `NOBODY` or `PUBLIC_LABEL`.
        const NOBODY: usize = usize::MAX;
        const PUBLIC_LABEL: usize = usize::MAX - 1;
        let mut ids: Vec<usize> = Vec::with_capacity(labels.len());
        for l in labels {
            if &**l == PUBLIC {
                ids.push(PUBLIC_LABEL);
                continue;
            }
            match self.label_ids.get(&**l) {
                Some(i) => {
                    want.set(*i);
                    ids.push(*i);
                }
                None => {
                    nobody = true;
                    ids.push(NOBODY);
                }
            }
        }
        let mut uncovered = Bits::new(self.label_names.len());
        let mut uncovered_nobody = false;
        let mut sample: BTreeSet<String> = BTreeSet::new();
        let mut expose = |profile: Option<&Bits>, uncovered: &mut Bits| -> bool {
            let missing = match profile {
                Some(p) => uncovered.or_missing(&want, p),
                None => {
                    uncovered.or_all(&want);
                    !want.is_empty()
                }
            };
            if nobody {
                uncovered_nobody = true;
                return true;
            }
            missing
        };
        // Group- and channel-wide audiences use the precomputed indexes. Overlaps between several
        // groups are rare in one call; they are counted once per index, which can overstate but
        // never understate the blast radius.
        let keys = audience
            .channels
            .iter()
            .map(|c| format!("channel:{c}"))
            .chain(audience.groups.iter().map(|g| format!("group:{g}")));
        for key in keys {
            if let Some(ix) = self.indexes.get(&key) {
                exp.audience += ix.total;
                for (p, n, s) in &ix.by_profile {
                    if expose(self.profile_bits.get(*p), &mut uncovered) {
                        exp.count += n;
                        for name in s {
                            if sample.len() < EXPOSURE_SAMPLE {
                                sample.insert(name.clone());
                            }
                        }
                    }
                }
            }
        }
        // The readers of a place written: the profiles cleared for its labels.
        if let (Some(place), Some(ix)) = (&audience.place, self.indexes.get(EVERYONE)) {
            let mut need = Bits::new(self.label_names.len());
            let mut readable = true;
            for l in place {
                if l == PUBLIC || l.starts_with(CHANNEL_LABEL_PREFIX) {
                    continue;
                }
                match self.label_ids.get(l.as_str()) {
                    Some(i) => need.set(*i),
                    None => readable = false,
                }
            }
            for (p, n, s) in ix.by_profile.iter().filter(|_| readable) {
                let Some(bits) = self.profile_bits.get(*p) else {
                    continue;
                };
                if !bits.has_all(&need) {
                    continue;
                }
                exp.audience += n;
                if expose(Some(bits), &mut uncovered) {
                    exp.count += n;
                    for name in s {
                        if sample.len() < EXPOSURE_SAMPLE {
                            sample.insert(name.clone());
                        }
                    }
                }
            }
        }
        let mut counted_users: BTreeSet<&str> = BTreeSet::new();
        for u in &audience.users {
            if !counted_users.insert(u) {
                continue;
            }
            exp.audience += 1;
            let profile = self
                .users
                .get(u.as_str())
                .and_then(|x| self.profile_bits.get(x.profile));
            if expose(profile, &mut uncovered) {
                exp.count += 1;
                if sample.len() < EXPOSURE_SAMPLE {
                    sample.insert(u.clone());
                }
            }
        }
        for x in audience.external.iter().chain(audience.unknown.iter()) {
            exp.audience += 1;
            exp.external += 1;
            // Outside the organisation: cleared for `public` only.
            if expose(None, &mut uncovered) {
                exp.count += 1;
                exp.external_exposed += 1;
                if sample.len() < EXPOSURE_SAMPLE {
                    sample.insert(x.clone());
                }
            }
        }
        exp.sample = sample.into_iter().collect();
        // The labels that cause the exposure are those of `labels` that are uncovered, in the
        // same order: when most are, the set is cloned and thinned rather than rebuilt.
        let exposed = |id: usize| match id {
            NOBODY => uncovered_nobody,
            PUBLIC_LABEL => false,
            i => uncovered.get(i),
        };
        let kept = ids.iter().filter(|i| exposed(**i)).count();
        if kept == labels.len() {
            exp.labels = labels.clone();
        } else if kept * 2 >= labels.len() {
            let mut out = labels.clone();
            let mut next = ids.iter();
            out.retain(|_| next.next().is_some_and(|i| exposed(*i)));
            exp.labels = out;
        } else if kept > 0 {
            exp.labels = labels
                .iter()
                .zip(&ids)
                .filter(|(_, i)| exposed(**i))
                .map(|(l, _)| l.clone())
                .collect();
        }
        exp
    }
}

/// A fixed-size bitset over the directory's numbered labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }

    fn set(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Add `want \ have` to `self`; true when it is not empty.
    fn or_missing(&mut self, want: &Bits, have: &Bits) -> bool {
        let mut any = false;
        for (i, (w, h)) in want.0.iter().zip(have.0.iter()).enumerate() {
            let m = w & !h;
            if m != 0 {
                any = true;
                if let Some(o) = self.0.get_mut(i) {
                    *o |= m;
                }
            }
        }
        any
    }

    /// Whether every bit of `want` is set in `self`.
    fn has_all(&self, want: &Bits) -> bool {
        want.0
            .iter()
            .enumerate()
            .all(|(i, w)| w & !self.0.get(i).copied().unwrap_or(0) == 0)
    }

    /// Add all of `want` to `self`.
    fn or_all(&mut self, want: &Bits) {
        for (o, w) in self.0.iter_mut().zip(want.0.iter()) {
            *o |= w;
        }
    }
}

fn raw_entity_json(e: &RawEntity) -> Value {
    json!({
        "uid": {"type": e.uid.ty, "id": e.uid.id},
        "attrs": Value::Object(e.attrs.clone()),
        "parents": e.parents.iter().map(|p| json!({"type": p.ty, "id": p.id})).collect::<Vec<_>>(),
    })
}
