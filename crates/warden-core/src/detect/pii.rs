//! Personal data: e-mail addresses, phone numbers, US SSNs, card numbers and IBANs.

use regex::bytes::Regex;

use super::text::{at, before, is, is_word, redact, slice};
use super::{Ctx, Layer, LABEL_PII};

const EMAIL: &str = r"(?-u)[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b";
const PHONE_INTL: &str = r"(?-u)\+[1-9][0-9 ().-]{6,22}[0-9]";
/// US phone numbers: `(NNN) NNN-NNNN`, `NNN-NNN-NNNN`, `1-NNN-NNN-NNNN`, ….
const PHONE_US: &str =
    r"(?:\b1[-. ]?)?(?:\([2-9][0-9]{2}\) ?|\b[2-9][0-9]{2}[-. ])[2-9][0-9]{2}[-. ][0-9]{4}\b";
/// US social security numbers.
const SSN: &str = r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b";
/// Candidates for cards, SSNs and US phones in the combined scan: nine or more digits
/// with at most two separator characters between them. One pattern with one counter
/// keeps the combined DFA small even on text made only of digits.
pub(super) const DIGIT_RUN: &str = r"\(?[0-9](?:[ ().-]{0,2}[0-9]){8,}";
/// IBAN candidates (case-sensitive).
pub(super) const IBAN: &str = r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,32}";

/// The compiled PII detectors; card, SSN, US phone and IBAN candidates come from the
/// combined scan and are judged here.
#[derive(Debug)]
pub(super) struct Pii {
    pub(super) email: Regex,
    pub(super) phone_intl: Regex,
    /// Run inside digit runs whose group sizes allow a US phone number.
    phone_us: Regex,
    /// Run inside digit runs whose group sizes allow an SSN.
    ssn: Regex,
}

impl Pii {
    pub(super) fn build() -> Result<Self, regex::Error> {
        Ok(Self {
            email: Regex::new(EMAIL)?,
            phone_intl: Regex::new(PHONE_INTL)?,
            phone_us: Regex::new(&format!("(?-u){PHONE_US}"))?,
            ssn: Regex::new(&format!("(?-u){SSN}"))?,
        })
    }

    /// E-mail addresses and international phone numbers (literal-prefiltered on `@`, `+`).
    pub(super) fn scan_fast(&self, ctx: &mut Ctx<'_>, layer: &mut Layer<'_>) {
        let (hay, enc) = (layer.hay, layer.encoding);
        if !ctx.wants(LABEL_PII) {
            return;
        }
        for m in self.email.find_iter(hay) {
            if email_ok(hay, m.start(), m.as_bytes()) {
                ctx.report("email", LABEL_PII, m.start(), enc, || redact(m.as_bytes()));
                if !ctx.wants(LABEL_PII) {
                    return;
                }
            }
        }
        for m in self.phone_intl.find_iter(hay) {
            if phone_intl_ok(hay, m.start(), m.end()) {
                layer.phone_spans.push((m.start(), m.end()));
                ctx.report("phone", LABEL_PII, m.start(), enc, || redact(m.as_bytes()));
                if !ctx.wants(LABEL_PII) {
                    return;
                }
            }
        }
    }

    /// A run of nine or more digits at `hay[start..end]`: look for cards, SSNs and US phones.
    pub(super) fn digits_at(
        &self,
        start: usize,
        end: usize,
        ctx: &mut Ctx<'_>,
        layer: &mut Layer<'_>,
    ) {
        let hay = layer.hay;
        if !ctx.wants(LABEL_PII) {
            return;
        }
        let m = slice(hay, start, end);
        // Each check below is linear in the run, and runs do not overlap.
        if !ctx.charge(m.len()) {
            return;
        }
        // Most runs (IP addresses, timestamps, ids) are rejected by their group sizes
        // alone, without allocating.
        let mut fixed = [(0usize, 0usize); 24];
        let mut n = 0;
        let mut overflow = false;
        for_each_group(m, |g| match fixed.get_mut(n) {
            Some(slot) => {
                *slot = g;
                n += 1;
            }
            None => overflow = true,
        });
        let heap;
        let groups: &[(usize, usize)] = if overflow {
            heap = {
                let mut v = Vec::new();
                for_each_group(m, |g| v.push(g));
                v
            };
            &heap
        } else {
            fixed.get(..n).unwrap_or(&[])
        };
        let sizes = |want: [usize; 3]| {
            groups
                .windows(3)
                .any(|w| w.iter().zip(want).all(|(&(a, b), k)| b - a == k))
        };
        let card_stretch = {
            let mut run = 0;
            let mut best = 0;
            for (k, &(a, b)) in groups.iter().enumerate() {
                let joined = k > 0
                    && groups
                        .get(k - 1)
                        .is_some_and(|&(_, prev_end)| matches!(slice(m, prev_end, a), b" " | b"-"));
                run = if joined { run + (b - a) } else { b - a };
                best = best.max(run);
            }
            best >= 13
        };
        let (ssn, phone) = (sizes([3, 2, 4]), sizes([3, 3, 4]));
        if card_stretch || ssn || phone {
            let run = DigitRun {
                start,
                bytes: m,
                groups,
                card_stretch,
                ssn,
                phone,
            };
            self.digits_found(run, ctx, layer);
        }
    }

