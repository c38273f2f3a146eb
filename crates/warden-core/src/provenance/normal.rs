//! Text as provenance compares it: normalised, de-obfuscated, with the directing values in it
//! (links, addresses, handles, IBANs, phone and account numbers) found as whole tokens.
//!
//! The detectors (`crate::detect`) judge whether text holds personal data and report redacted
//! excerpts, stopping at the first finding of a label; provenance needs every value as written
//! and in one canonical form, so the few patterns it needs are kept here.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// The most values taken from one text.
pub const MAX_VALUES: usize = 64;

/// Marks a canonical form appended to indexed text (a control character, which
/// [`normalize`] removes from every text, so no text can forge one).
pub(crate) const CANON_MARK: char = '\u{1}';

/// What kind of directing value a [`Found`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A link (`https://…`, `www.…`, `host.tld/path`).
    Url,
    /// An e-mail address.
    Email,
    /// A user handle (`@name`).
    Handle,
    /// An IBAN (checked with mod 97).
    Iban,
    /// A phone or account number (nine or more digits; compared by its last ten).
    Number,
}

/// A directing value found in text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its kind.
    pub kind: Kind,
    /// The value as it stands in the normalised text.
    pub text: String,
    /// Its canonical form, for values written in many ways (digits only, IBAN without spaces),
    /// else `None`.
    pub canon: Option<String>,
}

/// Characters that change nothing a reader sees (zero-width, joiners, soft hyphen, bidi marks).
fn invisible(c: char) -> bool {
    matches!(c, '\u{00ad}' | '\u{034f}' | '\u{061c}' | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}' | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{3164}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}' | '\u{ffa0}')
}

/// Obfuscated `@` and `.` in brackets: `[at]`, `(at)`, `{dot}`, `<dot>`, `[.]`, `(@)` ….
static BRACKETED: LazyLock<Option<(Regex, Regex)>> = LazyLock::new(|| {
    let at = Regex::new(r"\s*[\[\(\{<]\s*(?:at|@|arroba|ät|chez)\s*[\]\)\}>]\s*").ok()?;
    let dot = Regex::new(r"\s*[\[\(\{<]\s*(?:dot|\.|punto|punkt|point)\s*[\]\)\}>]\s*").ok()?;
    Some((at, dot))
});

/// A spelled-out address: `name at host dot example`, `name_at_host_dot_example`, `name @ host.
/// example` …. Separators must be whole words, so prose keeps its meaning.
static SPELLED: LazyLock<Option<(Regex, Regex)>> = LazyLock::new(|| {
    let at = r"(?:\s*@\s*|[\s_\-]+(?:at|arroba)[\s_\-]+|\s*[\[\(\{<]\s*(?:at|@|arroba|ät|chez)\s*[\]\)\}>]\s*)";
    let dot = r"(?:\.|\s+\.\s+|[\s_\-]+(?:dot|punto|punkt|point)[\s_\-]+|\s*[\[\(\{<]\s*(?:dot|\.|punto|punkt|point)\s*[\]\)\}>]\s*)";
    // Host labels start with a letter here: `at 5 dot …` is prose, and an address whose host
    // starts with a digit is found as written.
    let label = r"[a-z](?:[a-z0-9\-]*[a-z0-9])?";
    let whole = Regex::new(&format!(
        r"(?P<local>[a-z0-9][a-z0-9._%+\-]*)(?P<at>{at})(?P<dom>{label}(?:{dot}{label})+)\b"
    ))
    .ok()?;
    let sep = Regex::new(dot).ok()?;
    Some((whole, sep))
});

