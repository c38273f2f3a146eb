//! The other spelling of a path or URI: what an upstream is likely to read when it is handed
//! the value as written.
//!
//! `docs/public/../../secrets/key`, `secrets%2Fkey`, `secrets//key`, `SECRETS\key.`,
//! `DEMO://resource/static/../dynamic/blob/%39` name the same thing as their canonical form
//! (`secrets/key`, `demo://resource/dynamic/blob/9`). Label rules are matched against the
//! canonical form (what an upstream reads), and against the value as written too: its rule hits
//! always count, and its default labels when it carries percent-escapes (an upstream that does
//! not decode them reads another name). A resource is inside a mission's patterns when its
//! canonical form is, and, when it carries percent-escapes, the value as written too. A value
//! an upstream takes literally is then labelled at least as it would be; one it resolves cannot
//! pass for another.
//!
//! The canonical form:
//! - compatibility-normalised (NFKC): `．．／` is `../`, `ｓｅｃｒｅｔｓ` is `secrets`;
//! - percent-escapes decoded (repeatedly, at most [`MAX_DECODES`] times) as a lenient decoder
//!   reads them: an overlong UTF-8 sequence is the character it encodes (`%c0%ae` is `.`), any
//!   other byte that is not UTF-8 is U+FFFD; each round is normalised again;
//! - cut at its first NUL, as a C-based upstream reads it (`.env%00.md` is `.env`);
//! - lowercased, for a store that ignores case ([`Fold::Case`]);
//! - for a URL (`scheme://…`): parsed as WHATWG URLs are (the `url` crate): scheme and host
//!   lowercased, `.` and `..` segments resolved;
//! - for a path: backslashes read as slashes, repeated slashes collapsed, `.` and `..` resolved
//!   (never above the start), trailing dots and spaces of each segment dropped (as Windows
//!   does).

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

/// The most rounds of percent-decoding.
pub const MAX_DECODES: usize = 4;

/// The longest value canonicalised; a longer one is taken as written.
const MAX_LEN: usize = 4096;

/// Whether the store a value names tells names apart by case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fold {
    /// `A` and `a` are different names.
    #[default]
    None,
    /// `A` and `a` are the same name: the canonical form is lowercased.
    Case,
}

/// `value` as written and, when it differs, its canonical form (see the module doc).
pub fn spellings(value: &str) -> Vec<Cow<'_, str>> {
    let mut out = vec![Cow::Borrowed(value)];
    if let Some(c) = canonical(value) {
        out.push(Cow::Owned(c));
    }
    out
}

/// The canonical form of `value` in a store that tells case apart, when it differs from
/// `value`.
pub fn canonical(value: &str) -> Option<String> {
    canonical_in(value, Fold::None)
}

/// The canonical form of `value` in a store that folds as `fold` says, when it differs from
/// `value`.
pub fn canonical_in(value: &str, fold: Fold) -> Option<String> {
    if value.len() > MAX_LEN || !value.bytes().any(needs_look) {
        return None;
    }
    let mut text: Cow<'_, str> = nfkc(value);
    for _ in 0..MAX_DECODES {
        if !text.contains('%') {
            break;
        }
        let bytes: Vec<u8> = percent_decode_str(&text).collect();
        let decoded = lenient_utf8(&bytes);
        if decoded == text {
            break;
        }
        text = Cow::Owned(nfkc(&decoded).into_owned());
    }
    // A C-based upstream reads a name up to its first NUL (`.env%00.md` is `.env`).
    if let Some(i) = text.find('\0') {
        text = Cow::Owned(text[..i].to_string());
    }
    let mut c = if crate::catalog::has_scheme(&text) {
        url_form(&text).unwrap_or_else(|| text.to_string())
    } else {
        path_form(&text)
    };
    if fold == Fold::Case {
        c = c.to_lowercase();
    }
    (c != value).then_some(c)
}

/// `s` in Unicode normalisation form KC, borrowed when it already is.
fn nfkc(s: &str) -> Cow<'_, str> {
    use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};
    if s.is_ascii() || is_nfkc_quick(s.chars()) == IsNormalized::Yes {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.nfkc().collect())
    }
}

/// `bytes` as a lenient UTF-8 decoder reads them: valid sequences as themselves, an overlong
/// two- or three-byte sequence as the character it encodes, anything else as U+FFFD.
///
/// Written here because decoders that accept overlong forms are what path-traversal filters
/// were bypassed with (`%c0%ae%c0%ae/`); no maintained crate decodes them on purpose.
fn lenient_utf8(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).unwrap_or_default());
                let cont = |i: usize| bad.get(i).is_some_and(|b| b & 0xC0 == 0x80);
                let (ch, used) = match bad.first() {
                    Some(&b0 @ (0xC0 | 0xC1)) if cont(1) => (
                        char::from_u32(((u32::from(b0) & 0x1F) << 6) | (u32::from(bad[1]) & 0x3F)),
                        2,
                    ),
                    Some(0xE0) if cont(1) && cont(2) && bad[1] < 0xA0 => (
                        char::from_u32(
                            ((u32::from(bad[1]) & 0x3F) << 6) | (u32::from(bad[2]) & 0x3F),
                        ),
                        3,
                    ),
                    _ => (None, e.error_len().unwrap_or(bad.len()).max(1)),
                };
                out.push(ch.unwrap_or(char::REPLACEMENT_CHARACTER));
                rest = &bad[used.min(bad.len())..];
            }
        }
    }
    out
}