    /// Report the cards, SSNs and phones of a digit run whose group sizes allow them.
    fn digits_found(&self, run: DigitRun<'_>, ctx: &mut Ctx<'_>, layer: &mut Layer<'_>) {
        let DigitRun {
            start,
            bytes: m,
            groups,
            card_stretch,
            ssn,
            phone,
        } = run;
        let (hay, enc) = (layer.hay, layer.encoding);
        let mut cards_found: Vec<(usize, usize)> = Vec::new();
        if card_stretch {
            // Card numbers: stretches of groups joined by one space or one dash.
            let mut first = 0;
            for (k, pair) in groups.windows(2).enumerate() {
                if let [(_, a_end), (b_start, _)] = pair {
                    if !matches!(slice(m, *a_end, *b_start), b" " | b"-") {
                        self.cards_in(m, groups.get(first..=k).unwrap_or(&[]), &mut cards_found);
                        first = k + 1;
                    }
                }
            }
            self.cards_in(m, groups.get(first..).unwrap_or(&[]), &mut cards_found);
            for &(a, b) in &cards_found {
                if !is(before(hay, start + a), is_word) && !is(at(hay, start + b), is_word) {
                    ctx.report("card-number", LABEL_PII, start + a, enc, || {
                        redact(slice(m, a, b))
                    });
                }
            }
        }
        let outside_cards = |a: usize, b: usize| !cards_found.iter().any(|&(x, y)| x < b && a < y);
        if ssn {
            for s in self.ssn.find_iter(m) {
                if outside_cards(s.start(), s.end())
                    && ssn_ok(hay, start + s.start(), start + s.end())
                {
                    ctx.report("ssn", LABEL_PII, start + s.start(), enc, || {
                        redact(s.as_bytes())
                    });
                }
            }
        }
        if phone {
            for p in self.phone_us.find_iter(m) {
                let (a, b) = (start + p.start(), start + p.end());
                if outside_cards(p.start(), p.end())
                    && !layer.phone_spans.iter().any(|&(x, y)| x < b && a < y)
                    && phone_us_ok(hay, a, b)
                {
                    layer.phone_spans.push((a, b));
                    ctx.report("phone", LABEL_PII, a, enc, || redact(p.as_bytes()));
                }
            }
        }
    }

    /// Card numbers in the stretch of `m` covered by `groups` (joined by single spaces or dashes).
    fn cards_in(&self, m: &[u8], groups: &[(usize, usize)], found: &mut Vec<(usize, usize)>) {
        let total: usize = groups.iter().map(|&(a, b)| b - a).sum();
        let (Some(&(a, _)), Some(&(_, b))) = (groups.first(), groups.last()) else {
            return;
        };
        if total >= 13 {
            found.extend(
                cards(slice(m, a, b))
                    .into_iter()
                    .map(|(x, y)| (a + x, a + y)),
            );
        }
    }

    /// An IBAN candidate at `start`.
    pub(super) fn iban_at(&self, start: usize, end: usize, ctx: &mut Ctx<'_>, layer: &Layer<'_>) {
        let (hay, enc) = (layer.hay, layer.encoding);
        if !ctx.wants(LABEL_PII) {
            return;
        }
        let m = slice(hay, start, end);
        if let Some(len) = iban_len(hay, start, m) {
            ctx.report("iban", LABEL_PII, start, enc, || redact(slice(m, 0, len)));
        }
    }
}

