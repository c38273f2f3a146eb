//! The spaced view: tokens written apart (`A K I A …`, `A-K-I-A`, one per line, or in groups
//! `AKIA IOSF ODNN …`), joined up.
//!
//! The view is found in one pass over the bytes with a class table; only a byte after a
//! separator can start a chunk, and a chunk that cannot belong to a chain (a lower-case word,
//! a long word) is skipped whole. Nothing is allocated unless a chain is joined.

use super::{Builder, View, MIN_GROUPED, MIN_SPACED};

/// Separators between the characters of a spaced-out token.
const SEP: u8 = 1;
/// A printable ASCII byte that is not a separator: it can be part of a chunk.
const GRAPH: u8 = 2;
/// An ASCII letter or digit.
const ALNUM: u8 = 4;
/// An upper-case ASCII letter or a digit: a chunk of several bytes needs one.
const STRONG: u8 = 8;

/// The class of every byte (see [`SEP`], [`GRAPH`], [`ALNUM`], [`STRONG`]).
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let seps = b" \t\n\r-._|,/*+\"'";
    let mut i = 0;
    while i < seps.len() {
        t[seps[i] as usize] = SEP;
        i += 1;
    }
    let mut b = 0x21;
    while b < 0x7f {
        if t[b] == 0 {
            t[b] = GRAPH;
            let c = b as u8;
            if c.is_ascii_alphanumeric() {
                t[b] |= ALNUM;
            }
            if c.is_ascii_uppercase() || c.is_ascii_digit() {
                t[b] |= STRONG;
            }
        }
        b += 1;
    }
    t
};

fn class(hay: &[u8], i: usize) -> u8 {
    hay.get(i).map_or(0, |&b| CLASS[usize::from(b)])
}

/// True for the separators between the characters of a spaced-out token.
pub(super) fn separator(b: u8) -> bool {
    CLASS[usize::from(b)] & SEP != 0
}

/// The longest chunk of a token written in groups (`AKIA IOSF ODNN …`).
const MAX_CHUNK: usize = 6;

/// The chunk that starts at `i` (whose previous byte, if any, is a separator): its end, and
/// how many bytes of printable non-separators follow `i` (at most `MAX_CHUNK + 1`). A chunk
/// is one printable character, or up to [`MAX_CHUNK`] letters and digits with a capital or
/// a digit among them.
fn chunk(hay: &[u8], i: usize) -> (Option<usize>, usize) {
    let (mut len, mut every, mut any) = (0usize, ALNUM, 0u8);
    while len <= MAX_CHUNK {
        let c = class(hay, i + len);
        if c & GRAPH == 0 {
            break;
        }
        every &= c;
        any |= c;
        len += 1;
    }
    let ok = len == 1 || (len <= MAX_CHUNK && every & ALNUM != 0 && any & STRONG != 0);
    ((len > 0 && ok).then_some(i + len), len)
}

/// Two chunks of one chain start at most this many bytes apart (a chunk, then a gap).
const LINK: usize = MAX_CHUNK + 3;

/// The spaced view: tokens written apart, joined up. Everything else is kept. A chain is
/// chunks with separators (at most three bytes) between them: at least [`MIN_SPACED`] single
/// characters (`A K I A …`, one per line), or at least three chunks of up to [`MAX_CHUNK`]
/// letters and digits that hold a capital or a digit (`AKIA IOSF ODNN 7EXA MPLE`) and
/// [`MIN_GROUPED`] characters in all. Lower-case words never chain, so prose stays as it is.
///
/// The chunk starts are found 64 bytes at a time with bit masks; a chain's chunks are
/// consecutive starts at most [`LINK`] bytes apart, so only a cluster of such starts can hold
/// one (see [`may_chain`]), and only those clusters are read byte by byte (from their first start,
/// where the byte-by-byte reading of the whole text would start afresh too).
pub(in crate::detect) fn spaced_view(hay: &[u8]) -> Option<View> {
    let mut joiner = Joiner {
        hay,
        b: None,
        chunks: Vec::new(),
        run: 0,
    };
    // The current cluster: its first start, its last start and how many starts it has.
    let mut cluster: Option<(usize, usize, usize)> = None;
    for p in ChunkStarts::new(hay) {
        cluster = match cluster {
            Some((first, last, n)) if p - last <= LINK => Some((first, p, n + 1)),
            Some((first, last, n)) => {
                if may_chain(first, last, n) {
                    joiner.read(first, last);
                }
                Some((p, p, 1))
            }
            None => Some((p, p, 1)),
        };
    }
    if let Some((first, last, n)) = cluster {
        if may_chain(first, last, n) {
            joiner.read(first, last);
        }
    }
    let Joiner { b, run, .. } = joiner;
    let mut b = b?;
    if let Some(kept) = hay.get(run..) {
        b.keep(run, kept);
    }
    b.finish()
}

