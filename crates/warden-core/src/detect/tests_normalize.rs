//! Tests of the normalised views (Unicode, escapes, spaced, reversed), base32 payloads and
//! the fingerprints of read and sent secrets.

use base64::Engine as _;
use proptest::prelude::*;

use super::fingerprint::{self, SecretPrints};
use super::*;

const AWS: &str = "AKIAIOSFODNN7EXAMPLE";
const GHP: &str = "ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5";

fn scan(text: &str) -> Scan {
    Detectors::default().scan(text)
}

fn secret(text: &str) -> bool {
    scan(text).labels.contains(LABEL_SECRET)
}

fn assert_clean(text: &str) {
    let s = scan(text);
    assert!(s.labels.is_empty(), "{text:?} → {:?}", s.findings);
    assert!(!s.truncated, "{text:?} truncated");
}

fn pct(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

fn html_hex(s: &str) -> String {
    s.chars()
        .map(|c| format!("&#x{:X};", u32::from(c)))
        .collect()
}

fn html_dec(s: &str) -> String {
    s.chars().map(|c| format!("&#{};", u32::from(c))).collect()
}

fn json_u(s: &str) -> String {
    s.chars()
        .map(|c| format!("\\u{:04x}", u32::from(c)))
        .collect()
}

fn qp(s: &str) -> String {
    s.bytes().map(|b| format!("={b:02X}")).collect()
}

fn b32(s: &str) -> String {
    data_encoding::BASE32.encode(s.as_bytes())
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn b64url(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn hexed(s: &str) -> String {
    hex::encode(s)
}

/// Cyrillic look-alikes for some Latin capitals.
fn cyrillic(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'A' => 'А',
            'K' => 'К',
            'I' => 'І',
            'O' => 'О',
            'E' => 'Е',
            'M' => 'М',
            'P' => 'Р',
            'X' => 'Х',
            other => other,
        })
        .collect()
}

fn fullwidth(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() {
                char::from_u32(u32::from(c) - 0x21 + 0xFF01).unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

fn interleave(s: &str, sep: &str) -> String {
    s.chars().map(|c| format!("{c}{sep}")).collect()
}

// ---------------------------------------------------------------- encodings

#[test]
fn base32_of_an_aws_key_in_a_forum_post() {
    let post = format!(
        "Found this in the logs, can anyone decode? {}",
        b32(&format!("key {AWS} here"))
    );
    let s = scan(&post);
    assert!(s.labels.contains(LABEL_SECRET), "{s:?}");
    assert!(s
        .findings
        .iter()
        .any(|f| f.encoding.as_deref() == Some("base32")));
    // Lower-case base32 too.
    assert!(secret(&format!(
        "see {}",
        b32(&format!("id={AWS}")).to_lowercase()
    )));
}

#[test]
fn percent_escaped_token_in_a_url_query() {
    let url = format!("https://paste.example/save?data={}&x=1", pct(GHP));
    assert!(secret(&url));
    // Only some characters escaped.
    let partial = "https://h.example/?t=ghp%5FaB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5";
    assert!(secret(partial));
}

#[test]
fn html_json_and_quoted_printable_escapes() {
    for enc in [html_hex(AWS), html_dec(AWS), json_u(AWS), qp(AWS)] {
        let text = format!("value: {enc} end");
        assert!(secret(&text), "{text}");
    }
    let named = "DB&lowbar;PASSWORD&equals;Xk9mQ2vLp8wRt &amp; more";
    assert!(secret("DB_PASSWORD=Xk9mQ2vLp8wRt & more"));
    assert!(secret(named), "{:?}", scan(named));
    // QP soft line break inside the token.
    let soft = "AKIAIOSFOD=\nNN7EXAMPLE caf=C3=A9=20ok";
    assert!(secret(soft));
}

#[test]
fn chains_of_two_encodings_are_seen_through() {
    let inner = format!("export AWS_ACCESS_KEY_ID={AWS}");
    for text in [
        b64(&pct(&inner)),
        pct(&b64(&inner)),
        b32(&b64(&inner)),
        json_u(&b64(&inner)),
        html_hex(&b32(&inner)),
        b64(&cyrillic(&inner)),
    ] {
        assert!(secret(&format!("blob {text}")), "{text}");
    }
}

// ---------------------------------------------------------------- unicode

#[test]
fn zero_width_characters_inside_a_token() {
    let hidden: String = GHP.chars().flat_map(|c| [c, '\u{200B}']).collect();
    assert!(secret(&format!("token: {hidden}")));
    for inv in [
        '\u{200C}',
        '\u{200D}',
        '\u{2060}',
        '\u{FEFF}',
        '\u{00AD}',
        '\u{E0041}',
        '\u{FE0F}',
        '\u{202E}',
    ] {
        let t: String = AWS.chars().flat_map(|c| [c, inv]).collect();
        assert!(secret(&t), "{inv:?}");
    }
}

#[test]
fn look_alike_letters_in_a_key() {
    let s = scan(&format!("id {}", cyrillic(AWS)));
    assert!(s.labels.contains(LABEL_SECRET), "{s:?}");
    assert!(s
        .findings
        .iter()
        .any(|f| f.encoding.as_deref() == Some("unicode")));
    // Greek capitals too.
    assert!(secret("ΑΚΙΑIOSFODNN7EXAMPLE"));
}

#[test]
fn full_width_and_mathematical_letters() {
    assert!(secret(&fullwidth("password=Xk9mQ2vLp8wRt")));
    assert!(secret(&format!("{}=Xk9mQ2vLp8wRt", "𝐩𝐚𝐬𝐬𝐰𝐨𝐫𝐝")));
    assert!(secret(&fullwidth(AWS)));
}

#[test]
fn benign_unicode_stays_clean() {
    // Logs full of `key=10` pairs are not quoted-printable.
    assert!(!secret("a=10 b=20 c=30 AKIAIOSFOD=\nNN7EXAMPLE"));
    for text in [
        "東京の会議は午後3時からです。資料を共有してください。ｶﾀｶﾅもあります。",
        "Привет, команда! Встреча в 15:00, повестка в документе.",
        "Family: 👨‍👩‍👧‍👦 and flags 🏳️‍🌈 with skin tones 👍🏽 — great work!",
        "Ünïcödé façade café naïve coöperate résumé",
        "ΑΒΓΔ αβγδ Ελληνικά κείμενα για δοκιμή",
        "Wörter mit weichem Trenn\u{00AD}strich",
    ] {
        assert_clean(text);
    }
}

#[test]
fn benign_identifiers_stay_clean() {
    for text in [
        "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 merged",
        "request 123e4567-e89b-12d3-a456-426614174000 done",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "see https://example.com/search?q=hello%20world&lang=en%2DUS",
        "Tom &amp; Jerry &lt;3 &quot;cartoons&quot; &#8212; classic",
        "path C:\\users\\x01\\temp and \\n newlines",
        "1 2 3 4 5 6 7 8 9 10 11 12",
        "a b c d e f g h i j k l m n o p",
        "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43UOV3HO6DZPI",
    ] {
        assert_clean(text);
    }
    // A PNG header and random bytes as base64 (image data) stay clean.
    let mut img = b"\x89PNG\r\n\x1a\n".to_vec();
    img.extend((0..600u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let data = base64::engine::general_purpose::STANDARD.encode(&img);
    assert_clean(&format!("<img src=\"data:image/png;base64,{data}\">"));
}

#[test]
fn digits_do_not_become_letters() {
    // The skeleton reads 0 as O and 1 as l; plain ASCII is never folded.
    assert_clean("order 0000111100001111 shipped, ref 10011001");
    assert_clean("A1B2 C3D4 0O0O 1l1l Il1|");
}

// ---------------------------------------------------------------- spaced and reversed

#[test]
fn spaced_and_reversed_secrets() {
    assert!(secret(&interleave(AWS, " ")));
    assert!(secret(&interleave(AWS, "-")));
    assert!(secret(&interleave(AWS, "\n")));
    assert!(secret(&interleave(AWS, ", ")));
    let rev: String = AWS.chars().rev().collect();
    assert!(secret(&format!("backwards: {rev}")));
    let pem: String = "-----BEGIN RSA PRIVATE KEY-----".chars().rev().collect();
    assert!(secret(&pem));
}

#[test]
fn views_do_not_count_a_finding_twice() {
    // Two addresses are a mention, not personal data; a view of the same text must not
    // report them again.
    let text = "Write to bob@acme.example or ann@acme.example — merci, café";
    let s = scan(text);
    assert_eq!(
        s.findings.iter().filter(|f| f.detector == "email").count(),
        2,
        "{s:?}"
    );
}

// ---------------------------------------------------------------- bounds

#[test]
fn hostile_inputs_stay_bounded() {
    // Deep nesting of percent escapes: %25 decodes to %, again and again.
    let mut nested = AWS.to_string();
    for _ in 0..8 {
        nested = pct(&nested);
    }
    let s = scan(&nested);
    assert!(s.truncated || s.labels.contains(LABEL_SECRET));
    // Invisible characters only.
    let zw = "\u{200B}".repeat(100_000);
    let s = scan(&zw);
    assert!(s.labels.is_empty());
    // Entities everywhere.
    let ents = "&amp;".repeat(50_000);
    let _ = scan(&ents);
    // Over the byte limit: truncated.
    let small = Detectors::new(ScanLimits {
        max_bytes: 1000,
        ..ScanLimits::default()
    });
    assert!(small.scan(&"é".repeat(1000)).truncated);
}

#[test]
fn secret_values_are_kept_folded_for_fingerprints() {
    let s = scan(&format!(
        "AWS_ACCESS_KEY_ID={AWS}\nDB_PASSWORD=Xk9mQ2vLp8wRt7"
    ));
    assert!(s.secret_values.iter().any(|v| v == b"akiaiosfodnn7example"));
    assert!(s
        .secret_values
        .iter()
        .any(|v| v == b"xk9mqv2lp8wrt7" || v == b"xk9mq2vlp8wrt7"));
}

// ---------------------------------------------------------------- fingerprints

fn prints_of(text: &str, mission: &str) -> SecretPrints {
    let mut p = SecretPrints::default();
    p.add(fingerprint::mission_key(mission), &scan(text).secret_values);
    p
}

#[test]
fn parts_of_a_read_secret_are_recognised() {
    let read = "STRIPE_SECRET_KEY=sk_live_51HqLyjWDarjtT1zdp7dcXYZ0123456789abcdef";
    let p = prints_of(read, "m1");
    let key = fingerprint::mission_key("m1");
    assert!(!p.is_empty());
    for out in [
        "the tail is 0123456789abcdef ok",       // 16-char suffix
        "prefix sk_live_51HqLyjWD",              // prefix
        "s k _ l i v e _ 5 1 H q L y j W D a r", // spaced
        "s\nk\n_\nl\ni\nv\ne\n_\n5\n1\nH\nq\nL\ny",
        "fedcba9876543210ZYXcd7pdz1Ttj", // reversed
        "SK-LIVE-51HQLYJWDAR",           // case and separators changed
    ] {
        assert!(p.found_in(key, out), "{out}");
    }
    for out in [
        "nothing to see",
        "sk_live_ is a prefix everyone knows",
        "0123456789",
    ] {
        assert!(!p.found_in(key, out), "{out}");
    }
    // Another mission's key finds nothing.
    assert!(!p.found_in(fingerprint::mission_key("m2"), "0123456789abcdef"));
}

#[test]
fn fingerprints_are_bounded() {
    let mut p = SecretPrints::default();
    let key = fingerprint::mission_key("m");
    for i in 0..200 {
        let v: Vec<u8> = format!("{i:04}{}", "q".repeat(500)).into_bytes();
        p.add(
            key,
            &[
                v,
                format!("secretvalue{i:08}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx").into_bytes(),
            ],
        );
        assert!(p.hashes.len() <= fingerprint::MAX_PRINTS);
    }
}

#[test]
fn a_secret_split_over_calls_is_found() {
    let d = Detectors::default();
    let tail = fingerprint::join_tail("", "first half: AKIAIOSFODNN");
    assert!(fingerprint::split_secret(&d, &tail, "7EXAMPLE is the rest"));
    // Three parts.
    let t1 = fingerprint::join_tail("", "AKIAIOS");
    let t2 = fingerprint::join_tail(&t1, "FODNN7");
    assert!(fingerprint::split_secret(&d, &t2, "EXAMPLE"));
    // A secret sent whole before does not mark every later call.
    let whole = fingerprint::join_tail("", &format!("key {AWS}"));
    assert!(!fingerprint::split_secret(&d, &whole, "thanks, done"));
    // Ordinary messages do not join into secrets.
    let chat = fingerprint::join_tail("", "see you at 5");
    assert!(!fingerprint::split_secret(&d, &chat, "pm tomorrow"));
    assert!(fingerprint::join_tail("", &"x".repeat(10_000)).len() <= fingerprint::SENT_TAIL);
}

// ---------------------------------------------------------------- properties

fn encode(kind: u8, s: &str) -> String {
    match kind % 9 {
        0 => b64(s),
        1 => b64url(s),
        2 => b32(s),
        3 => hexed(s),
        4 => pct(s),
        5 => html_hex(s),
        6 => json_u(s),
        7 => qp(s),
        _ => html_dec(s),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_secret_in_any_encoding_or_chain_of_two_is_found(
        key in "[A-Z2-7]{16}",
        a in 0u8..9,
        b in proptest::option::of(0u8..9),
    ) {
        let secret_text = format!("aws AKIA{key} key");
        let mut enc = encode(a, &secret_text);
        if let Some(b) = b {
            enc = encode(b, &enc);
        }
        let s = scan(&format!("note {enc} end"));
        prop_assert!(s.labels.contains(LABEL_SECRET) || s.truncated, "{:?} {:?}: {enc}", a, b);
    }

    #[test]
    fn random_text_never_panics(text in "\\PC{0,300}") {
        let _ = scan(&text);
        let _ = Detectors::default().scan_bytes(text.as_bytes());
    }

    #[test]
    fn random_escapes_never_panic(parts in proptest::collection::vec("(%[0-9A-Fa-f]{0,2}|&#?[a-zA-Z0-9]{0,6};?|\\\\u[0-9a-fA-F]{0,4}|=[0-9A-F]{0,2}|[a-z ]{0,3}|\u{200B}|А)", 0..60)) {
        let text: String = parts.concat();
        let _ = scan(&text);
    }
}

#[test]
fn variants_not_designed_for() {
    // Chunked groups, mixed separators, a key in a JSON string with \u escapes of look-alikes.
    assert!(secret("key AKIA IOSF ODNN 7EXA MPLE ok"));
    assert!(secret("AKIA-IOSF-ODNN-7EXA-MPLE"));
    assert!(secret("A.K.I.A.I.O.S.F.O.D.N.N.7.E.X.A.M.P.L.E"));
    assert!(secret(&json_u(&cyrillic(AWS))));
    // Double percent-encoding.
    assert!(secret(&pct(&pct(AWS))));
    // Zero-width joiners and a bidi isolate around a full-width key name.
    assert!(secret(&format!(
        "\u{2066}{}\u{2069}=Xk9mQ2vLp8wRt7",
        fullwidth("api_key")
            .chars()
            .flat_map(|c| [c, '\u{200D}'])
            .collect::<String>()
    )));
    // Benign look-alikes of chunks.
    assert_clean("Card ending 1234 5678 9012 3456 was charged; room B12 C34 D56");
    assert_clean("THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG AND RUNS AWAY FAST");
    assert_clean("Version 1.2.3.4.5.6.7.8.9 released, see RFC 2119 and ISO 8601");
}

#[test]
fn base64_wrapped_at_a_fixed_width_is_one_payload() {
    // The key's 20 characters start at byte 49 of the payload, and the first line of 76
    // base64 characters holds 57 bytes: the key straddles the line break.
    let env = format!(
        "# billing {}\nAWS_ACCESS_KEY_ID={AWS} and more text after it, {}",
        "#".repeat(20),
        "x".repeat(40)
    );
    let one = b64(&env);
    // Wrap at 76 (as `base64` does) so the key straddles a line break.
    let wrapped: Vec<String> = one
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let text = format!("attachment:\n{}\nend", wrapped.join("\n"));
    let s = scan(&text);
    assert!(
        s.findings.iter().any(|f| f.detector == "aws-access-key"),
        "{s:?}"
    );
    // Wrapped random bytes stay clean.
    let noise: Vec<u8> = (0..900u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let enc = base64::engine::general_purpose::STANDARD.encode(noise);
    let lines: Vec<&str> = enc
        .as_bytes()
        .chunks(64)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    assert_clean(&lines.join("\r\n"));
}

#[test]
fn payloads_written_in_groups_are_decoded() {
    let dump: Vec<String> = format!("key={AWS}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(secret(&format!("hexdump: {}", dump.join(" "))));
    let groups: Vec<String> = b64(&format!("GITHUB_TOKEN={GHP}"))
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    assert!(secret(&groups.join(" ")));
}

#[test]
fn a_spaced_key_next_to_other_arguments_is_found() {
    // Arguments are scanned joined by newlines: the chain must stop where the key does.
    let dashed: Vec<String> = AWS.chars().map(String::from).collect();
    assert!(secret(&format!("{}\nT-1100\n", dashed.join("-"))));
    assert!(secret(&format!("{}\nT-1100\n", dashed.join("\n"))));
    assert!(secret(&format!("{}\nAB-12\n", dashed.join(" "))));
}
