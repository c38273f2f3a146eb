//! Small byte helpers shared by the detectors: safe slicing, neighbours and redaction.

/// The bytes `h[a..b]`, or an empty slice when the range is out of bounds.
pub(super) fn slice(h: &[u8], a: usize, b: usize) -> &[u8] {
    h.get(a..b).unwrap_or(&[])
}

/// The byte at `i`, if any.
pub(super) fn at(h: &[u8], i: usize) -> Option<u8> {
    h.get(i).copied()
}

/// The byte just before `i`, if any.
pub(super) fn before(h: &[u8], i: usize) -> Option<u8> {
    i.checked_sub(1).and_then(|j| h.get(j).copied())
}

/// True for ASCII letters, digits and `_`.
pub(super) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// True when `b` is `Some` byte accepted by `f`.
pub(super) fn is(b: Option<u8>, f: impl Fn(u8) -> bool) -> bool {
    b.is_some_and(f)
}

/// A redacted excerpt: at most `min(4, len / 4)` leading characters, then `…(len)`.
///
/// Short matches show little or nothing, so an excerpt never holds a whole secret.
pub(super) fn redact(m: &[u8]) -> String {
    let show = (m.len() / 4).min(4);
    let mut s = String::with_capacity(show + 12);
    for &b in m.iter().take(show) {
        s.push(if b.is_ascii_graphic() {
            char::from(b)
        } else {
            '?'
        });
    }
    s.push('…');
    s.push('(');
    s.push_str(&m.len().to_string());
    s.push(')');
    s
}

/// A loggable rendering of a short phrase: printable ASCII kept, runs of anything
/// else collapsed to one space, cut to `cap` bytes.
pub(super) fn phrase(m: &[u8], cap: usize) -> String {
    let mut s = String::with_capacity(cap.min(m.len()) + 3);
    let mut space = false;
    for &b in m {
        if s.len() >= cap {
            s.push('…');
            break;
        }
        if b.is_ascii_graphic() {
            s.push(char::from(b));
            space = false;
        } else if !space {
            s.push(' ');
            space = true;
        }
    }
    s.trim_end().to_owned()
}

/// True when `h` contains `needle`, ignoring ASCII case (`needle` must be lowercase).
pub(super) fn contains_ci(h: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || h.windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// True when `h` starts with `prefix`, ignoring ASCII case.
pub(super) fn starts_with_ci(h: &[u8], prefix: &[u8]) -> bool {
    h.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_never_shows_short_values_whole() {
        assert_eq!(redact(b"pass"), "p…(4)");
        assert_eq!(redact(b"abc"), "…(3)");
        assert_eq!(redact(b"AKIAABCDEFGHIJKLMNOP"), "AKIA…(20)");
        assert_eq!(redact(b"\x00\x01ab\xffcdefgh"), "??…(11)");
    }

    #[test]
    fn phrase_is_capped_and_clean() {
        assert_eq!(phrase(b"chmod\n\t 777", 40), "chmod 777");
        assert_eq!(phrase(b"abcdefgh", 4), "abcd…");
    }
}