/// Whether a cluster of `n` chunk starts from `first` to `last` can hold a chain long enough
/// to join: [`MIN_SPACED`] single characters, or three chunks or more of [`MIN_GROUPED`]
/// characters in all. Such a chain of `m` chunks has at least `m - 1` gap bytes and at most
/// [`MAX_CHUNK`] bytes after its last start, so its starts are at least
/// `MIN_GROUPED + m - 1 - MAX_CHUNK` bytes apart.
fn may_chain(first: usize, last: usize, n: usize) -> bool {
    n >= MIN_SPACED || (n >= 3 && last - first + MAX_CHUNK + 1 >= MIN_GROUPED + 3)
}

/// Joins the chains of a layer into its spaced view, byte by byte.
struct Joiner<'h> {
    hay: &'h [u8],
    /// The view, once a chain was joined.
    b: Option<Builder>,
    /// The chunks of the chain being read.
    chunks: Vec<(usize, usize)>,
    /// Start of the layer bytes not yet copied to the view.
    run: usize,
}

impl Joiner<'_> {
    /// Read from `from` (a chunk start where the reading starts afresh) until past `last`.
    fn read(&mut self, from: usize, last: usize) {
        let hay = self.hay;
        let mut i = from;
        // Whether `hay[i - 1]` is a separator (true at a chunk start).
        let mut after_sep = true;
        while let Some(&byte) = hay.get(i).filter(|_| i <= last) {
            let c = CLASS[usize::from(byte)];
            // Only a printable byte after a separator can start a chunk.
            if !after_sep || c & GRAPH == 0 {
                after_sep = c & SEP != 0;
                i += 1;
                continue;
            }
            let (first, len) = chunk(hay, i);
            let Some(first_end) = first else {
                // Not a chunk: no byte inside this word follows a separator.
                i += len.max(1);
                after_sep = false;
                continue;
            };
            let j = self.chain(i, first_end);
            i = j.max(i + 1);
            after_sep = i
                .checked_sub(1)
                .and_then(|p| hay.get(p))
                .is_some_and(|&p| separator(p));
        }
    }

    /// Collect the chain of chunks starting at `i` (its first chunk ends at `first_end`), join
    /// it into the view when it is long enough, and return where it ends.
    fn chain(&mut self, i: usize, first_end: usize) -> usize {
        let hay = self.hay;
        // Every chunk of a chain is followed by the same separator (the chain's gap), except
        // the last, which may end the text or a line: `T-1100` after a column of letters, one
        // per line, is not part of it.
        self.chunks.clear();
        self.chunks.push((i, first_end));
        let mut j = first_end;
        let mut chain_gap: Option<&[u8]> = None;
        loop {
            let len = hay
                .get(j..hay.len().min(j + 4))
                .and_then(|g| g.iter().position(|&c| !separator(c)));
            let Some(k) = len.filter(|k| (1..=3).contains(k)) else {
                break;
            };
            let gap = hay.get(j..j + k).unwrap_or_default();
            if chain_gap.is_some_and(|g| g != gap) {
                break;
            }
            let Some(e) = chunk(hay, j + k).0 else { break };
            let after = hay.get(e..).unwrap_or_default();
            let ends = after.first().is_none_or(u8::is_ascii_whitespace) || after.starts_with(gap);
            if !ends {
                break;
            }
            chain_gap = Some(gap);
            self.chunks.push((j + k, e));
            j = e;
        }
        let chunks = &self.chunks;
        let total: usize = chunks.iter().map(|(a, e)| e - a).sum();
        let singles = total == chunks.len();
        if (singles && chunks.len() >= MIN_SPACED) || (chunks.len() >= 3 && total >= MIN_GROUPED) {
            let b = self.b.get_or_insert_with(|| Builder::new(hay.len()));
            if let Some(kept) = hay.get(self.run..i) {
                b.keep(self.run, kept);
            }
            let joined: Vec<u8> = chunks
                .iter()
                .flat_map(|&(a, e)| hay.get(a..e).unwrap_or_default().iter().copied())
                .collect();
            b.put(i, &joined);
            self.run = j;
        }
        j
    }
}

