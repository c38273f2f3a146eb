//! Secret detectors: token shapes, connection strings and `KEY=value` lines.

use base64::Engine as _;
use regex::bytes::Regex;

use super::text::{at, before, contains_ci, is, is_word, redact, slice, starts_with_ci};
use super::{Ctx, Layer, LABEL_SECRET};

/// Token shapes that start with a literal, so the whole alternation gets a literal prefilter.
const TOKEN_PATTERNS: &[&str] = &[
    r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----",
    r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b",
    r"\bgh[pousr]_[A-Za-z0-9]{36,}\b",
    r"\bgithub_pat_[A-Za-z0-9_]{22,}",
    r"\bxox[baprse]-[A-Za-z0-9-]{10,}",
    r"\bhooks\.slack\.com/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]{8,}",
    r"\b[sr]k_live_[A-Za-z0-9]{16,}",
    r"\bAIza[A-Za-z0-9_-]{35}",
    r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
    r"\bglpat-[A-Za-z0-9_-]{20,}",
    r"\bnpm_[A-Za-z0-9]{36}\b",
    r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{32,}",
    r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}",
    r"\b(?:Bearer|bearer|BEARER)[ \t]+[A-Za-z0-9._~+/-]{20,}=*",
    r"\b(?:Basic|basic|BASIC)[ \t]+[A-Za-z0-9+/]{8,}={0,2}",
];

/// `scheme://user:password@host`; the password may not hold `/`, `@` or whitespace.
const CONNECTION: &str = r"(?i-u)\b[a-z][a-z0-9+.-]{1,30}://[^\s:/@'\x22<>`]{0,128}:[^\s/@'\x22<>`]{1,256}@[a-z0-9\[\]_-]";

/// A key holding a word that makes it a secret, then a separator; the combined scan
/// (case-insensitive) reports these, and the value after them is parsed in code.
pub(super) const ENV_KEY: &str = r#"[a-z0-9_.-]*(?:secret|token|pass|pwd|api[_.-]?key|private[_.-]?key|access[_.-]?key|credential|creds|auth[_.-]?key|signing[_.-]?key|encryption[_.-]?key|master[_.-]?key)[a-z0-9_.-]*["']?[ \t]*(?::=|=>|=|:)"#;

/// The longest key name looked at.
const MAX_KEY: usize = 64;

/// The compiled secret detectors.
#[derive(Debug)]
pub(super) struct Secrets {
    pub(super) tokens: Regex,
    pub(super) connection: Regex,
}

impl Secrets {
    pub(super) fn build() -> Result<Self, regex::Error> {
        Ok(Self {
            tokens: Regex::new(&format!("(?-u){}", TOKEN_PATTERNS.join("|")))?,
            connection: Regex::new(CONNECTION)?,
        })
    }

    /// Token shapes and connection strings, each found by a literal-prefiltered regex.
    pub(super) fn scan_tokens(&self, ctx: &mut Ctx<'_>, layer: &mut Layer<'_>) {
        let (hay, enc) = (layer.hay, layer.encoding);
        if !ctx.wants(LABEL_SECRET) {
            return;
        }
        for m in self.tokens.find_iter(hay) {
            let Some(detector) = classify_token(m.as_bytes()) else {
                continue;
            };
            layer.secret_spans.push((m.start(), m.end()));
            ctx.report(detector, LABEL_SECRET, m.start(), enc, || {
                redact(m.as_bytes())
            });
            // A key's header says little: its body (the lines after it) is what identifies it.
            let value = if detector == "pem-private-key" {
                slice(hay, m.end(), hay.len().min(m.end() + 512))
            } else {
                m.as_bytes()
            };
            ctx.secret_value(value);
            if !ctx.wants(LABEL_SECRET) {
                return;
            }
        }
        for m in self.connection.find_iter(hay) {
            let Some((scheme, password)) = connection_parts(m.as_bytes()) else {
                continue;
            };
            layer.secret_spans.push((m.start(), m.end()));
            ctx.secret_value(password);
            ctx.report("connection-string", LABEL_SECRET, m.start(), enc, || {
                format!(
                    "{}://…:{}@…",
                    String::from_utf8_lossy(scheme),
                    redact(password)
                )
            });
            if !ctx.wants(LABEL_SECRET) {
                return;
            }
        }
    }

