//! Normalised views of a text, so that what hides behind Unicode tricks or inline escapes is
//! scanned in the form a reader would see.
//!
//! A layer (the input, or a decoded payload) can have these views:
//!
//! * **unicode**: NFKC (full-width and mathematical letters become ASCII), look-alike letters
//!   folded to the ASCII letter they imitate (the Unicode TR39 confusables skeleton, resolved
//!   to the ASCII letter of the same case, so a Cyrillic `І` is `I`, never `l`), and invisible
//!   characters (zero-width, bidi controls, soft hyphen, tag characters, variation selectors, …)
//!   removed. ASCII is never changed, so digits never turn into letters: the skeleton's own
//!   `0`→`O` and `1`→`l` do not apply to text that was plain ASCII already.
//! * **escapes**: percent-escapes (`%41`), HTML character references (`&#x41;`, `&#65;`,
//!   `&amp;`), JSON and C escapes (`\u0041`, `\x41`) and quoted-printable (`=41`, soft line
//!   breaks) decoded in place. Nested escapes are decoded by the next view.
//! * **spaced**: runs of single characters kept apart by separators (`A K I A …`, `A-K-I-A`,
//!   one per line), or of short chunks with capitals or digits (`AKIA IOSF ODNN …`), joined up.
//! * **reversed**: the layer read backwards.
//!
//! Every view is scanned as a layer of its own (the first two by every detector, the last two
//! by the secret detectors only: joined or reversed prose is not personal data or advice).
//! A view is only built when it differs from its layer, so plain ASCII text with nothing to
//! decode costs one `is_ascii` pass, a byte search for escape introducers, one pass of bit
//! masks for spaced-out chunks (read byte by byte only where enough of them cluster) and a
//! literal search for what reads as a token or key name backwards. Views are charged
//! to their own byte budget and nest at most [`MAX_VIEW_NESTING`] deep; what cannot be built
//! within them marks the scan truncated.

use std::sync::LazyLock;

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use super::Ctx;

mod spaced;
#[cfg(test)]
mod tests;

pub(super) use spaced::spaced_view;

/// How many views can be nested (an escape view of a unicode view of …).
pub(super) const MAX_VIEW_NESTING: usize = 4;

/// Shortest run of separated single characters joined by the spaced view.
const MIN_SPACED: usize = 8;
/// Fewest characters in a chain of grouped chunks joined by the spaced view.
const MIN_GROUPED: usize = 12;

/// A view: its bytes and, per segment, where the segment starts in the layer it was made from
/// (`(view offset, layer offset)`, ascending).
pub(super) struct View {
    pub(super) bytes: Vec<u8>,
    pub(super) map: Vec<(usize, usize)>,
    /// Where the view differs from its layer (view offsets).
    changes: Vec<(usize, usize)>,
}

/// Bytes of context scanned on each side of a change: enough for a key name before its
/// value, a token around a hidden character, a phrase around a folded word.
const CONTEXT: usize = 256;