/// The class masks of up to 64 bytes: bit `k` is set when byte `k` is a separator, printable
/// (not a separator), a letter or digit, a capital or digit.
#[derive(Clone, Copy, Default)]
struct Masks {
    sep: u64,
    graph: u64,
    alnum: u64,
    strong: u64,
}

impl Masks {
    fn of(block: &[u8]) -> Self {
        let mut m = Self::default();
        for (j, eight) in block.chunks(8).take(8).enumerate() {
            // The classes of eight bytes, one per byte of `w`, then each class bit gathered
            // into eight mask bits by a multiplication.
            let mut w = 0u64;
            for (k, &b) in eight.iter().enumerate() {
                w |= u64::from(CLASS[usize::from(b)]) << (8 * k);
            }
            let plane = |bit: u32| {
                ((w >> bit) & 0x0101_0101_0101_0101).wrapping_mul(0x0102_0408_1020_4080) >> 56
            };
            let shift = 8 * j;
            m.sep |= plane(0) << shift;
            m.graph |= plane(1) << shift;
            m.alnum |= plane(2) << shift;
            m.strong |= plane(3) << shift;
        }
        m
    }
}

/// The positions where a chunk starts (see [`chunk`]), in order, found 64 bytes at a time.
struct ChunkStarts<'h> {
    hay: &'h [u8],
    /// Start of the current block.
    at: usize,
    cur: Masks,
    next: Masks,
    /// Whether the byte before the current block is a separator (true at the start).
    carry: bool,
    /// Chunk starts of the current block not yet returned.
    bits: u64,
}

impl<'h> ChunkStarts<'h> {
    fn new(hay: &'h [u8]) -> Self {
        let block = |a: usize| Masks::of(hay.get(a..).unwrap_or_default());
        let mut s = Self {
            hay,
            at: 0,
            cur: block(0),
            next: block(64),
            carry: true,
            bits: 0,
        };
        s.bits = s.starts();
        s
    }

    /// The chunk starts of the current block.
    fn starts(&self) -> u64 {
        let wide = |lo: u64, hi: u64| u128::from(lo) | (u128::from(hi) << 64);
        let graph = wide(self.cur.graph, self.next.graph);
        let alnum = wide(self.cur.alnum, self.next.alnum);
        let strong = wide(self.cur.strong, self.next.strong);
        let start = self.cur.graph & ((self.cur.sep << 1) | u64::from(self.carry));
        // One printable character.
        let mut ok = !(graph >> 1);
        // Two to six letters and digits, one a capital or a digit, then no printable byte.
        let (mut run, mut any) = (alnum & (alnum >> 1), strong | (strong >> 1));
        for k in 2..=MAX_CHUNK {
            ok |= run & any & !(graph >> k);
            run &= alnum >> k;
            any |= strong >> k;
        }
        // The bits of the current block.
        start & u64::try_from(ok & u128::from(u64::MAX)).unwrap_or(0)
    }
}

impl Iterator for ChunkStarts<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        loop {
            if self.bits != 0 {
                let k = self.bits.trailing_zeros() as usize;
                self.bits &= self.bits - 1;
                return Some(self.at + k);
            }
            if self.at + 64 >= self.hay.len() {
                return None;
            }
            self.carry = self.cur.sep >> 63 != 0;
            self.at += 64;
            self.cur = self.next;
            self.next = Masks::of(self.hay.get(self.at + 64..).unwrap_or_default());
            self.bits = self.starts();
        }
    }
}