    /// A `KEY=` / `"key":` match at `hay[start..end]`: judge the value after it.
    pub(super) fn env_at(
        &self,
        start: usize,
        end: usize,
        ctx: &mut Ctx<'_>,
        layer: &mut Layer<'_>,
    ) {
        let hay = layer.hay;
        if !ctx.wants(LABEL_SECRET) {
            return;
        }
        // A key inside the value of the previous one (`token=token=…`) is part of that value.
        if start < layer.env_until {
            return;
        }
        let Some(value) = value_span(hay, end) else {
            return;
        };
        layer.env_until = value.1;
        // The key, the separator and the value are examined.
        if !ctx.charge(value.1 - start) {
            return;
        }
        let Some(hit) = env_secret(hay, start, end, value) else {
            return;
        };
        if layer
            .secret_spans
            .iter()
            .any(|&(a, b)| a < hit.value_end && hit.value_start < b)
        {
            return;
        }
        let key = slice(hay, start, hit.key_end);
        let value = slice(hay, hit.value_start, hit.value_end);
        ctx.secret_value(value);
        ctx.report(hit.detector, LABEL_SECRET, start, layer.encoding, || {
            let key: String = String::from_utf8_lossy(key).chars().take(48).collect();
            format!("{key}={}", redact(value))
        });
    }
}

/// The detector name of a token match, or `None` when the shape check fails.
fn classify_token(m: &[u8]) -> Option<&'static str> {
    let has = |f: fn(&u8) -> bool| m.iter().any(f);
    let d = if m.starts_with(b"-----BEGIN") {
        "pem-private-key"
    } else if m.starts_with(b"AKIA") || m.starts_with(b"ASIA") {
        "aws-access-key"
    } else if m.starts_with(b"gh") || m.starts_with(b"github_pat_") {
        "github-token"
    } else if m.starts_with(b"xox") {
        if !has(u8::is_ascii_digit) {
            return None;
        }
        "slack-token"
    } else if m.starts_with(b"hooks.") {
        "slack-webhook"
    } else if m.starts_with(b"sk_live_") || m.starts_with(b"rk_live_") {
        "stripe-key"
    } else if m.starts_with(b"AIza") {
        "google-api-key"
    } else if m.starts_with(b"eyJ") {
        "jwt"
    } else if m.starts_with(b"glpat-") {
        "gitlab-token"
    } else if m.starts_with(b"npm_") {
        "npm-token"
    } else if m.starts_with(b"sk-") {
        // Real keys mix digits and both cases; `sk-learn-…`-style words do not.
        if !(has(u8::is_ascii_digit) && has(u8::is_ascii_uppercase) && has(u8::is_ascii_lowercase))
        {
            return None;
        }
        "llm-api-key"
    } else if m.starts_with(b"SG.") {
        "sendgrid-key"
    } else if starts_with_ci(m, b"bearer") {
        let token = m.get(6..).unwrap_or(&[]).trim_ascii_start();
        if placeholder_like(token) || !token.iter().any(u8::is_ascii_digit) {
            return None;
        }
        "bearer-token"
    } else if starts_with_ci(m, b"basic") {
        // HTTP basic credentials: base64 of `user:password`.
        let encoded = m.get(5..).unwrap_or(&[]).trim_ascii_start();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let colon = decoded.iter().position(|&b| b == b':')?;
        let password = decoded.get(colon + 1..)?;
        if password.is_empty() || !decoded.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            return None;
        }
        "basic-auth"
    } else {
        return None;
    };
    Some(d)
}

/// Scheme and password of a connection-string match, unless the password is a template.
fn connection_parts(m: &[u8]) -> Option<(&[u8], &[u8])> {
    let sep = m.windows(3).position(|w| w == b"://")?;
    let scheme = m.get(..sep)?;
    let rest = m.get(sep + 3..)?;
    let colon = rest.iter().position(|&b| b == b':')?;
    let at_sign = rest.iter().rposition(|&b| b == b'@')?;
    let password = rest.get(colon + 1..at_sign)?;
    let first = *password.first()?;
    if matches!(first, b'$' | b'<' | b'{' | b'%' | b'*' | b'[')
        || password
            .iter()
            .all(|&b| matches!(b, b'x' | b'X' | b'*' | b'.'))
    {
        return None;
    }
    Some((scheme, password))
}