/// File-name extensions that look like top-level domains (`icon@2x.png`).
const FILE_TLDS: &[&[u8]] = &[
    b"png", b"jpg", b"jpeg", b"gif", b"svg", b"webp", b"ico", b"bmp", b"css", b"js", b"ts", b"map",
    b"json", b"txt", b"log", b"lock", b"tgz", b"zip", b"gz",
];

fn email_ok(hay: &[u8], start: usize, m: &[u8]) -> bool {
    // `scheme://user@host` is URL userinfo, not an address.
    if slice(hay, start.saturating_sub(3), start) == b"://" {
        return false;
    }
    let Some(at_sign) = m.iter().position(|&b| b == b'@') else {
        return false;
    };
    let local = slice(m, 0, at_sign);
    let tld = m.rsplit(|&b| b == b'.').next().unwrap_or(&[]);
    let lower_tld: Vec<u8> = tld.to_ascii_lowercase();
    let local_lower = local.to_ascii_lowercase();
    !local.iter().all(|&b| b == b'.')
        && !FILE_TLDS.contains(&lower_tld.as_slice())
        && !matches!(
            local_lower.as_slice(),
            b"git" | b"noreply" | b"no-reply" | b"donotreply" | b"do-not-reply"
        )
}

fn digits(m: &[u8]) -> usize {
    m.iter().filter(|b| b.is_ascii_digit()).count()
}

fn phone_intl_ok(hay: &[u8], start: usize, end: usize) -> bool {
    let m = slice(hay, start, end);
    let n = digits(m);
    let seps = m.len() - n - 1;
    let opens = m.iter().filter(|&&b| b == b'(').count();
    let closes = m.iter().filter(|&&b| b == b')').count();
    !is(before(hay, start), |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'+' | b'_' | b'/' | b'=')
    }) && !is(at(hay, end), |b| b.is_ascii_alphanumeric() || b == b'_')
        && (8..=15).contains(&n)
        && (seps > 0 || n >= 10)
        && opens == closes
        && opens <= 1
        && !m
            .windows(2)
            .any(|w| matches!(w, [b'-' | b'.', b'-' | b'.'] | [b' ', b' ']))
}

fn phone_us_ok(hay: &[u8], start: usize, end: usize) -> bool {
    let m = slice(hay, start, end);
    let boundary_before = !is(before(hay, start), |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.' | b'_' | b'/' | b'=')
    });
    let next = at(hay, end);
    let glued_after =
        matches!(next, Some(b'-' | b'.')) && is(at(hay, end + 1), |b| b.is_ascii_digit());
    // Without parentheses, both separators of `NNN?NNN?NNNN` must agree.
    let seps: Vec<u8> = m
        .iter()
        .copied()
        .filter(|b| matches!(b, b'-' | b'.' | b' '))
        .collect();
    let consistent = m.contains(&b'(') || seps.windows(2).all(|w| matches!(w, [a, b] if a == b));
    boundary_before && !glued_after && consistent
}

fn ssn_ok(hay: &[u8], start: usize, end: usize) -> bool {
    let m = slice(hay, start, end);
    let num = |a: usize, b: usize| {
        slice(m, a, b)
            .iter()
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d.wrapping_sub(b'0')))
    };
    let (area, group, serial) = (num(0, 3), num(4, 6), num(7, 11));
    !is(before(hay, start), |b| matches!(b, b'-' | b'.' | b'/'))
        && !is(at(hay, end), |b| {
            b == b'-' || (b == b'.' && is(at(hay, end + 1), |c| c.is_ascii_digit()))
        })
        && area != 0
        && area != 666
        && area < 900
        && group != 0
        && serial != 0
}

/// A digit run from the combined scan and the shapes its group sizes allow.
struct DigitRun<'m> {
    start: usize,
    bytes: &'m [u8],
    /// The runs of digits in `bytes`, as `(start, end)`.
    groups: &'m [(usize, usize)],
    /// Some stretch of groups joined by single spaces or dashes has 13 or more digits.
    card_stretch: bool,
    /// Some three groups in a row have 3, 2 and 4 digits.
    ssn: bool,
    /// Some three groups in a row have 3, 3 and 4 digits.
    phone: bool,
}

