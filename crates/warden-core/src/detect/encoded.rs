//! Encoded payloads: base64 (standard and URL-safe) and hex runs that decode to text
//! are scanned again, within the decode depth and the byte budget.

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
    Hex,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Base64Std | Self::Base64Url => "base64",
            Self::Hex => "hex",
        }
    }

    fn decode(self, run: &[u8]) -> Option<Vec<u8>> {
        match self {
            Self::Hex => hex::decode(run.get(..run.len() & !1)?).ok(),
            Self::Base64Std | Self::Base64Url => {
                // A lone trailing character cannot be decoded; drop it.
                let run = if run.len() % 4 == 1 {
                    run.get(..run.len() - 1)?
                } else {
                    run
                };
                let engine = if self == Self::Base64Std {
                    &STANDARD
                } else {
                    &URL_SAFE
                };
                engine.decode(run).ok()
            }
        }
    }

    /// The prefix of `run` decoded to judge it, aligned to whole units.
    fn probe(self, run: &[u8]) -> &[u8] {
        let n = run.len().min(PROBE);
        run.get(..n).unwrap_or(run)
    }
}

/// Find encoded runs in `hay`, decode those that hold text and scan them one layer deeper.
pub(super) fn scan(hay: &[u8], depth: u8, ctx: &mut Ctx<'_>) {
    let mut start = 0;
    let mut flags = 0u8;
    let mut all_hex = true;
    for (i, &b) in hay.iter().chain(std::iter::once(&b' ')).enumerate() {
        let class = CLASS[usize::from(b)];
        if class != 0 {
            flags |= class;
            all_hex &= (class & HEX) != 0;
            continue;
        }
        let len = i - start;
        if len >= MIN_BASE64 {
            if let Some(run) = hay.get(start..i) {
                consider_run(run, flags, all_hex, depth, ctx);
                if ctx.saturated() {
                    return;
                }
            }
        }
        start = i + 1;
        flags = 0;
        all_hex = true;
    }
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
    let Some(probe) = kind.decode(kind.probe(run)) else {
        return false;
    };
    if !textual(&probe, run.len() > PROBE) {
        return false;
    }
    if depth >= ctx.limits.max_decode_depth {
        ctx.out.truncated = true;
        return true;
    }
    let estimate = match kind {
        Kind::Hex => run.len() / 2,
        Kind::Base64Std | Kind::Base64Url => run.len() / 4 * 3 + 2,
    };
    if estimate > ctx.budget {
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
    ctx.scan_layer(&decoded, depth + 1, Some(kind.name()));
    true
}

/// Whether decoded bytes are text: UTF-8 with few control characters, or almost
/// entirely printable ASCII. `partial` allows a UTF-8 sequence cut at the end.
pub(super) fn textual(b: &[u8], partial: bool) -> bool {
    if b.is_empty() {
        return false;
    }
    let text = match std::str::from_utf8(b) {
        Ok(s) => s,
        Err(e) if partial && e.error_len().is_none() => {
            std::str::from_utf8(b.get(..e.valid_up_to()).unwrap_or(&[])).unwrap_or("")
        }
        Err(_) => {
            let printable = b
                .iter()
                .filter(|&&c| c.is_ascii_graphic() || matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
                .count();
            return printable * 10 >= b.len() * 9;
        }
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
