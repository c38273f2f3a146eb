//! What a mission read and sent, kept so that a secret cut into parts is still recognised.
//!
//! * **Read secrets** ([`SecretPrints`]): when an output holds a secret, the hashes of every
//!   [`GRAM`]-character piece of its value (folded to lowercase ASCII letters and digits, look-
//!   alike letters read as the letters they imitate) are kept, keyed per mission. The secret
//!   text itself is never kept. An outgoing text, folded the same way (so separators, spacing,
//!   one character per line and case do not matter) and also read backwards, carries the secret
//!   when one of its pieces has a kept hash: a long enough prefix, suffix or any part of it.
//! * **Split secrets** ([`SentTails`], [`split_secret`]): for each argument the mission's
//!   calls sent text in (`body`, `content`, …), the last [`SENT_TAIL`] bytes of what it sent
//!   are kept; each text argument of a call is scanned again joined to each kept tail, and a
//!   secret that only appears across the join was split over the calls.
//!
//! Both are bounded: at most [`MAX_PRINTS`] hashes, and [`MAX_TAILS`] tails of [`SENT_TAIL`]
//! bytes, per mission.

use serde::{Deserialize, Serialize};

use super::{normalize, Detectors, LABEL_SECRET};

/// Characters per fingerprinted piece: a piece this long of a secret's value is taken as the
/// secret. Twelve letters and digits of a random token are about 60 bits.
pub const GRAM: usize = 12;
/// The most secret values one scan keeps for fingerprints.
pub const MAX_VALUES: usize = 16;
/// The most bytes of one secret value fingerprinted.
pub const MAX_VALUE_BYTES: usize = 512;
/// The most fingerprints a mission keeps.
pub const MAX_PRINTS: usize = 4096;
/// The most bytes of sent text a mission keeps to find secrets split over calls.
pub const SENT_TAIL: usize = 256;
/// The most bytes of a call's text joined to the sent tail.
const HEAD: usize = 256;
/// The most arguments whose sent text a mission keeps (the most recently used).
pub const MAX_TAILS: usize = 4;

/// What a mission's calls sent, per argument name: the end of the text sent in it, most
/// recently used last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentTails(pub Vec<(String, String)>);

impl SentTails {
    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tails after a call sent `parts` (argument name, text): each part's tail is joined
    /// to the one kept for its argument; the least recently used are dropped past [`MAX_TAILS`].
    pub fn after(&self, parts: &[(String, String)]) -> SentTails {
        let mut next = self.0.clone();
        for (name, text) in parts {
            if text.trim().is_empty() {
                continue;
            }
            let old = next
                .iter()
                .position(|(n, _)| n == name)
                .map(|i| next.remove(i).1)
                .unwrap_or_default();
            next.push((name.clone(), join_tail(&old, text)));
        }
        let extra = next.len().saturating_sub(MAX_TAILS);
        next.drain(..extra);
        SentTails(next)
    }
}

/// Keyed fingerprints of the secrets a mission read (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretPrints {
    /// The hashes, sorted, without duplicates.
    pub hashes: Vec<u64>,
    /// More pieces arrived than [`MAX_PRINTS`]; later ones were not kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overflowed: bool,
}

/// The key of a mission's fingerprints: the same secret read by two missions has unrelated
/// fingerprints.
pub fn mission_key(mission: &str) -> u64 {
    mix(mission.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    }))
}

/// The splitmix64 finaliser.
///
/// The hashes are kept in mission state that outlives a process, so they must not change
/// with a dependency's version: this small, fixed function is written out here.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Multiplier of the rolling hash.
const BASE: u64 = 0x100_0000_01b3;

/// `BASE` to the power `GRAM - 1`, for removing the byte that leaves the window.
const fn base_pow() -> u64 {
    let mut p = 1u64;
    let mut i = 1;
    while i < GRAM {
        p = p.wrapping_mul(BASE);
        i += 1;
    }
    p
}
const BASE_POW: u64 = base_pow();

/// Call `f` with the keyed hash of every `GRAM`-byte window of `folded`, in one pass.
fn for_each_gram(folded: &[u8], key: u64, mut f: impl FnMut(u64) -> bool) -> bool {
    let mut h = 0u64;
    for (i, &b) in folded.iter().enumerate() {
        if i >= GRAM {
            let out = folded.get(i - GRAM).copied().unwrap_or(0);
            h = h.wrapping_sub(u64::from(out).wrapping_mul(BASE_POW));
        }
        h = h.wrapping_mul(BASE).wrapping_add(u64::from(b));
        if i + 1 >= GRAM && f(mix(h ^ key)) {
            return true;
        }
    }
    false
}