/// Call `f` with each run of digits in `m`, as `(start, end)`.
fn for_each_group(m: &[u8], mut f: impl FnMut((usize, usize))) {
    let mut start = None;
    for (i, &b) in m.iter().enumerate() {
        match (b.is_ascii_digit(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                f((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        f((s, m.len()));
    }
}

/// Card numbers inside one run of digits with single spaces or dashes, as ranges of the run.
fn cards(m: &[u8]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    // Groups of digits, as (start, end) in `m`.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for (i, &b) in m.iter().enumerate() {
        if !b.is_ascii_digit() {
            groups.push((start, i));
            start = i + 1;
        }
    }
    groups.push((start, m.len()));
    let seps: Vec<u8> = m.iter().copied().filter(|b| !b.is_ascii_digit()).collect();
    if seps.windows(2).any(|w| matches!(w, [a, b] if a != b)) {
        return found;
    }
    let mut i = 0;
    while let Some(&(a, _)) = groups.get(i) {
        let mut total = 0;
        let mut hit = None;
        for (j, &(ga, gb)) in groups.iter().enumerate().skip(i) {
            let size = gb - ga;
            total += size;
            let single = j == i;
            if total > 19 || (!single && !(3..=6).contains(&size)) {
                break;
            }
            let first_ok = single || {
                let first = groups.get(i).map_or(0, |&(x, y)| y - x);
                (3..=6).contains(&first)
            };
            if total >= 13 && first_ok {
                let mut digits = [0u8; 19];
                let mut n = 0;
                for &d in slice(m, a, gb).iter().filter(|d| d.is_ascii_digit()) {
                    if let Some(slot) = digits.get_mut(n) {
                        *slot = d;
                        n += 1;
                    }
                }
                if card_ok(digits.get(..n).unwrap_or(&[])) {
                    hit = Some((j, gb));
                    break;
                }
            }
            if single && size >= 13 {
                break;
            }
        }
        match hit {
            Some((j, end)) => {
                found.push((a, end));
                i = j + 1;
            }
            None => i += 1,
        }
    }
    found
}

/// Issuer prefix and length of a known card brand, and the Luhn check.
fn card_ok(d: &[u8]) -> bool {
    let n = d.len();
    let p = |k: usize| {
        slice(d, 0, k)
            .iter()
            .fold(0u32, |acc, &c| acc * 10 + u32::from(c.wrapping_sub(b'0')))
    };
    let brand = match d.first() {
        Some(b'4') => matches!(n, 13 | 16 | 19),
        Some(b'5') => (51..=55).contains(&p(2)) && n == 16,
        Some(b'2') => (2221..=2720).contains(&p(4)) && n == 16,
        Some(b'3') => {
            (matches!(p(2), 34 | 37) && n == 15)
                || ((3528..=3589).contains(&p(4)) && (16..=19).contains(&n))
                || (((300..=305).contains(&p(3)) || matches!(p(2), 36 | 38 | 39))
                    && (14..=19).contains(&n))
        }
        Some(b'6') => {
            (p(4) == 6011 || p(2) == 65 || (644..=649).contains(&p(3)) || p(2) == 62)
                && (16..=19).contains(&n)
        }
        _ => false,
    };
    let first = d.first().copied();
    brand && !d.iter().all(|&c| Some(c) == first) && luhn(d)
}

/// The Luhn checksum of ASCII digits.
pub(super) fn luhn(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &c)| {
            let v = u32::from(c.wrapping_sub(b'0'));
            if i % 2 == 1 {
                let v = v * 2;
                if v > 9 {
                    v - 9
                } else {
                    v
                }
            } else {
                v
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// IBAN lengths by country.
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"LY", 25),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NL", 18),
    (b"NO", 15),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"SA", 24),
    (b"SC", 31),
    (b"SD", 18),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
];

/// The byte length of a valid IBAN at the start of `m` (country length and mod-97 checked).
fn iban_len(hay: &[u8], start: usize, m: &[u8]) -> Option<usize> {
    if is(before(hay, start), |b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let country = m.get(..2)?;
    let &(_, want) = IBAN_LENGTHS.iter().find(|(c, _)| c.as_slice() == country)?;
    // The first `want` alphanumerics, and the byte length they span.
    let mut chars = Vec::with_capacity(want);
    let mut span = 0;
    for (i, &b) in m.iter().enumerate() {
        if chars.len() == want {
            break;
        }
        if b != b' ' {
            chars.push(b);
        }
        span = i + 1;
    }
    if chars.len() != want || is(at(hay, start + span), |b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let (head, tail) = (chars.get(..4)?, chars.get(4..)?);
    let mut rem: u32 = 0;
    for &c in tail.iter().chain(head) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return None,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    (rem == 1).then_some(span)
}
