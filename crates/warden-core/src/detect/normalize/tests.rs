//! The fast paths of the views against the plain readings they replace: the spaced view
//! found from bit masks of chunk starts against the byte-by-byte reading of the whole text,
//! and the lowered search for key words written backwards against a case-insensitive regex.

use proptest::prelude::*;

use super::{reversed_key, spaced_view, Builder, View, MIN_GROUPED, MIN_SPACED};

/// The separators between the characters of a spaced-out token, as a table.
static SEPARATOR: [bool; 256] = {
    let mut t = [false; 256];
    let seps = b" \t\n\r-._|,/*+\"'";
    let mut i = 0;
    while i < seps.len() {
        t[seps[i] as usize] = true;
        i += 1;
    }
    t
};

/// Separators between the characters of a spaced-out token.
fn separator(b: u8) -> bool {
    SEPARATOR[usize::from(b)]
}

/// The longest chunk of a token written in groups (`AKIA IOSF ODNN …`).
const MAX_CHUNK: usize = 6;

/// The spaced view: tokens written apart, joined up. Everything else is kept. A chain is
/// chunks with separators (at most three bytes) between them: at least [`MIN_SPACED`] single
/// characters (`A K I A …`, one per line), or at least three chunks of up to [`MAX_CHUNK`]
/// letters and digits that hold a capital or a digit (`AKIA IOSF ODNN 7EXA MPLE`) and
/// [`MIN_GROUPED`] characters in all. Lower-case words never chain, so prose stays as it is.
fn reference_spaced_view(hay: &[u8]) -> Option<View> {
    // The end of the chunk that starts at `i`, if one does.
    let chunk = |i: usize| -> Option<usize> {
        if i > 0 && !hay.get(i - 1).is_some_and(|&p| separator(p)) {
            return None;
        }
        let rest = hay.get(i..)?;
        let len = rest
            .iter()
            .take(MAX_CHUNK + 1)
            .position(|&c| separator(c) || !c.is_ascii_graphic())
            .unwrap_or(rest.len().min(MAX_CHUNK + 1));
        let s = rest.get(..len)?;
        let ok = len == 1
            || (len <= MAX_CHUNK
                && s.iter().all(u8::is_ascii_alphanumeric)
                && s.iter()
                    .any(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
        (len > 0 && ok).then_some(i + len)
    };
    let mut b = Builder::new(hay.len());
    let (mut i, mut run) = (0usize, 0usize);
    while i < hay.len() {
        // Only a byte after a separator can start a chunk; most bytes are skipped here.
        let starts = i == 0 || hay.get(i - 1).is_some_and(|&p| SEPARATOR[usize::from(p)]);
        let Some(first_end) = starts.then(|| chunk(i)).flatten() else {
            i += 1;
            continue;
        };
        // Collect the chain of chunks starting at `i`.
        // Every chunk of a chain is followed by the same separator (the chain's gap), except
        // the last, which may end the text or a line: `T-1100` after a column of letters, one
        // per line, is not part of it.
        let mut chunks = vec![(i, first_end)];
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
            let Some(e) = chunk(j + k) else { break };
            let after = hay.get(e..).unwrap_or_default();
            let ends = after.first().is_none_or(u8::is_ascii_whitespace) || after.starts_with(gap);
            if !ends {
                break;
            }
            chain_gap = Some(gap);
            chunks.push((j + k, e));
            j = e;
        }
        let total: usize = chunks.iter().map(|(a, e)| e - a).sum();
        let singles = total == chunks.len();
        if (singles && chunks.len() >= MIN_SPACED) || (chunks.len() >= 3 && total >= MIN_GROUPED) {
            if let Some(kept) = hay.get(run..i) {
                b.keep(run, kept);
            }
            let joined: Vec<u8> = chunks
                .iter()
                .flat_map(|&(a, e)| hay.get(a..e).unwrap_or_default().iter().copied())
                .collect();
            b.put(i, &joined);
            run = j;
        }
        i = j.max(i + 1);
    }
    if let Some(kept) = hay.get(run..) {
        b.keep(run, kept);
    }
    b.finish()
}

fn same(a: Option<View>, b: Option<View>) -> Result<(), TestCaseError> {
    match (a, b) {
        (None, None) => Ok(()),
        (Some(a), Some(b)) => {
            prop_assert_eq!(&a.bytes, &b.bytes);
            prop_assert_eq!(&a.map, &b.map);
            prop_assert_eq!(a.windows(), b.windows());
            Ok(())
        }
        (a, b) => {
            prop_assert!(
                false,
                "one view only: {:?} {:?}",
                a.map(|v| v.bytes),
                b.map(|v| v.bytes)
            );
            Ok(())
        }
    }
}

/// Pieces of text: ASCII words, capitals and digits in groups, single characters, every
/// separator, escapes, base64, non-ASCII letters and invisible characters.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,8}",
        "[A-Z0-9]{1,7}",
        "[A-Za-z0-9]",
        "[ \t\n\r._|,/*+\"'-]{1,4}",
        "[=:;()<>@#!?]",
        "(%[0-9A-F]{2}|&#x?[0-9]{2,3};|\\\\u00[0-9a-f]{2}|=[0-9A-F]{2})",
        "[A-Za-z0-9+/]{20,40}={0,2}",
        "[éАΑ—…\u{200B}\u{FF21}]",
        "(AKIA|ghp_|sk_live_|AIKA|YEK|terces|NEKOT|sSaP|Dwp)",
    ]
}

fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(piece(), 0..80).prop_map(|p| p.concat())
}

/// Spaced-out tokens: characters or groups with one separator repeated between them.
fn spaced_text() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec("([A-Z0-9]{1,6}|[a-z]|[a-z]{2,3})", 1..20),
        "[ \t\n._|,/*+-]{1,3}",
        text(),
        text(),
    )
        .prop_map(|(chunks, gap, before, after)| format!("{before} {} {after}", chunks.join(&gap)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn spaced_view_fast_path_reads_as_the_whole_text(t in text()) {
        same(spaced_view(t.as_bytes()), reference_spaced_view(t.as_bytes()))?;
    }

    #[test]
    fn spaced_view_fast_path_joins_as_the_whole_text(t in spaced_text()) {
        same(spaced_view(t.as_bytes()), reference_spaced_view(t.as_bytes()))?;
    }

    #[test]
    fn reversed_key_search_is_case_insensitive(t in text(), pad in 0usize..5000) {
        let re = regex::bytes::Regex::new(&format!("(?i-u){}", super::REVERSED_KEY_WORDS)).ok();
        // Padding moves the text across the blocks of the lowered search.
        let padded = format!("{}{t}", " ".repeat(pad));
        for hay in [t.as_bytes(), padded.as_bytes()] {
            prop_assert_eq!(reversed_key(hay), re.as_ref().is_some_and(|re| re.is_match(hay)));
        }
    }
}

#[test]
fn spaced_view_fast_path_on_long_text() {
    // Chains across the 64-byte blocks of the masks, at every offset.
    for pad in 0..130 {
        for chain in [
            "A K I A I O S F O D N N",
            "AKIA-IOSF-ODNN-7EXA",
            "a.b.c.d.e.f.g.h.i",
            "1 2 3 4 5 6 7 x",
        ] {
            let t = format!(
                "{}{chain} tail",
                "x ".repeat(pad / 2) + &"y".repeat(pad % 2)
            );
            let fast = spaced_view(t.as_bytes()).map(|v| v.bytes);
            let slow = reference_spaced_view(t.as_bytes()).map(|v| v.bytes);
            assert_eq!(fast, slow, "{t:?}");
        }
    }
}
