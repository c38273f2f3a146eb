//! Encoded payloads: base64 (standard and URL-safe), base32 and hex runs that decode to
//! text are scanned again, within the decode depth and the byte budget.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};

use super::Ctx;

/// Shortest base64 run worth decoding (18 bytes of payload).
pub(super) const MIN_BASE64: usize = 24;
/// Shortest hex run worth decoding (16 bytes of payload).
pub(super) const MIN_HEX: usize = 32;
/// Characters decoded to judge a run before decoding all of it.
const PROBE: usize = 64;

const CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, CONFIG);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, CONFIG);

const ALNUM: u8 = 1;
const STD: u8 = 2;
const URL: u8 = 4;
const HEX: u8 = 8;

/// Byte classes: base64 letters and digits, `+/`, `-_`, and hex digits.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        if b.is_ascii_alphanumeric() {
            t[i] = ALNUM;
        }
        if b.is_ascii_hexdigit() {
            t[i] |= HEX;
        }
        if b == b'+' || b == b'/' {
            t[i] = STD;
        }
        if b == b'-' || b == b'_' {
            t[i] = URL;
        }
        i += 1;
    }
    t
};

/// How a run is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Base64Std,
    Base64Url,
    Base32,
    Hex,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Base64Std | Self::Base64Url => "base64",
            Self::Base32 => "base32",
            Self::Hex => "hex",
        }
    }

    fn decode(self, run: &[u8]) -> Option<Vec<u8>> {
        match self {
            Self::Hex => {
                let mut out = vec![0u8; run.len() / 2];
                hex_into(run, &mut out)?;
                Some(out)
            }
            Self::Base64Std | Self::Base64Url => self.engine().decode(base64_usable(run)?).ok(),
            Self::Base32 => data_encoding::BASE32_NOPAD_NOCASE
                .decode(base32_usable(run)?)
                .ok(),
        }
    }

    /// Decode the start of `run` into `out` (48 bytes: 96 hex or 64 base64 characters).
    fn decode_prefix(self, run: &[u8], out: &mut [u8; 48]) -> Option<usize> {
        match self {
            Self::Hex => {
                let n = (run.len() / 2).min(out.len());
                hex_into(run, out.get_mut(..n)?)?;
                Some(n)
            }
            Self::Base64Std | Self::Base64Url => {
                let prefix = base64_usable(run.get(..run.len().min(PROBE))?)?;
                self.engine().decode_slice(prefix, out).ok()
            }
            Self::Base32 => {
                let prefix = base32_usable(run.get(..run.len().min(PROBE))?)?;
                let n = data_encoding::BASE32_NOPAD_NOCASE
                    .decode_len(prefix.len())
                    .ok()?;
                data_encoding::BASE32_NOPAD_NOCASE
                    .decode_mut(prefix, out.get_mut(..n)?)
                    .ok()
            }
        }
    }

    fn engine(self) -> &'static GeneralPurpose {
        if self == Self::Base64Url {
            &URL_SAFE
        } else {
            &STANDARD
        }
    }
}

/// `run` without a lone trailing character, which base64 cannot decode.
fn base64_usable(run: &[u8]) -> Option<&[u8]> {
    if run.len() % 4 == 1 {
        run.get(..run.len() - 1)
    } else {
        Some(run)
    }
}

/// The longest prefix of `run` that is a whole number of base32 characters (lengths 1, 3 and 6
/// modulo 8 leave bits that make no byte).
fn base32_usable(run: &[u8]) -> Option<&[u8]> {
    let cut = match run.len() % 8 {
        1 | 3 | 6 => 1,
        _ => 0,
    };
    run.get(..run.len() - cut)
}

/// True when every byte of `run` is a base32 letter or digit (`A-Z2-7`) in one case.
fn base32_alphabet(run: &[u8]) -> bool {
    let digit = |b: &u8| (b'2'..=b'7').contains(b);
    run.iter().all(|b| b.is_ascii_uppercase() || digit(b))
        || run.iter().all(|b| b.is_ascii_lowercase() || digit(b))
}

