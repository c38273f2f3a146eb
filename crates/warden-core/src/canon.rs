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
//! - percent-escapes decoded (repeatedly, at most [`MAX_DECODES`] times, while the result is
//!   UTF-8);
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

/// `value` as written and, when it differs, its canonical form (see the module doc).
pub fn spellings(value: &str) -> Vec<Cow<'_, str>> {
    let mut out = vec![Cow::Borrowed(value)];
    if let Some(c) = canonical(value) {
        out.push(Cow::Owned(c));
    }
    out
}

/// The canonical form of `value`, when it differs from `value`.
pub fn canonical(value: &str) -> Option<String> {
    if value.len() > MAX_LEN || !value.bytes().any(needs_look) {
        return None;
    }
    let mut text: Cow<'_, str> = Cow::Borrowed(value);
    for _ in 0..MAX_DECODES {
        if !text.contains('%') {
            break;
        }
        let decoded = match percent_decode_str(&text).decode_utf8() {
            Ok(d) if d != text => d.into_owned(),
            _ => break,
        };
        text = Cow::Owned(decoded);
    }
    let c = if has_scheme(&text) {
        url_form(&text).unwrap_or_else(|| text.to_string())
    } else {
        path_form(&text)
    };
    (c != value).then_some(c)
}

/// Whether a byte may make the canonical form differ.
fn needs_look(b: u8) -> bool {
    matches!(b, b'%' | b'.' | b'/' | b'\\' | b' ') || b.is_ascii_uppercase()
}

/// Whether `s` starts with `scheme://`.
fn has_scheme(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once("://") else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
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
        // Not UTF-8 once decoded: kept as written.
        assert_eq!(c("a%ffb"), "a%ffb");
    }
}
