//! A tiny deterministic generator (SplitMix64) so the seeded data is identical on every run.

/// Deterministic pseudo-random numbers; never used for anything secret.
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator for `seed`; the same seed always yields the same sequence.
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is `0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// A number in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// One element of `items` (`None` only when `items` is empty).
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        let len = items.len() as u64;
        items.get(self.below(len) as usize)
    }

    /// `len` characters drawn from `alphabet`.
    pub(crate) fn string(&mut self, alphabet: &str, len: usize) -> String {
        let chars: Vec<char> = alphabet.chars().collect();
        (0..len)
            .filter_map(|_| self.pick(&chars).copied())
            .collect()
    }

    /// `len` lowercase hex digits.
    pub(crate) fn hex(&mut self, len: usize) -> String {
        self.string("0123456789abcdef", len)
    }
}

/// Formats seconds since 2026-11-01T00:00:00Z as an RFC 3339 UTC timestamp. The seeded world
/// lives in November 2026; later times roll into the following months correctly.
pub(crate) fn timestamp(secs: u64) -> String {
    const DAY: u64 = 86_400;
    // Month lengths from November 2026 on (2027 is not a leap year).
    const MONTHS: [(u32, u32, u64); 14] = [
        (2026, 11, 30),
        (2026, 12, 31),
        (2027, 1, 31),
        (2027, 2, 28),
        (2027, 3, 31),
        (2027, 4, 30),
        (2027, 5, 31),
        (2027, 6, 30),
        (2027, 7, 31),
        (2027, 8, 31),
        (2027, 9, 30),
        (2027, 10, 31),
        (2027, 11, 30),
        (2027, 12, 31),
    ];
    let mut days = secs / DAY;
    let rest = secs % DAY;
    let (mut year, mut month) = (2027, 12);
    for (y, m, len) in MONTHS {
        if days < len {
            year = y;
            month = m;
            break;
        }
        days -= len;
    }
    format!(
        "{year:04}-{month:02}-{:02}T{:02}:{:02}:{:02}Z",
        days + 1,
        rest / 3600,
        (rest % 3600) / 60,
        rest % 60
    )
}

/// Seconds since 2026-11-01T00:00:00Z for a November 2026 day and time.
pub(crate) const fn nov(day: u64, hour: u64, minute: u64, second: u64) -> u64 {
    (day - 1) * 86_400 + hour * 3600 + minute * 60 + second
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_in_utc() {
        assert_eq!(timestamp(nov(20, 9, 14, 3)), "2026-11-20T09:14:03Z");
        assert_eq!(timestamp(nov(30, 23, 59, 59) + 1), "2026-12-01T00:00:00Z");
    }

    #[test]
    fn rng_is_deterministic() {
        let a: Vec<u64> = {
            let mut r = Rng::new(7);
            (0..5).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::new(7);
            (0..5).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
    }
}