/// Hex digit values, 0xff for other bytes.
static NIBBLE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Decode hex pairs from `src` into every byte of `out`.
fn hex_into(src: &[u8], out: &mut [u8]) -> Option<()> {
    let mut pairs = src.chunks_exact(2);
    for o in out.iter_mut() {
        let [hi, lo] = pairs.next()? else { return None };
        let (hi, lo) = (NIBBLE[usize::from(*hi)], NIBBLE[usize::from(*lo)]);
        if (hi | lo) > 0x0f {
            return None;
        }
        *o = (hi << 4) | lo;
    }
    Some(())
}

/// Find encoded runs in `hay`, decode those that hold text and scan them one layer deeper.
///
/// Runs shorter than [`MIN_BASE64`] are skipped without looking at most of their bytes:
/// a long enough run must cover the byte `MIN_BASE64 - 1` ahead, so when that byte is
/// not a run byte the search jumps past it.
pub(super) fn scan(hay: &[u8], depth: u8, ctx: &mut Ctx<'_>) {
    let breaks = |b: &u8| CLASS[usize::from(*b)] == 0;
    // Invariant: `i == 0` or `hay[i - 1]` is not a run byte.
    let mut i = 0;
    while let Some(probe_byte) = hay.get(i + MIN_BASE64 - 1) {
        let probe = i + MIN_BASE64 - 1;
        if breaks(probe_byte) {
            i = probe + 1;
            continue;
        }
        let start = hay
            .get(i..probe)
            .and_then(|h| h.iter().rposition(breaks))
            .map_or(i, |k| i + k + 1);
        let tail = hay.get(probe + 1..).unwrap_or(&[]);
        let end = probe + 1 + tail.iter().position(breaks).unwrap_or(tail.len());
        if end - start >= MIN_BASE64 {
            if let Some((joined, until)) = wrapped(hay, start, end) {
                // Base64 wrapped at a fixed width (MIME, PEM, `base64` at 76): one payload.
                let (any, every) = joined.iter().fold((0u8, 0xffu8), |(any, every), &b| {
                    let class = CLASS[usize::from(b)];
                    (any | class, every & class)
                });
                consider_run(&joined, any, (every & HEX) != 0, depth, ctx);
                if ctx.saturated() {
                    return;
                }
                i = until + 1;
                continue;
            }
            if let Some(run) = hay.get(start..end) {
                let (any, every) = run.iter().fold((0u8, 0xffu8), |(any, every), &b| {
                    let class = CLASS[usize::from(b)];
                    (any | class, every & class)
                });
                consider_run(run, any, (every & HEX) != 0, depth, ctx);
                if ctx.saturated() {
                    return;
                }
            }
        }
        i = end + 1;
    }
}

/// The shortest line of a wrapped payload.
const MIN_WRAP: usize = 40;

/// When the run `hay[start..end]` is the first line of a payload wrapped at a fixed width
/// (lines of that width, a shorter last line), the lines joined and the end of the last.
fn wrapped(hay: &[u8], start: usize, end: usize) -> Option<(Vec<u8>, usize)> {
    let width = end - start;
    if width < MIN_WRAP || !width.is_multiple_of(4) {
        return None;
    }
    let is_run = |b: &u8| CLASS[usize::from(*b)] != 0;
    let mut joined = hay.get(start..end)?.to_vec();
    let mut at = end;
    let mut lines = 1;
    loop {
        let next = match hay.get(at..at + 2) {
            Some(b"\r\n") => at + 2,
            _ if hay.get(at) == Some(&b'\n') => at + 1,
            _ => break,
        };
        let line = hay.get(next..)?;
        let len = line.iter().position(|b| !is_run(b)).unwrap_or(line.len());
        if len == 0 || len > width {
            break;
        }
        joined.extend_from_slice(line.get(..len)?);
        at = next + len;
        lines += 1;
        if len < width {
            break;
        }
    }
    (lines > 1).then_some((joined, at))
}