impl View {
    /// The parts of the view worth scanning: each change with [`CONTEXT`] bytes on each side,
    /// overlapping parts merged, cut at UTF-8 character boundaries. The rest of the view is
    /// its layer unchanged, scanned already.
    pub(super) fn windows(&self) -> Vec<(usize, usize)> {
        let len = self.bytes.len();
        let cont = |i: usize| self.bytes.get(i).is_some_and(|&b| (b & 0xC0) == 0x80);
        let mut out: Vec<(usize, usize)> = Vec::new();
        for &(a, b) in &self.changes {
            let mut lo = a.saturating_sub(CONTEXT);
            let mut hi = (b + CONTEXT).min(len);
            while lo > 0 && cont(lo) {
                lo -= 1;
            }
            while hi < len && cont(hi) {
                hi += 1;
            }
            match out.last_mut() {
                Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        out
    }
}

/// Where a scanned view window comes from: the view's map and the window's start in it.
pub(super) struct Frame {
    pub(super) map: Vec<(usize, usize)>,
    pub(super) base: usize,
}

/// Builds a view segment by segment, recording where each segment came from.
struct Builder {
    out: Vec<u8>,
    map: Vec<(usize, usize)>,
    changed: bool,
    changes: Vec<(usize, usize)>,
}

impl Builder {
    fn new(cap: usize) -> Self {
        Self {
            out: Vec::with_capacity(cap),
            map: Vec::new(),
            changed: false,
            changes: Vec::new(),
        }
    }

    /// Note that the bytes pushed next come from layer offset `raw`.
    fn mark(&mut self, raw: usize) {
        let v = self.out.len();
        if let Some(&(lv, lr)) = self.map.last() {
            if lr + (v - lv) == raw {
                return;
            }
        }
        self.map.push((v, raw));
    }

    /// Copy unchanged bytes that start at layer offset `raw`.
    fn keep(&mut self, raw: usize, b: &[u8]) {
        self.mark(raw);
        self.out.extend_from_slice(b);
    }

    /// Put `b` in place of the layer bytes at `raw`.
    fn put(&mut self, raw: usize, b: &[u8]) {
        let at = self.out.len();
        self.map.push((at, raw));
        self.out.extend_from_slice(b);
        self.changed = true;
        match self.changes.last_mut() {
            Some(last) if last.1 + CONTEXT >= at => last.1 = at + b.len(),
            _ => self.changes.push((at, at + b.len())),
        }
    }

    fn finish(self) -> Option<View> {
        self.changed.then_some(View {
            bytes: self.out,
            map: self.map,
            changes: self.changes,
        })
    }
}

/// The layer offset a view offset comes from.
pub(super) fn layer_offset(map: &[(usize, usize)], v: usize) -> usize {
    let i = map.partition_point(|&(vo, _)| vo <= v);
    match i.checked_sub(1).and_then(|j| map.get(j)) {
        Some(&(vo, ro)) => ro + (v - vo),
        None => v,
    }
}

/// True for default-ignorable code points (invisible when rendered): zero-width characters,
/// joiners, bidi controls, the soft hyphen, variation selectors, tag characters, fillers.
///
/// Hand-written from Unicode's `Default_Ignorable_Code_Point` property (DerivedCoreProperties):
/// `unicode-security` has the table but does not export it.
pub(super) fn invisible(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// How one non-ASCII character reads: unchanged, dropped, or as other (mostly ASCII) text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fold {
    Keep,
    Drop,
    Text(String),
}

/// The ASCII characters whose skeleton is each skeleton string, e.g. `"l"` → `1 I l |`.
static ASCII_BY_SKELETON: LazyLock<Vec<(String, Vec<char>)>> = LazyLock::new(|| {
    let mut by: Vec<(String, Vec<char>)> = Vec::new();
    for b in 0x21u8..0x7f {
        let c = char::from(b);
        let mut buf = [0u8; 4];
        let sk: String = unicode_security::skeleton(c.encode_utf8(&mut buf)).collect();
        match by.iter_mut().find(|(s, _)| *s == sk) {
            Some((_, v)) => v.push(c),
            None => by.push((sk, vec![c])),
        }
    }
    by
});

/// The ASCII character a look-alike stands for: among the ASCII characters with the same
/// skeleton, the one of the same kind (upper, lower, digit) as `c`.
fn resolve(c: char, skeleton: &str) -> Option<String> {
    let candidates = ASCII_BY_SKELETON
        .iter()
        .find(|(s, _)| s == skeleton)
        .map(|(_, v)| v.as_slice())
        .unwrap_or(&[]);
    let pick = |f: fn(&char) -> bool| candidates.iter().copied().find(f);
    let chosen = if c.is_uppercase() {
        pick(char::is_ascii_uppercase)
    } else if c.is_lowercase() {
        pick(char::is_ascii_lowercase)
    } else if c.is_numeric() {
        pick(char::is_ascii_digit)
    } else {
        None
    };
    match chosen {
        Some(ch) => Some(ch.to_string()),
        None if skeleton.is_ascii() && !skeleton.is_empty() => Some(skeleton.to_owned()),
        None => None,
    }
}

/// Fold one non-ASCII character (no cache).
fn fold_slow(c: char) -> Fold {
    if invisible(c) {
        return Fold::Drop;
    }
    let mut out = String::new();
    let mut changed = false;
    for n in std::iter::once(c).nfkc() {
        if n.is_ascii() {
            out.push(n);
            changed |= n != c;
            continue;
        }
        if invisible(n) || is_combining_mark(n) {
            changed = true;
            continue;
        }
        let mut buf = [0u8; 4];
        let sk: String = unicode_security::skeleton(n.encode_utf8(&mut buf))
            .filter(|k| !is_combining_mark(*k))
            .collect();
        match resolve(n, &sk) {
            Some(a) if (n.is_alphanumeric() || a.len() == 1) && a.is_ascii() => {
                out.push_str(&a);
                changed = true;
            }
            _ => {
                out.push(n);
                changed |= n != c;
            }
        }
    }
    if !changed {
        Fold::Keep
    } else if out.is_empty() {
        Fold::Drop
    } else {
        // ASCII, or partly folded (a compatibility form with letters that stay non-ASCII).
        Fold::Text(out)
    }
}

/// Folds of the Basic Multilingual Plane above ASCII, computed once: most text never leaves it.
static BMP: LazyLock<Vec<Fold>> = LazyLock::new(|| {
    (0x80u32..0x1_0000)
        .map(|u| char::from_u32(u).map_or(Fold::Keep, fold_slow))
        .collect()
});

/// Build the folding tables now rather than on the first non-ASCII text.
pub(super) fn warm() {
    LazyLock::force(&BMP);
}

/// Fold one non-ASCII character, from the table when it is in the BMP.
fn fold(c: char) -> Fold {
    let u = u32::from(c) as usize;
    match u.checked_sub(0x80).and_then(|i| BMP.get(i)) {
        Some(f) => f.clone(),
        None => fold_slow(c),
    }
}

/// The unicode view of a layer, when it has non-ASCII text that reads differently.
pub(super) fn unicode_view(hay: &[u8]) -> Option<View> {
    if hay.is_ascii() {
        return None;
    }
    let text = std::str::from_utf8(hay).ok()?;
    let mut b = Builder::new(hay.len());
    let mut run = 0usize; // start of the pending unchanged run
    for (i, c) in text.char_indices() {
        if c.is_ascii() {
            continue;
        }
        let f = fold(c);
        if f == Fold::Keep {
            continue;
        }
        if let Some(kept) = hay.get(run..i) {
            b.keep(run, kept);
        }
        match f {
            Fold::Text(s) => b.put(i, s.as_bytes()),
            Fold::Drop | Fold::Keep => b.put(i, b""),
        }
        run = i + c.len_utf8();
    }
    if let Some(kept) = hay.get(run..) {
        b.keep(run, kept);
    }
    b.finish()
}

/// Fold text for fingerprints: the unicode view's reading, then only ASCII letters and
/// digits, lowercased. Separators, case and look-alikes then do not change a secret.
pub(crate) fn canonical(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut push = |b: u8| {
        if b.is_ascii_alphanumeric() {
            out.push(b.to_ascii_lowercase());
        }
    };
    for c in text.chars() {
        if c.is_ascii() {
            push(c as u8);
            continue;
        }
        if let Fold::Text(s) = fold(c) {
            s.bytes().for_each(&mut push);
        }
    }
    out
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn hex_at(hay: &[u8], i: usize, n: usize) -> Option<u32> {
    let digits = hay.get(i..i + n)?;
    digits
        .iter()
        .try_fold(0u32, |acc, &d| Some(acc * 16 + u32::from(hex_val(d)?)))
}

/// Quoted-printable needs `=` and two upper-case hex digits (lower case is not QP).
fn qp_at(hay: &[u8], i: usize) -> Option<u8> {
    let pair = hay.get(i + 1..i + 3)?;
    if pair
        .iter()
        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b))
    {
        Some(u8::try_from(hex_at(hay, i + 1, 2)?).ok()?)
    } else {
        None
    }
}

/// One escape at `hay[i]`: its decoded bytes and its length in the layer.
fn escape_at(hay: &[u8], i: usize, qp: bool, out: &mut Vec<u8>) -> Option<usize> {
    out.clear();
    match hay.get(i)? {
        b'%' => {
            if let (Some(b'u'), Some(u)) = (hay.get(i + 1), hex_at(hay, i + 2, 4)) {
                push_char(out, u);
                return Some(6);
            }
            out.push(u8::try_from(hex_at(hay, i + 1, 2)?).ok()?);
            Some(3)
        }
        b'\\' => match hay.get(i + 1)? {
            b'u' => {
                let hi = hex_at(hay, i + 2, 4)?;
                if (0xD800..0xDC00).contains(&hi) {
                    let lo = (hay.get(i + 6..i + 8) == Some(b"\\u"))
                        .then(|| hex_at(hay, i + 8, 4))
                        .flatten()
                        .filter(|lo| (0xDC00..0xE000).contains(lo));
                    if let Some(lo) = lo {
                        push_char(out, 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
                        return Some(12);
                    }
                }
                push_char(out, hi);
                Some(6)
            }
            b'x' => {
                out.push(u8::try_from(hex_at(hay, i + 2, 2)?).ok()?);
                Some(4)
            }
            _ => None,
        },
        b'&' => {
            // A character reference is short: `&` name or `#`digits, then `;`.
            let window = hay.get(i..hay.len().min(i + 40))?;
            let end = window.iter().position(|&b| b == b';')?;
            let entity = std::str::from_utf8(window.get(..=end)?).ok()?;
            if entity.len() < 3
                || entity
                    .bytes()
                    .skip(1)
                    .take(end - 1)
                    .any(|b| !b.is_ascii_alphanumeric() && b != b'#')
            {
                return None;
            }
            let decoded = html_escape::decode_html_entities(entity);
            if decoded == entity {
                return None;
            }
            out.extend_from_slice(decoded.as_bytes());
            Some(entity.len())
        }
        b'=' if qp => {
            if let Some(byte) = qp_at(hay, i) {
                out.push(byte);
                return Some(3);
            }
            // Soft line break.
            match hay.get(i + 1..i + 3) {
                Some(b"\r\n") => Some(3),
                _ if hay.get(i + 1) == Some(&b'\n') => Some(2),
                _ => None,
            }
        }
        _ => None,
    }
}

fn push_char(out: &mut Vec<u8>, u: u32) {
    let c = char::from_u32(u).unwrap_or(char::REPLACEMENT_CHARACTER);
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// Quoted-printable is decoded only when the layer has at least this many `=XX` escapes
/// directly followed by another (`=C3=A9=20`); `KEY=ABCD` or `a=10 b=20` is not quoted-printable.
const MIN_QP: usize = 2;

/// The escapes view of a layer, when it has escapes that decode.
pub(super) fn escapes_view(hay: &[u8]) -> Option<View> {
    // Quoted-printable escapes come in runs (`=41=4B=49`); `a=10 b=20` is not one.
    let mut qp_count = 0usize;
    let any = memchr::memchr3(b'%', b'&', b'\\', hay).is_some();
    for i in memchr::memchr_iter(b'=', hay) {
        if qp_at(hay, i).is_some() && hay.get(i + 3) == Some(&b'=') && qp_at(hay, i + 3).is_some() {
            qp_count += 1;
            if qp_count >= MIN_QP {
                break;
            }
        }
    }
    let qp = qp_count >= MIN_QP;
    if !any && !qp {
        return None;
    }
    let mut b = Builder::new(hay.len());
    let mut scratch = Vec::new();
    let (mut i, mut run) = (0usize, 0usize);
    while i < hay.len() {
        let next = hay
            .get(i..)
            .and_then(|h| {
                h.iter()
                    .position(|&c| matches!(c, b'%' | b'&' | b'\\') || (qp && c == b'='))
            })
            .map(|k| i + k);
        let Some(at) = next else { break };
        match escape_at(hay, at, qp, &mut scratch) {
            Some(len) => {
                if let Some(kept) = hay.get(run..at) {
                    b.keep(run, kept);
                }
                b.put(at, &scratch);
                i = at + len;
                run = i;
            }
            None => i = at + 1,
        }
    }
    if let Some(kept) = hay.get(run..) {
        b.keep(run, kept);
    }
    b.finish()
}

/// The layer read backwards (by character when it is UTF-8, else by byte).
pub(super) fn reversed(hay: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(hay) {
        Ok(s) if !s.is_ascii() => s.chars().rev().collect::<String>().into_bytes(),
        _ => hay.iter().rev().copied().collect(),
    }
}

/// Scan the windows of a view (see [`View::windows`]), each charged to the view budget; what
/// the budget cannot hold marks the scan truncated.
fn scan_windows(view: View, ctx: &mut Ctx<'_>, mut scan: impl FnMut(&mut Ctx<'_>, &[u8])) {
    let windows = view.windows();
    let bytes = view.bytes;
    ctx.chain.push(Some(Frame {
        map: view.map,
        base: 0,
    }));
    for (a, b) in windows {
        let Some(part) = bytes.get(a..b) else {
            continue;
        };
        if part.len() > ctx.view_budget {
            ctx.out.truncated = true;
            break;
        }
        ctx.view_budget -= part.len();
        if let Some(Some(frame)) = ctx.chain.last_mut() {
            frame.base = a;
        }
        scan(ctx, part);
        if ctx.saturated() {
            break;
        }
    }
    ctx.chain.pop();
}

/// The literal starts of the token shapes (see `secrets::TOKEN_PATTERNS`), written backwards.
static REVERSED_TOKENS: LazyLock<Option<regex::bytes::Regex>> = LazyLock::new(|| {
    regex::bytes::Regex::new(concat!(
        r"(?-u)YEK ETAVIRP|AIKA|AISA|_[pousr]hg|_tap_buhtig|-[baprse]xox|secivres/moc\.kcals",
        r"|_evil_[sr]k|azIA|Jye|-taplg|_mpn|-ks|\.GS|reraeB|reraeb|RERAEB|cisaB|cisab|CISAB",
    ))
    .ok()
});

/// The words that make a key name a secret's (see `secrets::ENV_KEY`), written backwards, in
/// lower case: they are looked for in text lowered a block at a time (a case-insensitive
/// search of several literals is several times slower than a case-sensitive one).
const REVERSED_KEY_WORDS: &str = "terces|nekot|ssap|dwp|yek|laitnederc|sderc";

static REVERSED_KEYS: LazyLock<Option<regex::bytes::Regex>> =
    LazyLock::new(|| regex::bytes::Regex::new(&format!("(?-u){REVERSED_KEY_WORDS}")).ok());

/// Whether `hay` holds a key word written backwards, in any case of its ASCII letters (as the
/// regex `(?i-u)terces|nekot|…` would tell).
fn reversed_key(hay: &[u8]) -> bool {
    const BLOCK: usize = 4096;
    /// More than the longest word, so a word across two blocks is in one of them whole.
    const OVERLAP: usize = 16;
    let Some(re) = REVERSED_KEYS.as_ref() else {
        return true;
    };
    let mut buf = [0u8; BLOCK + OVERLAP];
    let mut at = 0;
    while at < hay.len() {
        let part = hay
            .get(at..hay.len().min(at + BLOCK + OVERLAP))
            .unwrap_or_default();
        let Some(lowered) = buf.get_mut(..part.len()) else {
            return true;
        };
        for (l, &b) in lowered.iter_mut().zip(part) {
            *l = b.to_ascii_lowercase();
        }
        if re.is_match(lowered) {
            return true;
        }
        at += BLOCK;
    }
    false
}

/// A function that builds one kind of view.
type MakeView = fn(&[u8]) -> Option<View>;

/// Build and scan the views of one layer.
pub(super) fn scan_views(hay: &[u8], depth: u8, ctx: &mut Ctx<'_>) {
    let nesting = ctx.chain.len();
    let full: [(&'static str, MakeView); 2] =
        [("unicode", unicode_view), ("escapes", escapes_view)];
    for (name, make) in full {
        if ctx.saturated() {
            return;
        }
        let Some(view) = make(hay) else { continue };
        if nesting >= MAX_VIEW_NESTING {
            ctx.out.truncated = true;
            continue;
        }
        scan_windows(view, ctx, |ctx, part| {
            ctx.scan_layer(part, depth, Some(name))
        });
    }
    if ctx.saturated() || !ctx.wants(super::LABEL_SECRET) {
        return;
    }
    if let Some(view) = spaced_view(hay) {
        scan_windows(view, ctx, |ctx, part| {
            ctx.scan_secrets(part, Some("spaced"), (true, depth), true);
        });
    }
    // Read backwards only when the layer holds the start of a token written backwards: most
    // text holds none, and this check is a literal search.
    let backwards_token = REVERSED_TOKENS.as_ref().is_none_or(|re| re.is_match(hay));
    let env = reversed_key(hay);
    if !backwards_token && !env {
        return;
    }
    let back = reversed(hay);
    // Key names (`KEY=value`) are only looked for backwards when the layer holds one
    // written backwards: the key pass is the costly one, and most text has none.
    ctx.chain.push(None);
    ctx.scan_secrets(&back, Some("reversed"), (false, depth), env);
    ctx.chain.pop();
}