/// Text as provenance compares it: NFKC, lowercase, without invisible or control characters
/// (newlines and tabs kept), with the common escapes of `@` and `.` decoded and obfuscated
/// addresses (`drop [at] evil [dot] example`, `drop(at)evil(dot)example`, `drop at evil dot
/// example`, `drop＠evil．example`) written as addresses.
pub fn normalize(text: &str) -> String {
    use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};
    let nfkc: Cow<'_, str> = if text.is_ascii() || is_nfkc_quick(text.chars()) == IsNormalized::Yes
    {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.nfkc().collect())
    };
    let plain = nfkc.is_ascii()
        && !nfkc
            .bytes()
            .any(|b| b.is_ascii_control() && b != b'\n' && b != b'\t');
    // Plain ASCII (most text) is lowercased in one pass; the rest char by char.
    let mut out = if plain {
        nfkc.to_ascii_lowercase()
    } else {
        let mut out = String::with_capacity(nfkc.len());
        for c in nfkc.chars() {
            if invisible(c) || (c.is_control() && c != '\n' && c != '\t') {
                continue;
            }
            if c.is_ascii() {
                out.push(c.to_ascii_lowercase());
            } else {
                out.extend(c.to_lowercase());
            }
        }
        out
    };
    // Escapes of `@` and `.` (percent, HTML): enough to read an address written with them.
    if out.contains('%') || out.contains('&') {
        for (from, to) in [
            ("%40", "@"),
            ("%2e", "."),
            ("&#64;", "@"),
            ("&#x40;", "@"),
            ("&commat;", "@"),
            ("&#46;", "."),
            ("&#x2e;", "."),
            ("&period;", "."),
        ] {
            if out.contains(from) {
                out = out.replace(from, to);
            }
        }
    }
    let Some((whole, sep)) = SPELLED.as_ref() else {
        return unbracket(out);
    };
    // Only text with an `@`, or the word `at`/`arroba` next to a `dot`-like word, can hold a
    // spelled address: the pattern runs on nothing else.
    let maybe = out.contains('@')
        || ((out.contains("at") || out.contains("arroba") || out.contains("chez"))
            && (out.contains("dot")
                || out.contains("punkt")
                || out.contains("punto")
                || out.contains("point")
                || out.contains('.')));
    if !maybe {
        return unbracket(out);
    }
    let replaced = whole.replace_all(&out, |c: &regex::Captures<'_>| {
        let (local, dom) = (
            c.name("local").map_or("", |m| m.as_str()),
            c.name("dom").map_or("", |m| m.as_str()),
        );
        // `available at docs.example` is prose: the word `at` between spaces needs a spelled
        // or bracketed `dot` too.
        let word_at = c.name("at").is_some_and(|m| {
            let m = m.as_str();
            m.trim() == "at" && !m.contains(['_', '-'])
        });
        let spelled_dot = sep.find_iter(dom).any(|m| m.as_str() != ".");
        if word_at && !spelled_dot {
            return c.get(0).map_or(String::new(), |m| m.as_str().to_string());
        }
        let dom = sep.replace_all(dom, ".");
        let tld_ok = dom.rsplit('.').next().is_some_and(|t| {
            (2..=24).contains(&t.len()) && t.chars().all(|c| c.is_ascii_alphabetic())
        });
        if tld_ok {
            format!("{local}@{dom}")
        } else {
            c.get(0).map_or(String::new(), |m| m.as_str().to_string())
        }
    });
    if let Cow::Owned(s) = replaced {
        out = s;
    }
    // Brackets left outside addresses (defanged links: `evil[.]example/x`).
    unbracket(out)
}

/// Obfuscated `@` and `.` in brackets, outside addresses, written plainly.
fn unbracket(mut out: String) -> String {
    let Some((at, dot)) = BRACKETED.as_ref() else {
        return out;
    };
    if out.contains(['[', '(', '{', '<']) {
        if let Cow::Owned(s) = at.replace_all(&out, "@") {
            out = s;
        }
        if let Cow::Owned(s) = dot.replace_all(&out, ".") {
            out = s;
        }
    }
    out
}

struct Patterns {
    email: Regex,
    url: Regex,
    handle: Regex,
    iban: Regex,
    number: Regex,
}