/// A `KEY=value` hit: where the key ends and where the value is.
struct EnvHit {
    detector: &'static str,
    key_end: usize,
    value_start: usize,
    value_end: usize,
}

/// Key segments naming a secret on their own.
fn is_secret_segment(s: &[u8]) -> bool {
    matches!(
        s,
        b"secret"
            | b"secrets"
            | b"token"
            | b"tokens"
            | b"password"
            | b"passwords"
            | b"passwd"
            | b"pwd"
            | b"pass"
            | b"passphrase"
            | b"credential"
            | b"credentials"
            | b"creds"
            | b"apikey"
            | b"apikeys"
            | b"privatekey"
            | b"accesskey"
            | b"secretkey"
            | b"authkey"
    )
}
/// Endings of glued segments (`githubtoken`, `dbpassword`) that name a secret.
const SECRET_SUFFIXES: &[&[u8]] = &[
    b"token",
    b"secret",
    b"password",
    b"passwd",
    b"apikey",
    b"privatekey",
    b"accesskey",
    b"credentials",
];
/// First halves of `X_KEY` names that are secrets (`api_key`, `private-key`, …).
fn is_key_prefix(s: &[u8]) -> bool {
    matches!(
        s,
        b"api"
            | b"private"
            | b"access"
            | b"auth"
            | b"signing"
            | b"encryption"
            | b"master"
            | b"secret"
            | b"session"
    )
}
/// Segments that, anywhere in the key, make it a quantity rather than a secret (`max_tokens`).
fn is_quantity_segment(s: &[u8]) -> bool {
    matches!(
        s,
        b"max"
            | b"min"
            | b"num"
            | b"number"
            | b"total"
            | b"count"
            | b"limit"
            | b"limits"
            | b"ttl"
            | b"size"
            | b"length"
            | b"len"
            | b"budget"
            | b"usage"
            | b"used"
            | b"cost"
            | b"rate"
            | b"remaining"
    )
}
/// Segments that, after the secret word, make the key an attribute of it (`TOKEN_URL`).
fn is_attribute_segment(s: &[u8]) -> bool {
    matches!(
        s,
        b"file"
            | b"path"
            | b"url"
            | b"uri"
            | b"endpoint"
            | b"type"
            | b"name"
            | b"header"
            | b"policy"
            | b"rotation"
            | b"version"
            | b"format"
            | b"enabled"
            | b"enable"
            | b"required"
            | b"reset"
            | b"prompt"
            | b"hint"
            | b"field"
            | b"page"
            | b"cursor"
            | b"index"
            | b"kind"
            | b"mode"
            | b"label"
            | b"description"
            | b"env"
            | b"var"
            | b"ref"
            | b"arn"
            | b"expiry"
            | b"expires"
            | b"expiration"
            | b"expire"
            | b"expired"
            | b"timeout"
            | b"lifetime"
            | b"dir"
            | b"location"
            | b"provider"
            | b"source"
            | b"store"
            | b"manager"
            | b"method"
            | b"algorithm"
            | b"alg"
            | b"scheme"
            | b"strategy"
            | b"validation"
            | b"validator"
            | b"hash"
            | b"salt"
            | b"placeholder"
            | b"regex"
            | b"pattern"
            | b"encoding"
            | b"id"
    )
}

/// A key name split into lowercase segments, without allocating.
struct Segments {
    buf: [u8; MAX_KEY],
    /// `(start, end)` of each segment in `buf`.
    segs: [(u8, u8); 16],
    n: usize,
}

