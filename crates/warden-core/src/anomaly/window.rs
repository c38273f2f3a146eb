//! Sliding windows made of buckets: a count, and a set of distinct names.

use std::collections::{BTreeMap, VecDeque};

/// How many buckets a window is cut into. A bucket that overlaps the window counts whole, so a
/// count can include up to one bucket's worth of older events (never fewer than happened).
const BUCKETS: i64 = 10;

/// A count over a sliding window.
#[derive(Debug, Default)]
pub(super) struct Counter {
    /// (bucket start, count), oldest first.
    buckets: VecDeque<(i64, u64)>,
}

impl Counter {
    /// Add `n` at `now` and return the count in the window of `window` ms ending at `now`.
    pub(super) fn add(&mut self, now: i64, window: i64, n: u64) -> u64 {
        let width = (window / BUCKETS).max(1);
        let start = now - now.rem_euclid(width);
        let horizon = now.saturating_sub(window);
        while self
            .buckets
            .front()
            .is_some_and(|(s, _)| s.saturating_add(width) <= horizon)
        {
            self.buckets.pop_front();
        }
        if n > 0 {
            match self.buckets.back_mut() {
                // A clock that went back counts in the latest bucket.
                Some((s, c)) if *s >= start => *c = c.saturating_add(n),
                _ => self.buckets.push_back((start, n)),
            }
        }
        // Bound the buckets even if the window changed.
        while self.buckets.len() > (BUCKETS as usize) + 2 {
            self.buckets.pop_front();
        }
        self.buckets
            .iter()
            .fold(0u64, |acc, (_, c)| acc.saturating_add(*c))
    }
}

/// Distinct names seen in a sliding window, each with when it was last seen.
#[derive(Debug, Default)]
pub(super) struct Distinct {
    seen: BTreeMap<String, i64>,
}

impl Distinct {
    /// Note `name` at `now`; return how many distinct names were seen in the window of
    /// `window` ms ending at `now`. At most `max + 1` names are kept (the count cannot go
    /// higher, which is enough to trip), and never more than 10,000.
    pub(super) fn add(&mut self, now: i64, window: i64, name: &str, max: u64) -> u64 {
        let horizon = now.saturating_sub(window);
        self.seen.retain(|_, at| *at > horizon);
        let cap = usize::try_from(max.saturating_add(1))
            .unwrap_or(usize::MAX)
            .min(10_000);
        if let Some(at) = self.seen.get_mut(name) {
            *at = (*at).max(now);
        } else {
            if self.seen.len() >= cap {
                let oldest = self
                    .seen
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    self.seen.remove(&k);
                }
            }
            self.seen.insert(name.to_string(), now);
        }
        self.seen.len() as u64
    }
}
