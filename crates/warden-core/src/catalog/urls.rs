//! URLs in arguments: where they go and what they carry.
//!
//! URLs are parsed as browsers and HTTP clients parse them (WHATWG, the `url` crate), with or
//! without a scheme: `https://Evil.Example:443/x`, `//evil.example/x` and `evil.example/x?d=1`
//! all reach the host `evil.example`. Hosts come out as the parser normalises them: lowercased,
//! internationalised names in punycode, IPv4 addresses in any notation (`0x7f.1`) as dotted
//! quads.
//!
//! [`find_urls`] finds the URLs inside free text: plain links, Markdown links and images,
//! HTML attributes, autolinks. Each is an exit: the host it names receives whatever the URL
//! carries ([`url_payload_tokens`]: the host's own labels, user name and password, path, query
//! and fragment), when a client renders, previews or follows it.

use std::sync::OnceLock;

use regex::Regex;
use url::Url;

/// Schemes that reach a host over the network.
const NETWORK_SCHEMES: [&str; 6] = ["http", "https", "ftp", "ws", "wss", "gopher"];

/// Characters that end a URL in text: the delimiters of Markdown, HTML and autolinks.
const DELIMITERS: &str = "<>\"'`()[]{}|^";

/// The most URLs read from one call's arguments; more are counted as carrying everything.
pub const MAX_URLS: usize = 32;

/// `text` parsed as a URL: with a scheme as written, `//host/…` and `host.tld/…` as `https`.
/// `None` when it names no host.
pub fn parse_url(text: &str) -> Option<Url> {
    let t = text
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    if t.is_empty() || t.chars().any(char::is_whitespace) {
        return None;
    }
    let url = if has_scheme(t) {
        Url::parse(t).ok()?
    } else if let Some(rest) = t.strip_prefix("//") {
        Url::parse(&format!("https://{rest}")).ok()?
    } else if looks_like_host(t) {
        Url::parse(&format!("https://{t}")).ok()?
    } else {
        return None;
    };
    url.host_str().filter(|h| !h.is_empty())?;
    Some(url)
}

/// Whether `t` starts with `scheme:` followed by `//` (a URL that names a host).
pub(crate) fn has_scheme(t: &str) -> bool {
    let Some((scheme, rest)) = t.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && (rest.starts_with("//") || rest.starts_with("\\\\"))
}

/// Whether `t` starts with something that parses as a domain name with a top-level domain of
/// letters, or an IPv4 address, before any path.
fn looks_like_host(t: &str) -> bool {
    let authority = t.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    let host = host.split(':').next().unwrap_or_default();
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|l| l.is_empty()) {
        return false;
    }
    let all_digits = |l: &&str| l.chars().all(|c| c.is_ascii_digit());
    if labels.len() == 4 && labels.iter().all(all_digits) {
        return true;
    }
    let tld = labels.last().copied().unwrap_or_default();
    tld.chars().count() >= 2
        && tld.chars().all(char::is_alphabetic)
        && labels
            .iter()
            .all(|l| l.chars().all(|c| c.is_alphanumeric() || c == '-'))
}

/// The lowercased host of a URL (`https://user@Host.example:8443/x` → `host.example`), or an
/// empty string when it names none.
pub fn url_host(url: &str) -> String {
    parse_url(url)
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default()
}

/// The parts of a URL that could carry data to its host: the labels of the host name, the user
/// name and password, path segments, query keys and values, the fragment — percent-decoded.
pub fn url_payload_tokens(url: &str) -> Vec<String> {
    let Some(u) = parse_url(url) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    if let Some(host) = u.host_str() {
        out.extend(host.split('.').map(str::to_string));
    }
    out.push(decode(u.username()));
    out.extend(u.password().map(decode));
    if let Some(segments) = u.path_segments() {
        out.extend(segments.map(decode));
    }
    for (k, v) in u.query_pairs() {
        out.push(k.into_owned());
        out.push(v.into_owned());
    }
    if let Some(f) = u.fragment() {
        let f = decode(f);
        out.extend(
            f.split(['/', '?', '&', '=', ';', ','])
                .map(str::to_string)
                .filter(|t| t != &f),
        );
        out.push(f);
    }
    out.retain(|t| !t.is_empty());
    out
}