impl SecretPrints {
    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Keep the fingerprints of secret values (as [`super::Scan::secret_values`] holds them).
    pub fn add(&mut self, key: u64, values: &[Vec<u8>]) {
        for v in values.iter().take(MAX_VALUES) {
            let v = v.get(..v.len().min(MAX_VALUE_BYTES)).unwrap_or(v);
            for_each_gram(v, key, |h| {
                self.hashes.push(h);
                false
            });
        }
        self.hashes.sort_unstable();
        self.hashes.dedup();
        if self.hashes.len() > MAX_PRINTS {
            self.hashes.truncate(MAX_PRINTS);
            self.overflowed = true;
        }
    }

    /// Take in another copy's fingerprints (a union, bounded as [`SecretPrints::add`]).
    pub fn merge_from(&mut self, other: &SecretPrints) {
        self.overflowed |= other.overflowed;
        if other.hashes.is_empty() {
            return;
        }
        self.hashes.extend_from_slice(&other.hashes);
        self.hashes.sort_unstable();
        self.hashes.dedup();
        if self.hashes.len() > MAX_PRINTS {
            self.hashes.truncate(MAX_PRINTS);
            self.overflowed = true;
        }
    }

    /// True when `text` (folded, forwards or backwards) holds a piece of a kept secret.
    pub fn found_in(&self, key: u64, text: &str) -> bool {
        if self.hashes.is_empty() {
            return false;
        }
        let mut folded = normalize::canonical(text);
        let hit = |h: u64| self.hashes.binary_search(&h).is_ok();
        if for_each_gram(&folded, key, hit) {
            return true;
        }
        folded.reverse();
        for_each_gram(&folded, key, hit)
    }
}

/// True when `text`, sent by a call of the mission whose state is `session`, holds a part of a
/// secret the mission read or completes a secret its earlier calls began.
///
/// `parts` are the call's text arguments (name, text); only the [`MAX_TAILS`] longest are
/// joined to what was sent.
pub fn carried(
    detectors: &Detectors,
    session: &crate::session::SessionState,
    text: &str,
    parts: &[(String, String)],
) -> bool {
    let key = mission_key(&session.mission);
    if session.secret_prints.found_in(key, text) {
        return true;
    }
    if session.sent_tails.is_empty() {
        return false;
    }
    let mut longest: Vec<&str> = parts.iter().map(|(_, t)| t.as_str()).collect();
    longest.sort_by_key(|t| std::cmp::Reverse(t.len()));
    longest.truncate(MAX_TAILS);
    session.sent_tails.0.iter().any(|(_, tail)| {
        longest
            .iter()
            .any(|part| split_secret(detectors, tail, part))
    })
}

/// The first `n` bytes of `s`, cut at a character boundary.
fn head(s: &str, n: usize) -> &str {
    let mut end = s.len().min(n);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// The last `n` bytes of `s`, cut at a character boundary.
fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s.get(start..).unwrap_or_default()
}

/// The sent tail after a call sent `text`: the last [`SENT_TAIL`] bytes of the old tail
/// followed by the text (whitespace at the ends dropped).
pub fn join_tail(old: &str, text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return old.to_owned();
    }
    let mut joined = String::with_capacity(old.len() + text.len().min(SENT_TAIL));
    joined.push_str(old);
    joined.push_str(tail(text, SENT_TAIL));
    tail(&joined, SENT_TAIL).to_owned()
}

/// True when the start of `text` completes a secret that the sent tail began: joined, they
/// hold a secret that neither holds alone.
pub fn split_secret(detectors: &Detectors, sent_tail: &str, text: &str) -> bool {
    let text = text.trim_start();
    if sent_tail.is_empty() || text.is_empty() {
        return false;
    }
    let start = head(text, HEAD);
    let mut joined = String::with_capacity(sent_tail.len() + start.len());
    joined.push_str(sent_tail);
    joined.push_str(start);
    let whole = detectors.scan(&joined);
    if !whole.labels.contains(LABEL_SECRET) {
        return false;
    }
    let before = detectors.scan(sent_tail);
    let after = detectors.scan(start);
    if after.labels.contains(LABEL_SECRET) {
        // The call's own scan finds it already.
        return false;
    }
    // A secret value in the joined text that neither side holds whole.
    whole
        .secret_values
        .iter()
        .any(|v| !before.secret_values.contains(v))
}