/// Whether a byte may make the canonical form differ.
fn needs_look(b: u8) -> bool {
    matches!(b, b'%' | b'.' | b'/' | b'\\' | b' ' | 0) || b.is_ascii_uppercase() || !b.is_ascii()
}

fn url_form(s: &str) -> Option<String> {
    let mut u = url::Url::parse(s).ok()?;
    if let Some(host) = u.host_str() {
        let lower = host.to_ascii_lowercase();
        if lower != host {
            u.set_host(Some(&lower)).ok()?;
        }
    }
    Some(u.to_string())
}

fn path_form(s: &str) -> String {
    let s = s.replace('\\', "/");
    let absolute = s.starts_with('/');
    let mut kept: Vec<&str> = Vec::new();
    for seg in s.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            _ => {
                let trimmed = seg.trim_end_matches(['.', ' ']);
                if !trimmed.is_empty() {
                    kept.push(trimmed);
                }
            }
        }
    }
    let joined = kept.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> String {
        canonical(s).unwrap_or_else(|| s.to_string())
    }

    #[test]
    fn paths_spelled_another_way_reach_one_form() {
        for (written, canonical) in [
            ("secrets/key", "secrets/key"),
            ("docs/public/../../secrets/key", "secrets/key"),
            ("./secrets//key", "secrets/key"),
            ("secrets%2Fkey", "secrets/key"),
            ("secrets%252Fkey", "secrets/key"),
            ("%2e%2e/secrets/key", "secrets/key"),
            ("secrets\\key", "secrets/key"),
            ("secrets/key. . ", "secrets/key"),
            ("/srv/app/../.env", "/srv/.env"),
            ("../../../etc/passwd", "etc/passwd"),
            ("docs/public/readme.md", "docs/public/readme.md"),
        ] {
            assert_eq!(c(written), canonical, "{written}");
        }
    }

    #[test]
    fn urls_spelled_another_way_reach_one_form() {
        for (written, canonical) in [
            (
                "DEMO://resource/static/../dynamic/blob/%39",
                "demo://resource/dynamic/blob/9",
            ),
            (
                "demo://resource/dynamic/blob/9",
                "demo://resource/dynamic/blob/9",
            ),
            ("HTTPS://Example.COM/a/./b/../c", "https://example.com/a/c"),
            (
                "https://example.com/%2e%2e/admin",
                "https://example.com/admin",
            ),
        ] {
            assert_eq!(c(written), canonical, "{written}");
        }
    }

    #[test]
    fn a_value_already_canonical_has_one_spelling() {
        assert_eq!(spellings("logs:auth").len(), 1);
        assert_eq!(spellings("eng-help").len(), 1);
        assert_eq!(spellings("secrets/../x").len(), 2);
        // Not UTF-8 once decoded: what a lenient decoder reads.
        assert_eq!(c("a%ffb"), "a\u{fffd}b");
    }

    #[test]
    fn overlong_and_compatibility_spellings_reach_one_form() {
        for (written, canonical) in [
            (
                "docs/public/%c0%ae%c0%ae/%c0%ae%c0%ae/secrets/key",
                "secrets/key",
            ),
            (
                "docs/public/%e0%80%ae%e0%80%ae/../secrets/key",
                "secrets/key",
            ),
            ("docs/public/%c0%af../../secrets/key", "secrets/key"),
            ("docs/public/．．/．．/secrets/key", "secrets/key"),
            (
                "docs/public/%EF%BC%8E%EF%BC%8E/../secrets/key",
                "secrets/key",
            ),
            ("ｓｅｃｒｅｔｓ／key", "secrets/key"),
            ("docs／public∕readme", "docs/public∕readme"),
            ("secrets/key%00.md", "secrets/key"),
            ("secrets/key\0.txt", "secrets/key"),
        ] {
            assert_eq!(c(written), canonical, "{written}");
        }
    }

    #[test]
    fn a_store_that_ignores_case_reads_one_name() {
        let f = |s: &str| canonical_in(s, Fold::Case).unwrap_or_else(|| s.to_string());
        assert_eq!(f("services/billing/.ENV"), "services/billing/.env");
        assert_eq!(f("SECRETS/../Secrets/Key."), "secrets/key");
        assert_eq!(c("services/billing/.ENV"), "services/billing/.ENV");
    }
}