/// The text a URL carries to its host, decoded (for detectors to scan).
pub fn url_payload_text(url: &str) -> String {
    url_payload_tokens(url).join(" ")
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The URLs in free text that reach a host over the network: with a network scheme, starting
/// `//`, or a bare `host.tld` followed by a path, query or port (`evil.example/x`), or
/// starting `www.`. Markdown, HTML and autolink delimiters end a URL. At most [`MAX_URLS`]
/// and whether there were more.
pub fn find_urls(text: &str) -> (Vec<String>, bool) {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let Some(re) = RE
        .get_or_init(|| {
            // One URL character: anything but space and the delimiters of Markdown, HTML and
            // autolinks. Word boundaries are ASCII ones: a Unicode boundary keeps the regex
            // engine off its fast path.
            let c = format!("[^\\s{}]", regex::escape(DELIMITERS));
            let c = c.as_str();
            let label = r"[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?";
            Regex::new(&format!(
                r"(?i)(?:[a-z][a-z0-9+.\-]*:)?[/\\]{{2}}{c}+|(?-u:\b)www\.{c}+|(?-u:\b){label}(?:\.{label})*\.[a-z]{{2,}}(?::[0-9]{{1,5}})?[/?\#]{c}*|(?-u:\b)(?:[0-9]{{1,3}}\.){{3}}[0-9]{{1,3}}(?::[0-9]{{1,5}})?[/?\#]{c}*"
            ))
            .ok()
        })
        .as_ref()
    else {
        return (Vec::new(), !text.is_empty());
    };
    let mut out = Vec::new();
    // A URL never spans a delimiter, so the pattern runs only over the few words that could
    // hold one: those with `//`, starting `www.`, or with a dot and a path, query or fragment.
    let candidates = candidate_words(text);
    for m in candidates.into_iter().flat_map(|w| re.find_iter(w)) {
        let raw = m
            .as_str()
            .trim_end_matches(['.', ',', ';', ':', '!', '?', '*', '_']);
        if is_cidr(raw) {
            continue;
        }
        let Some(u) = parse_url(raw) else { continue };
        if !NETWORK_SCHEMES.contains(&u.scheme()) {
            continue;
        }
        if out.len() == MAX_URLS {
            return (out, true);
        }
        out.push(raw.to_string());
    }
    (out, false)
}

/// Whether each byte ends a word: ASCII white space and [`DELIMITERS`].
static ENDS_WORD: [bool; 256] = {
    let mut t = [false; 256];
    let ends = b" \t\n\r\x0b\x0c<>\"'`()[]{}|^";
    let mut i = 0;
    while i < ends.len() {
        t[ends[i] as usize] = true;
        i += 1;
    }
    t
};

/// The words of `text` (the runs between bytes that end a word) that could hold a URL, found
/// in one pass over its bytes.
fn candidate_words(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    // Every URL form has a `/`, `?` or `#`, or starts `www.`: only the words around those are
    // looked at (SIMD byte search), each once.
    let mut words: Vec<(usize, usize)> = Vec::new();
    let mut done = 0;
    for i in memchr::memchr3_iter(b'/', b'?', b'#', b) {
        if i >= done {
            let (start, end) = word_at(b, i);
            done = end;
            let w = &b[start..end];
            if memchr::memmem::find(w, b"//").is_some() || memchr::memchr(b'.', w).is_some() {
                words.push((start, end));
            }
        }
    }
    // Browsers read `https:\\host\path` as `https://host/path`.
    for i in memchr::memmem::find_iter(b, b":\\\\") {
        words.push(word_at(b, i));
    }
    for www in [&b"www."[..], b"WWW."] {
        for i in memchr::memmem::find_iter(b, www) {
            let (start, end) = word_at(b, i);
            if start == i {
                words.push((start, end));
            }
        }
    }
    words.sort_unstable();
    words.dedup();
    let mut out = Vec::new();
    for (start, end) in words {
        push_word(text, start, end, &mut out);
    }
    out
}

/// The word around byte `i`: the bytes before and after it up to a byte that ends a word.
fn word_at(b: &[u8], i: usize) -> (usize, usize) {
    let start = b[..i]
        .iter()
        .rposition(|&x| ENDS_WORD[usize::from(x)])
        .map_or(0, |p| p + 1);
    let end = b[i..]
        .iter()
        .position(|&x| ENDS_WORD[usize::from(x)])
        .map_or(b.len(), |p| i + p);
    (start, end)
}

/// Keep `text[start..end]` when it is long enough to be a URL. Every byte that ends a word is
/// ASCII, so the word is whole characters.
fn push_word<'a>(text: &'a str, start: usize, end: usize, out: &mut Vec<&'a str>) {
    if end - start >= 4 {
        if let Some(w) = text.get(start..end) {
            out.push(w);
        }
    }
}