impl Segments {
    /// Split at `_ . -`, other punctuation and camelCase humps; `None` for over-long keys.
    fn new(key: &[u8]) -> Option<Self> {
        let mut out = Self {
            buf: [0; MAX_KEY],
            segs: [(0, 0); 16],
            n: 0,
        };
        if key.len() > MAX_KEY {
            return None;
        }
        let mut seg_start: Option<usize> = None;
        for (i, &b) in key.iter().enumerate() {
            if let Some(slot) = out.buf.get_mut(i) {
                *slot = b.to_ascii_lowercase();
            }
            let split_here = if !b.is_ascii_alphanumeric() {
                true
            } else if b.is_ascii_uppercase() && seg_start.is_some() {
                let prev = before(key, i).unwrap_or(b'_');
                let next = at(key, i + 1).unwrap_or(b'_');
                prev.is_ascii_lowercase()
                    || prev.is_ascii_digit()
                    || (prev.is_ascii_uppercase() && next.is_ascii_lowercase())
            } else {
                false
            };
            if split_here {
                if let Some(s) = seg_start.take() {
                    out.push(s, i);
                }
            }
            if b.is_ascii_alphanumeric() && seg_start.is_none() {
                seg_start = Some(i);
            }
        }
        if let Some(s) = seg_start {
            out.push(s, key.len());
        }
        Some(out)
    }

    fn push(&mut self, a: usize, b: usize) {
        if let (Some(slot), Ok(a), Ok(b)) =
            (self.segs.get_mut(self.n), u8::try_from(a), u8::try_from(b))
        {
            *slot = (a, b);
            self.n += 1;
        }
    }

    fn get(&self, i: usize) -> Option<&[u8]> {
        let &(a, b) = self.segs.get(..self.n)?.get(i)?;
        self.buf.get(usize::from(a)..usize::from(b))
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.n).filter_map(move |i| self.get(i))
    }
}

/// Judge the `KEY=value` whose key and separator are `hay[start..end]` and whose value
/// is `value` (from [`value_span`]).
fn env_secret(hay: &[u8], start: usize, end: usize, value: (usize, usize, bool)) -> Option<EnvHit> {
    // A key glued to a path (`/etc/passwd:`) or a longer word is not a key.
    if is(before(hay, start), |b| {
        matches!(b, b'/' | b'\\' | b'.' | b'-' | b'$') || is_word(b)
    }) {
        return None;
    }
    let m = slice(hay, start, end);
    let key_len = m
        .iter()
        .position(|&b| matches!(b, b'"' | b'\'' | b' ' | b'\t' | b':' | b'='))
        .unwrap_or(m.len());
    let key = m.get(..key_len)?;
    // The match ends with its separator: `:`, `=`, `:=` or `=>`.
    let sep_is_colon = m.ends_with(b":");
    let segments = Segments::new(key)?;
    let secret_at = (0..segments.n).rev().find(|&i| {
        let Some(s) = segments.get(i) else {
            return false;
        };
        let glued = SECRET_SUFFIXES
            .iter()
            .any(|x| s.len() > x.len() && s.ends_with(x));
        let pair = s == b"key"
            && i.checked_sub(1)
                .and_then(|j| segments.get(j))
                .is_some_and(is_key_prefix);
        is_secret_segment(s) || glued || pair
    })?;
    if segments.iter().any(is_quantity_segment)
        || segments
            .iter()
            .skip(secret_at + 1)
            .any(is_attribute_segment)
    {
        return None;
    }

    let (value_start, value_end, quoted) = value;
    let value = slice(hay, value_start, value_end);
    let aws = segments.iter().any(|s| s == b"secret")
        && (segments.iter().any(|s| s == b"access" || s == b"aws")
            || contains_ci(slice(hay, start.saturating_sub(24), start), b"aws"))
        && value.len() == 40
        && value
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'/' || b == b'+');
    if aws {
        return Some(EnvHit {
            detector: "aws-secret-key",
            key_end: start + key_len,
            value_start,
            value_end,
        });
    }
    if value.len() < 8 || placeholder_like(value) || code_like(value, quoted) {
        return None;
    }
    if value.iter().all(u8::is_ascii_digit)
        && !segments
            .iter()
            .any(|s| s.starts_with(b"pass") || s == b"pwd")
    {
        return None;
    }
    // `Token: unauthorized` is prose, not a credential.
    if sep_is_colon && !quoted && value.iter().all(u8::is_ascii_lowercase) {
        return None;
    }
    Some(EnvHit {
        detector: "env-secret",
        key_end: start + key_len,
        value_start,
        value_end,
    })
}

/// The longest value looked at.
const MAX_VALUE: usize = 256;