/// Decide how one maximal run is encoded and try it (and, for paths, its segments).
fn consider_run(run: &[u8], flags: u8, all_hex: bool, depth: u8, ctx: &mut Ctx<'_>) {
    if all_hex && run.len() >= MIN_HEX {
        try_payload(run, Kind::Hex, depth, ctx);
        return;
    }
    if let Some(hex) = run.strip_prefix(b"0x").or_else(|| run.strip_prefix(b"0X")) {
        if hex.len() >= MIN_HEX && hex.iter().all(u8::is_ascii_hexdigit) {
            try_payload(hex, Kind::Hex, depth, ctx);
            return;
        }
    }
    if base32_alphabet(run) && try_payload(run, Kind::Base32, depth, ctx) {
        return;
    }
    let kind = match (flags & STD != 0, flags & URL != 0) {
        (_, false) => Some(Kind::Base64Std),
        (false, true) => Some(Kind::Base64Url),
        (true, true) => None,
    };
    if let Some(kind) = kind {
        if try_payload(run, kind, depth, ctx) {
            return;
        }
    }
    // `/api/v1/<payload>`, `a_b/<payload>`: try the path segments on their own.
    if run.contains(&b'/') {
        for seg in run
            .split(|&b| b == b'/')
            .filter(|s| s.len() >= MIN_BASE64 && s.len() < run.len())
        {
            let url = seg.iter().any(|&b| b == b'-' || b == b'_');
            let plus = seg.contains(&b'+');
            if url && plus {
                continue;
            }
            try_payload(
                seg,
                if url {
                    Kind::Base64Url
                } else {
                    Kind::Base64Std
                },
                depth,
                ctx,
            );
        }
    }
}

/// Decode `run` as `kind`; if it is text, scan it (or mark the scan truncated when the
/// depth or the budget is exhausted). Returns true when the run held text.
fn try_payload(run: &[u8], kind: Kind, depth: u8, ctx: &mut Ctx<'_>) -> bool {
    // Cheap probe first: most runs (hashes, ids, binary blobs) are rejected here.
    let mut buf = [0u8; 48];
    let Some(n) = kind.decode_prefix(run, &mut buf) else {
        return false;
    };
    let partial = n < estimate_len(kind, run);
    if !textual(buf.get(..n).unwrap_or(&[]), partial) {
        return false;
    }
    if depth >= ctx.limits.max_decode_depth {
        ctx.out.truncated = true;
        return true;
    }
    if estimate_len(kind, run) > ctx.budget {
        ctx.out.truncated = true;
        return true;
    }
    let Some(decoded) = kind.decode(run) else {
        return false;
    };
    if !textual(&decoded, false) {
        return false;
    }
    ctx.budget = ctx.budget.saturating_sub(decoded.len());
    ctx.chain.push(None);
    ctx.scan_layer(&decoded, depth + 1, Some(kind.name()));
    ctx.chain.pop();
    true
}

/// About how many bytes `run` decodes to (never less).
fn estimate_len(kind: Kind, run: &[u8]) -> usize {
    match kind {
        Kind::Hex => run.len() / 2,
        Kind::Base64Std | Kind::Base64Url => run.len() / 4 * 3 + 2,
        Kind::Base32 => run.len() / 8 * 5 + 4,
    }
}

/// Whether decoded bytes are text: UTF-8 with few control characters, or almost
/// entirely printable ASCII. `partial` allows a UTF-8 sequence cut at the end.
pub(super) fn textual(b: &[u8], partial: bool) -> bool {
    if b.is_empty() {
        return false;
    }
    let printable = b
        .iter()
        .filter(|&&c| c.is_ascii_graphic() || matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        .count();
    if printable * 10 >= b.len() * 9 {
        return true;
    }
    // Otherwise only UTF-8 text (with few control characters) qualifies; random bytes
    // fail here at the first invalid sequence.
    if !b.iter().any(|&c| c >= 0x80) {
        return false;
    }
    let text = match std::str::from_utf8(b) {
        Ok(s) => s,
        Err(e) if partial && e.error_len().is_none() => {
            std::str::from_utf8(b.get(..e.valid_up_to()).unwrap_or(&[])).unwrap_or("")
        }
        Err(_) => return false,
    };
    let (mut total, mut bad) = (0usize, 0usize);
    for c in text.chars() {
        total += 1;
        if c.is_control() && !matches!(c, '\t' | '\n' | '\r') {
            bad += 1;
        }
    }
    total > 0 && bad * 20 <= total
}