static PATTERNS: LazyLock<Option<Patterns>> = LazyLock::new(|| {
    let stop = r#"[^\s<>"'`\)\]\}|\\^]"#;
    Some(Patterns {
        email: Regex::new(r"[a-z0-9._%+\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,24}\b").ok()?,
        url: Regex::new(&format!(
            r"(?:\b[a-z][a-z0-9+.\-]*:)?//{stop}+|\bwww\.{stop}+|\b[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{{2,24}}(?::[0-9]{{1,5}})?/{stop}*"
        ))
        .ok()?,
        handle: Regex::new(r"(?:^|[^a-z0-9._%+@/])(@[a-z0-9_](?:[a-z0-9_.\-]{0,38}[a-z0-9_])?)").ok()?,
        iban: Regex::new(r"\b[a-z]{2}[0-9]{2}(?:[ \-]?[a-z0-9]){11,32}\b").ok()?,
        number: Regex::new(r"\+?\(?[0-9](?:[ ().\-]{0,2}[0-9]){8,33}").ok()?,
    })
});

/// Whether the ISO 13616 check of an IBAN (compact, lowercase) holds.
fn iban_ok(compact: &str) -> bool {
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut rem: u32 = 0;
    for c in tail.chars().chain(head.chars()) {
        let v = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// Whether a digit run reads as a date, a time or an IP address rather than a number a call
/// could be directed to.
fn date_or_address(m: &str) -> bool {
    let groups: Vec<&str> = m
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect();
    let dotted_small = m.contains('.') && groups.iter().all(|g| g.len() <= 3);
    let date = groups.first().is_some_and(|g| g.len() == 4)
        && groups.get(1).is_some_and(|g| g.len() == 2)
        && groups.get(2).is_some_and(|g| g.len() == 2)
        && m.contains('-');
    dotted_small || date
}

/// The directing values in normalised text, at most [`MAX_VALUES`] (and whether there were
/// more). URLs first, then addresses, handles, IBANs and numbers.
pub fn find_values(norm: &str) -> (Vec<Found>, bool) {
    let mut out: Vec<Found> = Vec::new();
    let mut more = false;
    let Some(p) = PATTERNS.as_ref() else {
        return (out, !norm.is_empty());
    };
    let mut push = |f: Found, out: &mut Vec<Found>| {
        if out.iter().any(|o| o.text == f.text) {
            return;
        }
        if out.len() >= MAX_VALUES {
            more = true;
            return;
        }
        out.push(f);
    };
    let trim = |s: &str| {
        s.trim_end_matches(['.', ',', ';', ':', '!', '?', '*', '_'])
            .to_string()
    };
    if norm.contains(['/', '.']) {
        for m in p.url.find_iter(norm) {
            let text = trim(m.as_str());
            if text.len() >= 4 {
                push(
                    Found {
                        kind: Kind::Url,
                        text,
                        canon: None,
                    },
                    &mut out,
                );
            }
        }
    }
    if norm.contains('@') {
        for m in p.email.find_iter(norm) {
            let text = trim(m.as_str());
            push(
                Found {
                    kind: Kind::Email,
                    text,
                    canon: None,
                },
                &mut out,
            );
        }
        for c in p.handle.captures_iter(norm) {
            if let Some(m) = c.get(1) {
                // `@host.example` right after a URL's userinfo is not a handle; the e-mail
                // pattern took whole addresses already.
                let text = trim(m.as_str());
                if text.len() >= 3 {
                    push(
                        Found {
                            kind: Kind::Handle,
                            text,
                            canon: None,
                        },
                        &mut out,
                    );
                }
            }
        }
    }
    if norm.bytes().any(|b| b.is_ascii_digit()) {
        for m in p.iban.find_iter(norm) {
            // The pattern runs on into the words after an IBAN: cut at each separator, longest
            // first, and keep the first cut whose checksum holds.
            let raw = m.as_str();
            let cuts = raw
                .char_indices()
                .filter(|(_, c)| matches!(c, ' ' | '-'))
                .map(|(i, _)| i)
                .chain(std::iter::once(raw.len()))
                .collect::<Vec<_>>();
            for &cut in cuts.iter().rev() {
                let text = raw.get(..cut).unwrap_or_default();
                let compact: String = text.chars().filter(char::is_ascii_alphanumeric).collect();
                if iban_ok(&compact) {
                    push(
                        Found {
                            kind: Kind::Iban,
                            text: text.to_string(),
                            canon: Some(compact),
                        },
                        &mut out,
                    );
                    break;
                }
            }
        }
        for m in p.number.find_iter(norm) {
            let s = m.as_str();
            let digits: String = s.chars().filter(char::is_ascii_digit).collect();
            // Glued to letters it is part of an identifier (an IBAN, a hash, a token).
            let glued = norm[..m.start()]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric())
                || norm[m.end()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphanumeric());
            if glued || !(9..=34).contains(&digits.len()) || date_or_address(s) {
                continue;
            }
            // The last ten digits: a number written with and without its country code is one.
            let canon = digits
                .get(digits.len().saturating_sub(10)..)
                .unwrap_or_default()
                .to_string();
            push(
                Found {
                    kind: Kind::Number,
                    text: s.trim().to_string(),
                    canon: Some(canon),
                },
                &mut out,
            );
        }
    }
    (out, more)
}

/// Text to keep for provenance: [`normalize`]d, followed by the canonical form of every value
/// in it that has one, each on its own line after a control character no text keeps.
pub fn index_text(text: &str) -> String {
    let mut norm = normalize(text);
    let (found, _) = find_values(&norm);
    for f in found {
        if let Some(c) = f.canon {
            norm.push('\n');
            norm.push(CANON_MARK);
            norm.push_str(&c);
        }
    }
    norm
}

/// Characters that continue a token on either side (a value ending or starting next to one of
/// them is part of a longer token).
fn inner(c: char) -> bool {
    c.is_alphanumeric()
        || matches!(
            c,
            '_' | '@' | '+' | '%' | '/' | '=' | '&' | '#' | '~' | '-' | '\\' | CANON_MARK
        )
}

/// Whether `needle` occurs in `hay` as a whole token: not preceded by a token character (or by
/// `.` after one: `alice.smith`), not followed by one (or by `.` or `?` before one:
/// `evil.example.net`, `/a?b=1`).
pub fn contains_token(hay: &str, needle: &str) -> bool {
    token_positions(hay, needle).next().is_some()
}

/// The byte offsets where `needle` occurs in `hay` as a whole token (see [`contains_token`]).
pub fn token_positions<'h>(hay: &'h str, needle: &'h str) -> impl Iterator<Item = usize> + 'h {
    memchr::memmem::find_iter(hay.as_bytes(), needle.as_bytes())
        .filter(move |&at| !needle.is_empty() && whole_at(hay, at, needle.len()))
}

/// Whether the `len` bytes at `at` in `hay` stand as a whole token.
fn whole_at(hay: &str, at: usize, len: usize) -> bool {
    let (Some(before), Some(after)) = (hay.get(..at), hay.get(at + len..)) else {
        return false;
    };
    let mut b = before.chars().rev();
    let ok_before = match b.next() {
        None => true,
        Some('.') => !b.next().is_some_and(inner),
        Some(c) => !inner(c),
    };
    let mut a = after.chars();
    let ok_after = match a.next() {
        None => true,
        Some('.' | '?' | ':') => !a.next().is_some_and(char::is_alphanumeric),
        Some(c) => !inner(c),
    };
    ok_before && ok_after
}

/// Whether `host` occurs in `hay` as a whole host name: as a token, or inside a link (after
/// `//` or `@`, before `/`, `:`, `?` or `#`).
pub fn contains_host(hay: &str, host: &str) -> bool {
    host_positions(hay, host).next().is_some()
}

/// The byte offsets where `host` occurs in `hay` as a whole host name (see [`contains_host`]).
pub fn host_positions<'h>(hay: &'h str, host: &'h str) -> impl Iterator<Item = usize> + 'h {
    memchr::memmem::find_iter(hay.as_bytes(), host.as_bytes()).filter(move |&at| {
        let (Some(before), Some(after)) = (hay.get(..at), hay.get(at + host.len()..)) else {
            return false;
        };
        let mut b = before.chars().rev();
        let ok_before = match b.next() {
            None | Some('/' | '@') => true,
            Some('.') => !b.next().is_some_and(inner),
            Some(c) => !inner(c),
        };
        let mut a = after.chars();
        let ok_after = match a.next() {
            None | Some('/' | ':' | '?' | '#') => true,
            Some('.') => !a.next().is_some_and(char::is_alphanumeric),
            Some(c) => !inner(c),
        };
        !host.is_empty() && ok_before && ok_after
    })
}