/// The value after a separator (spaces skipped): `(start, end, quoted)`. A quoted value
/// ends at its closing quote or the line's end; an unquoted one at whitespace or `,;&`,
/// quotes and closing brackets.
fn value_span(hay: &[u8], from: usize) -> Option<(usize, usize, bool)> {
    const MAX: usize = MAX_VALUE;
    let from = from
        + slice(hay, from, hay.len().min(from + 64))
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
    let first = at(hay, from)?;
    if matches!(first, b'"' | b'\'' | b'`') {
        let body = from + 1;
        let rest = slice(hay, body, hay.len().min(body + MAX));
        let len = rest
            .iter()
            .position(|&b| b == first || b == b'\n' || b == b'\r')
            .unwrap_or(rest.len());
        // A JSON string value ends at its quote, but an escaped quote does not end it.
        return Some((body, body + len, true));
    }
    let rest = slice(hay, from, hay.len().min(from + MAX));
    let len = rest
        .iter()
        .position(|&b| {
            b.is_ascii_whitespace()
                || matches!(
                    b,
                    b',' | b';' | b'&' | b'"' | b'\'' | b'`' | b')' | b']' | b'}'
                )
        })
        .unwrap_or(rest.len());
    Some((from, from + len, false))
}

/// Placeholders and templates that are not real secrets.
fn placeholder_like(v: &[u8]) -> bool {
    const WHOLE: &[&[u8]] = &[
        b"password",
        b"secret",
        b"none",
        b"null",
        b"nil",
        b"undefined",
        b"true",
        b"false",
        b"required",
        b"optional",
        b"string",
        b"redacted",
        b"hidden",
        b"masked",
        b"todo",
        b"tbd",
        b"empty",
        b"default",
        b"unknown",
        b"invalid",
        b"expired",
        b"missing",
        b"disabled",
        b"enabled",
    ];
    const PARTS: &[&[u8]] = &[
        b"changeme",
        b"change_me",
        b"change-me",
        b"changeit",
        b"changethis",
        b"placeholder",
        b"redacted",
        b"your_",
        b"your-",
        b"yourpass",
        b"yoursecret",
        b"yourtoken",
        b"yourkey",
        b"example",
        b"dummy",
        b"<",
        b">",
        b"${",
        b"{{",
        b"%(",
        b"xxxx",
        b"****",
        b"....",
        b"replace_",
        b"replace-",
        b"insert_",
        b"_here",
        b"-here",
        b"notasecret",
        b"not-a-secret",
        b"fixme",
    ];
    let Some(&first) = v.first() else { return true };
    // Placeholders are short: only the start of a long value is searched.
    let head = v.get(..v.len().min(64)).unwrap_or(v);
    matches!(
        first,
        b'$' | b'%' | b'<' | b'{' | b'[' | b'(' | b'*' | b'@' | b'&'
    ) || WHOLE.iter().any(|w| v.eq_ignore_ascii_case(w))
        || PARTS.iter().any(|p| contains_ci(head, p))
        || v.iter().all(|&b| b == first)
}

/// Unquoted values that are code or references (`os.getenv(…)`, `self.token`, `/run/secrets/x`).
fn code_like(v: &[u8], quoted: bool) -> bool {
    const REFS: &[&[u8]] = &[
        b"process.env",
        b"os.environ",
        b"os.getenv",
        b"env.",
        b"self.",
        b"this.",
        b"config.",
        b"settings.",
        b"secrets.",
        b"vault:",
        b"ssm:",
        b"arn:",
        b"file:",
        b"http://",
        b"https://",
        b"./",
        b"../",
        b"~/",
    ];
    if v.contains(&b'(') || REFS.iter().any(|r| starts_with_ci(v, r)) {
        return true;
    }
    if quoted {
        return false;
    }
    if v.first() == Some(&b'/') {
        return true;
    }
    // `password_hash`, `request.token`: identifiers that name a secret rather than hold one.
    let ident = v
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    let dotted_or_snake = v.iter().any(|&b| b == b'_' || b == b'.');
    let names_secret = [&b"token"[..], b"secret", b"pass", b"key", b"cred"]
        .iter()
        .any(|w| contains_ci(v, w));
    ident && dotted_or_snake && names_secret && !v.iter().any(u8::is_ascii_digit)
}