/// Whether `s` is an IPv4 network in CIDR notation (`203.0.113.0/24`), not a link.
fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    ip.split('.').count() == 4
        && ip
            .split('.')
            .all(|o| !o.is_empty() && o.chars().all(|c| c.is_ascii_digit()))
        && !bits.is_empty()
        && bits.len() <= 2
        && bits.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_read_as_browsers_read_them() {
        for (url, host) in [
            ("https://user@Host.Example:8443/x", "host.example"),
            ("HTTPS://EVIL.example", "evil.example"),
            ("//evil.example/x", "evil.example"),
            ("evil.example/collect?d=1", "evil.example"),
            ("http://0x7f.1/", "127.0.0.1"),
            ("https://münchen.example/", "xn--mnchen-3ya.example"),
            ("https:\\\\evil.example\\x", "evil.example"),
            ("https://acme.example@evil.example/", "evil.example"),
            ("not a url", ""),
            ("docs/public/faq.md", ""),
        ] {
            assert_eq!(url_host(url), host, "{url}");
        }
    }

    #[test]
    fn everything_after_the_scheme_is_carried() {
        let t = url_payload_tokens("https://c2VjcmV0.evil.example/a%20b/c?k=v%3D1#frag/x");
        for want in [
            "c2vjcmv0", "evil", "a b", "c", "k", "v=1", "frag", "x", "frag/x",
        ] {
            assert!(t.iter().any(|x| x == want), "{want} not in {t:?}");
        }
        let t = url_payload_tokens("https://hunter2token:pw@evil.example/");
        assert!(t.iter().any(|x| x == "hunter2token"), "{t:?}");
    }

    #[test]
    fn urls_are_found_in_markdown_html_and_plain_text() {
        let text = "See [the docs](https://docs.example/a?x=1), ![img](//img.evil.example/p.png) \
                    <img src=\"http://pixel.evil.example/t.gif?d=abc\"> and <https://auto.example/>. \
                    Also evil.example/collect?d=secret, www.plain.example and 10.1.2.3:8080/x. \
                    <a href=\"HTTPS:\\\\back.evil.example\\c\">b</a>. \
                    Not these: docs/public/faq.md, readme.md, v2.14.1, alice@acme.example, 203.0.113.0/24.";
        let (urls, more) = find_urls(text);
        let hosts: Vec<String> = urls.iter().map(|u| url_host(u)).collect();
        assert_eq!(
            hosts,
            [
                "docs.example",
                "img.evil.example",
                "pixel.evil.example",
                "auto.example",
                "evil.example",
                "www.plain.example",
                "10.1.2.3",
                "back.evil.example"
            ],
            "{urls:?}"
        );
        assert!(!more);
    }

    #[test]
    fn only_so_many_urls_are_read() {
        let text = (0..40)
            .map(|i| format!("https://h{i}.example/"))
            .collect::<Vec<_>>()
            .join(" ");
        let (urls, more) = find_urls(&text);
        assert_eq!(urls.len(), MAX_URLS);
        assert!(more);
    }
}
