use super::*;
use base64::Engine as _;
use proptest::prelude::*;

fn det() -> Detectors {
    Detectors::default()
}

fn scan(text: &str) -> Scan {
    det().scan(text)
}

fn detectors(s: &Scan) -> Vec<&str> {
    s.findings.iter().map(|f| f.detector.as_str()).collect()
}

#[track_caller]
fn assert_finds(text: &str, detector: &str, label: &str) {
    let s = scan(text);
    assert!(
        s.findings
            .iter()
            .any(|f| f.detector == detector && f.label == label),
        "expected {detector} in {text:?}, got {:?}",
        s.findings
    );
    assert!(s.labels.contains(label));
}

#[track_caller]
fn assert_no_label(text: &str, label: &str) {
    let s = scan(text);
    assert!(
        !s.labels.contains(label),
        "unexpected {label} in {text:?}: {:?}",
        s.findings
    );
}

#[track_caller]
fn assert_clean(text: &str) {
    let s = scan(text);
    assert!(
        s.labels.is_empty() && s.findings.is_empty() && !s.truncated,
        "expected nothing in {text:?}: {s:?}"
    );
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

const AWS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

#[test]
fn detectors_compile() {
    assert!(det().is_operational());
    assert_eq!(det().limits(), &ScanLimits::default());
}

#[test]
fn benign_text_is_clean() {
    for text in [
        "",
        "Hello world, the build passed in 3.2s.",
        "2024-05-01T10:23:45.123Z INFO request_id=7f3c9a2b method=GET path=/api/v1/users status=200 duration_ms=12",
        r#"{"level":"info","ts":1714558925,"msg":"cache hit","key":"users:42","ttl":300,"max_tokens":4096}"#,
        "Can someone explain how to access the docs? I granted your request yesterday.",
        "The logs show access denied for the deploy job; retrying in 30 seconds.",
        "Version 1.2.3 was released on 2024-01-15 with 1234 commits (sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b).",
        "Please add the file to the repo and make sure the tests pass.",
        "We should make public transport free. Make a public announcement on Monday.",
        "Turn off the lights, disable the cache, and share your screen.",
        "chmod +x deploy.sh && chmod 644 config.yaml && chmod 755 bin/",
        "The token limit is 8k; password resets are handled by the IT desk.",
        "Give it a try and give me feedback.",
        "uuid 550e8400-e29b-41d4-a716-446655440000 trace 4bf92f3577b34da6a3ce929d0e0e4736",
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
        "Set the timeout to 30 and change the log level to debug.",
    ] {
        assert_clean(text);
    }
}

// ---------------------------------------------------------------- secrets

#[test]
fn pem_private_keys() {
    for header in [
        "RSA PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
        "PRIVATE KEY",
        "EC PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
    ] {
        assert_finds(
            &format!("key:\n-----BEGIN {header}-----\nMIIEow\n-----END {header}-----"),
            "pem-private-key",
            "secret",
        );
    }
    assert_no_label(
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "secret",
    );
}

#[test]
fn aws_access_keys() {
    assert_finds(
        &format!("id={AWS_KEY} region=us-east-1"),
        "aws-access-key",
        "secret",
    );
    assert_finds("ASIAY34FZKBOKMUTVV7A", "aws-access-key", "secret");
    assert_no_label("AKIA1234 is too short", "secret");
    assert_no_label(&format!("X{AWS_KEY}"), "secret");
    assert_no_label("akiaiosfodnn7example", "secret");
}

#[test]
fn aws_secret_keys_next_to_a_key_name() {
    for text in [
        format!("aws_secret_access_key = {AWS_SECRET}"),
        format!("AWS_SECRET_ACCESS_KEY={AWS_SECRET}"),
        format!(r#"{{"SecretAccessKey": "{AWS_SECRET}"}}"#),
    ] {
        assert_finds(&text, "aws-secret-key", "secret");
        // The same value is reported once, by the specific detector.
        assert_eq!(scan(&text).findings.len(), 1, "{text}");
    }
    // A bare 40-character string is not enough.
    assert_no_label(&format!("checksum {AWS_SECRET} ok"), "secret");
}

#[test]
fn vendor_tokens() {
    let alnum36 = "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789";
    assert_finds(&format!("token ghp_{alnum36}"), "github-token", "secret");
    assert_finds(&format!("gho_{alnum36}"), "github-token", "secret");
    assert_finds(
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV",
        "github-token",
        "secret",
    );
    assert_finds(
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "slack-token",
        "secret",
    );
    assert_finds(
        "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "slack-webhook",
        "secret",
    );
    assert_finds(
        "stripe: sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "stripe-key",
        "secret",
    );
    assert_finds("rk_live_51H8abcdEFGHijklMNOP", "stripe-key", "secret");
    assert_finds(
        "key=AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
        "google-api-key",
        "secret",
    );
    assert_finds(&format!("auth {JWT} end"), "jwt", "secret");
    assert_finds(
        "Authorization: Basic dXNlcjpodW50ZXIy",
        "basic-auth",
        "secret",
    );
    assert_no_label(
        "Basic authentication is enabled; Basic dXNlcm5hbWVvbmx5",
        "secret",
    );
    assert_finds(
        "Authorization: Bearer 4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c",
        "bearer-token",
        "secret",
    );

    assert_no_label("ghp_short and gho_ and github_pat_x", "secret");
    assert_no_label("xoxo-hugs-and-kisses-for-everyone", "secret");
    assert_no_label(
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc is a test key; sk_live_ alone is not",
        "secret",
    );
    assert_no_label("the header eyJhbGciOiJIUzI1NiJ9 alone", "secret");
    assert_no_label(
        "Authorization: Bearer <token> or Bearer YOUR_ACCESS_TOKEN_HERE_PLEASE",
        "secret",
    );
    assert_no_label(
        "we use scikit: sk-learn-compatible-estimators-and-transformers-here",
        "secret",
    );
}

#[test]
fn env_style_lines() {
    for text in [
        "DB_PASSWORD=Sup3rS3cretPassw0rd",
        "export API_KEY=abcd1234efgh5678",
        r#"{"client_secret": "9f8e7d6c5b4a3210"}"#,
        "password: \"hunter2hunter2\"",
        "apiKey: 'AbC123xyz987'",
        "DB_PASS=letmein2024",
        "STRIPE_SECRET_KEY=whsec_abcdefgh12345678",
        "mysql --password=Tr0ub4dor&3x",
        "PASSWORD_RESET_TOKEN=q8w7e6r5t4y3u2i1",
        "ANTHROPIC_API_KEY = \"my real key 123456\"",
    ] {
        assert_finds(text, "env-secret", "secret");
    }
    for text in [
        "PASSWORD=changeme",
        "API_KEY=<your-api-key>",
        "SECRET_KEY=${SECRET_KEY}",
        "TOKEN=xxxxxxxxxxxx",
        "password: short",
        "MAX_TOKENS=4096",
        "max_tokens: 100000000",
        "token_url=https://auth.example.com/token",
        r#"{"tokenizer": "cl100k_base"}"#,
        "Token: unauthorized",
        "password = get_password()",
        "self.password = password_hash",
        "PASSWORD_MIN_LENGTH=12",
        "SECRET_NAME=prod-db-credentials",
        "cat /etc/passwd: root:x:0:0:root:/root:/bin/bash",
        "password_file=/run/secrets/db_password",
        "secretary: Margaret Thompson",
        r#"{"password_required": true, "token_type": "Bearer"}"#,
        "API_KEY=your_api_key_here",
    ] {
        assert_no_label(text, "secret");
    }
}

#[test]
fn env_excerpt_keeps_the_key_and_hides_the_value() {
    let s = scan("DB_PASSWORD=Sup3rS3cretPassw0rd");
    let f = &s.findings[0];
    assert_eq!(f.offset, 0);
    assert_eq!(f.excerpt, "DB_PASSWORD=Sup3…(19)");
}

#[test]
fn connection_strings() {
    for text in [
        "DATABASE_URL=postgres://user:pass@host/db",
        "mongodb+srv://admin:S3cret@cluster0.example.net/test",
        "redis://:hunter2@cache:6379/0",
        "git clone https://bob:ghs_token123@git.acme.example/repo.git",
    ] {
        assert_finds(text, "connection-string", "secret");
    }
    for text in [
        "postgres://user@host/db",
        "postgres://user:${DB_PASS}@host/db",
        "https://example.com:8443/path?q=1",
        "postgres://user:<password>@host/db",
        "postgres://user:****@host/db",
    ] {
        assert_no_label(text, "secret");
    }
    let s = scan("postgres://user:pass@host/db");
    assert_eq!(s.findings[0].excerpt, "postgres://…:p…(4)@…");
}

#[test]
fn excerpts_never_hold_the_secret() {
    let alnum36 = "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789";
    let text = format!(
        "{AWS_KEY} ghp_{alnum36} {JWT} DB_PASSWORD=Sup3rS3cretPassw0rd postgres://u:hunter2hunter2@h alice@acme.example 4111 1111 1111 1111"
    );
    let s = scan(&text);
    assert!(s.findings.len() >= 7, "{:?}", s.findings);
    for f in &s.findings {
        for secret in [
            AWS_KEY,
            alnum36,
            JWT,
            "Sup3rS3cretPassw0rd",
            "hunter2hunter2",
            "alice@acme.example",
            "4111 1111",
        ] {
            assert!(!f.excerpt.contains(secret), "{f:?}");
        }
        assert!(f.excerpt.chars().count() <= 80, "{f:?}");
    }
}

// ---------------------------------------------------------------- PII

#[test]
fn emails() {
    assert_finds("contact alice@acme.example for access", "email", "pii");
    assert_finds("<bob.smith+tag@mail.example.co.uk>", "email", "pii");
    for text in [
        "logo@2x.png",
        "git@github.com:org/repo.git",
        "ping @alice",
        "user@localhost",
        "npm i lodash@4.17.21",
    ] {
        assert_no_label(text, "pii");
    }
}

#[test]
fn phone_numbers() {
    for text in [
        "call +1 (415) 555-2671",
        "+44 20 7946 0958",
        "tel:+14155552671",
        "office (415) 555-2671",
        "cell 415-555-2671.",
        "toll free 1-800-555-1234",
        "+33 1 23 45 67 89",
    ] {
        assert_finds(text, "phone", "pii");
    }
    for text in [
        "released 2024-01-15",
        "host 192.168.100.200",
        "order 1234567890 shipped",
        "v1.2.3",
        "tz +0530",
        "at 10:23:45.123",
        "+1 2 3",
        "id 12345-678-9012",
        "build 415-555-26710",
    ] {
        assert_no_label(text, "pii");
    }
}

#[test]
fn ssns() {
    assert_finds("ssn: 078-05-1120", "ssn", "pii");
    assert_finds("SSN 123-45-6789.", "ssn", "pii");
    for text in [
        "000-12-3456",
        "666-12-3456",
        "912-34-5678",
        "123-00-4567",
        "123-45-0000",
        "ref 2024-123-45-6789",
    ] {
        assert_no_label(text, "pii");
    }
}

#[test]
fn card_numbers_need_luhn_and_an_issuer() {
    for text in [
        "card 4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "amex 3782 822463 10005",
        "378282246310005",
        "5555 5555 5555 4444",
        "6011111111111117",
        "paid with 4111 1111 1111 1111 2024 exp",
    ] {
        assert_finds(text, "card-number", "pii");
    }
    for text in [
        "4111 1111 1111 1112",
        "1234567890123456",
        "ts 1700000000000",
        "4111 1111-1111 1111",
        "12 34 56 78 90 12 34 56",
        "41111111111111111111111",
    ] {
        assert_no_label(text, "pii");
    }
    assert!(pii::luhn(b"79927398713"));
    assert!(!pii::luhn(b"79927398710"));
}

#[test]
fn ibans_need_mod_97() {
    assert_finds("IBAN DE89 3704 0044 0532 0130 00", "iban", "pii");
    assert_finds("GB82WEST12345698765432", "iban", "pii");
    assert_finds("pay to FR1420041010050500013M02606.", "iban", "pii");
    for text in [
        "DE89 3704 0044 0532 0130 01",
        "XX12 3456 7890 1234 5678 90",
        "GB82WEST1234569876543",
    ] {
        assert_no_label(text, "pii");
    }
}

// ---------------------------------------------------------------- privileged advice

#[test]
fn privileged_advice_fires_on_widening() {
    for text in [
        "To fix it, grant all-employees read access to the auth logs.",
        "You should grant All-Employees read access on logs:auth",
        "just add everyone to the group",
        "Add all-employees to the security-incidents channel",
        "chmod 777 /var/log/auth.log",
        "run chmod -R o+rwx /srv/data",
        "sudo chmod a+w secrets/",
        "make the bucket public",
        "Making the repo public would help",
        "make it public.",
        "Make the channel public so contractors can read it",
        "set the ACL to public-read",
        "aws s3 cp f s3://b --acl public-read",
        "disable authentication on the admin API",
        "Just disable 2FA for now",
        "turn off MFA for the service accounts",
        "add bob to the admins",
        "add erin to the Domain Admins group",
        "add the bot as an admin",
        "share with everyone",
        "share the dashboard with the whole company",
        r#"{"members": ["allUsers"], "role": "roles/storage.objectViewer"}"#,
        "give bob admin access",
        "give the contractors write access to the repo",
        "Give erin owner permissions on the project",
        "grant everyone access to the dashboard",
        "change the repo visibility to public",
        "set permissions to 777",
        "enable public access on the bucket",
        "allow anonymous access",
        "open port 22 to the world",
        "expose the database to the internet",
        r#"{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}"#,
        "make bob an admin",
    ] {
        assert_finds(text, "privileged-advice", "privileged-advice");
    }
}

#[test]
fn privileged_advice_ignores_benign_sentences() {
    for text in [
        "access the docs",
        "I granted your request",
        "the logs show access denied",
        "Please add your name to the list.",
        "add a note to the owner",
        "Make sure to set the timeout to 30.",
        "make it work, then make it fast",
        "We made a public announcement.",
        "share your screen",
        "give it a try",
        "grant type is authorization_code",
        "the admin console is down",
        "This is public information.",
        "disable the cache",
        "turn off the lights",
        "chmod 644 file and chmod u+x run.sh",
        "open the file in an editor",
        "Don't disable MFA.",
        "Never make the bucket public.",
        "You should not grant all-employees read access to the auth logs.",
        "avoid chmod 777",
        "switch to public transport",
        "Please remove the trailing whitespace.",
        "He gave everyone a copy.",
    ] {
        assert_no_label(text, "privileged-advice");
    }
}

#[test]
fn privileged_advice_excerpt_is_the_phrase() {
    let s = scan("Hi! Please grant all-employees read access to the auth logs.");
    let f = &s.findings[0];
    assert_eq!(f.detector, "privileged-advice");
    assert_eq!(f.excerpt, "grant all-employees read access");
    assert_eq!(f.offset, 11);
}

// ---------------------------------------------------------------- encoded payloads

#[test]
fn base64_of_a_dotenv_file() {
    let dotenv = format!("DB_PASSWORD=Sup3rS3cretPassw0rd\nAWS_ACCESS_KEY_ID={AWS_KEY}\n");
    let s = scan(&format!("attachment: {} end", b64(&dotenv)));
    assert!(s.labels.contains("secret"));
    let inner: Vec<_> = s
        .findings
        .iter()
        .filter(|f| f.encoding.as_deref() == Some("base64"))
        .collect();
    assert!(inner.iter().any(|f| f.detector == "env-secret"), "{s:?}");
    assert!(inner
        .iter()
        .any(|f| f.detector == "aws-access-key" && f.offset == dotenv.find(AWS_KEY).unwrap_or(0)));
    assert!(!s.truncated);
}

#[test]
fn url_safe_base64_and_padding() {
    let payload = "mail alice@acme.example about it??>>";
    let url = base64::engine::general_purpose::URL_SAFE.encode(payload);
    assert!(url.contains('-') || url.contains('_'));
    let s = scan(&format!("q={url}"));
    assert!(
        s.findings
            .iter()
            .any(|f| f.detector == "email" && f.encoding.as_deref() == Some("base64")),
        "{s:?}"
    );
}

#[test]
fn hex_of_an_aws_key() {
    let s = scan(&format!("blob {} blob", hex::encode(AWS_KEY)));
    assert!(
        s.findings
            .iter()
            .any(|f| f.detector == "aws-access-key" && f.encoding.as_deref() == Some("hex")),
        "{s:?}"
    );
    let s = scan(&format!(
        "blob 0x{} blob",
        hex::encode_upper(format!("key {AWS_KEY}"))
    ));
    assert!(s.labels.contains("secret"), "{s:?}");
}

#[test]
fn base64_of_base64() {
    let text = format!("x {} y", b64(&b64("GITHUB_TOKEN=Zx9Yw8Vu7Ts6Rq5Po4Nm")));
    let s = scan(&text);
    assert!(
        s.findings
            .iter()
            .any(|f| f.detector == "env-secret" && f.encoding.as_deref() == Some("base64")),
        "{s:?}"
    );
    assert!(!s.truncated);

    // One layer allowed: the inner payload is seen but not decoded, so the scan is truncated.
    let shallow = Detectors::new(ScanLimits {
        max_decode_depth: 1,
        ..ScanLimits::default()
    })
    .scan(&text);
    assert!(shallow.labels.is_empty());
    assert!(shallow.truncated);

    let none = Detectors::new(ScanLimits {
        max_decode_depth: 0,
        ..ScanLimits::default()
    })
    .scan(&text);
    assert!(none.findings.is_empty() && none.truncated);
}

#[test]
fn binary_and_hash_runs_are_not_decoded() {
    let random = base64::engine::general_purpose::STANDARD.encode((0u8..=255).collect::<Vec<u8>>());
    let text = format!(
        "img {random} sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_clean(&text);
}

#[test]
fn decoding_is_charged_to_the_byte_budget() {
    let payload = b64(&format!(
        "DB_PASSWORD=Sup3rS3cretPassw0rd {}",
        "filler ".repeat(20)
    ));
    let text = format!("data {payload}");
    // Enough for the text itself but not for the decoded payload.
    let tight = Detectors::new(ScanLimits {
        max_bytes: text.len() + 8,
        ..ScanLimits::default()
    })
    .scan(&text);
    assert!(tight.truncated);
    assert!(tight.labels.is_empty());
    let roomy = Detectors::new(ScanLimits {
        max_bytes: text.len() * 2,
        ..ScanLimits::default()
    })
    .scan(&text);
    assert!(!roomy.truncated);
    assert!(roomy.labels.contains("secret"));
}

// ---------------------------------------------------------------- limits

#[test]
fn text_past_max_bytes_is_not_scanned_and_marks_truncation() {
    let text = format!("{}{AWS_KEY}", "a ".repeat(100));
    let d = Detectors::new(ScanLimits {
        max_bytes: 64,
        ..ScanLimits::default()
    });
    let s = d.scan(&text);
    assert!(s.truncated);
    assert!(s.labels.is_empty());
    let s = Detectors::new(ScanLimits {
        max_bytes: text.len(),
        ..ScanLimits::default()
    })
    .scan(&text);
    assert!(!s.truncated);
    assert!(s.labels.contains("secret"));
}

#[test]
fn max_findings_bounds_findings_not_labels() {
    let text = format!(
        "a@acme.example b@acme.example c@acme.example d@acme.example {AWS_KEY} chmod 777 x"
    );
    let s = Detectors::new(ScanLimits {
        max_findings: 2,
        ..ScanLimits::default()
    })
    .scan(&text);
    assert_eq!(s.findings.len(), 2);
    assert_eq!(s.labels.len(), 3, "{s:?}");
    let s = Detectors::new(ScanLimits {
        max_findings: 0,
        ..ScanLimits::default()
    })
    .scan(&text);
    assert!(s.findings.is_empty());
    assert_eq!(s.labels.len(), 3);
    let s = scan(&text);
    assert_eq!(detectors(&s).iter().filter(|d| **d == "email").count(), 4);
}

#[test]
fn digit_runs_hold_several_kinds() {
    // A run that is not a card still holds an SSN and a phone number.
    let s = scan("ids: SSN 078-05-1120 1234 5678, call 415 555 2671 1234 today");
    assert!(detectors(&s).contains(&"ssn"), "{s:?}");
    assert!(detectors(&s).contains(&"phone"), "{s:?}");
    // One finding for a phone number written with a country code.
    let s = scan("call +1 (415) 555-2671 now");
    assert_eq!(detectors(&s), ["phone"]);
    // IP addresses, epoch times and order ids are not personal data.
    assert_clean("ip=10.172.187.210 ts=1714558925 order=20240115123456 v=1.2.3.4567");
}

#[test]
fn advice_needs_its_verb_nearby() {
    let far = format!(
        "grant {} access",
        "and then we will talk about this later ".repeat(3)
    );
    assert_no_label(&far, "privileged-advice");
    // Several object words after one verb make one finding.
    let s = scan("give everyone admin access to the logs");
    assert_eq!(detectors(&s), ["privileged-advice"]);
    // Object words with no verb before them are not advice.
    assert_no_label(
        "everyone has admin access to the public docs",
        "privileged-advice",
    );
}

#[test]
fn dense_object_words_do_not_exhaust_the_work_budget() {
    // An ACL listing is full of object words but tells no one to do anything.
    let acl = "user=alice role=admin access=read scope=public owner=root; ".repeat(20_000);
    let s = Detectors::new(ScanLimits {
        max_bytes: acl.len(),
        ..ScanLimits::default()
    })
    .scan(&acl);
    assert!(!s.truncated);
    assert!(s.labels.is_empty(), "{:?}", s.findings.first());
}

#[test]
fn text_made_of_candidates_exhausts_the_work_budget() {
    // Every word a verb or an object: the checks stop and the scan is marked truncated.
    let junk = "add admin ".repeat(20_000);
    let s = Detectors::new(ScanLimits {
        max_bytes: junk.len(),
        ..ScanLimits::default()
    })
    .scan(&junk);
    assert!(s.truncated);
    // Values inside values are not parsed again (no `token=token=…` amplification).
    let tokens = "token=".repeat(50_000);
    let s = Detectors::new(ScanLimits {
        max_bytes: tokens.len(),
        ..ScanLimits::default()
    })
    .scan(&tokens);
    assert!(!s.truncated);
}

// ---------------------------------------------------------------- bytes

#[test]
fn scan_bytes_on_text_matches_scan() {
    let text = format!("hello {AWS_KEY} alice@acme.example");
    assert_eq!(det().scan_bytes(text.as_bytes()), det().scan(&text));
}

#[test]
fn scan_bytes_on_binary_scans_printable_runs() {
    let mut bytes = vec![0u8, 159, 146, 150, 0xff, 0];
    let at = bytes.len() + 1;
    bytes.extend_from_slice(format!(" {AWS_KEY} ").as_bytes());
    bytes.extend_from_slice(&[0, 1, 2, 0xfe]);
    bytes.extend_from_slice(b"ab@cd");
    bytes.extend_from_slice(&[0]);
    let s = det().scan_bytes(&bytes);
    assert!(s.binary);
    assert_eq!(detectors(&s), ["aws-access-key"]);
    assert_eq!(s.findings[0].offset, at);
    assert!(!det().scan(&format!("x {AWS_KEY}")).binary);
}

#[test]
fn printable_runs_keep_offsets() {
    assert_eq!(
        printable_runs(b"ab\0cdefg\x01xyz!\xff"),
        b"\n\n\ncdefg\nxyz!\n".to_vec()
    );
}

// ---------------------------------------------------------------- properties

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,12}",
        "[a-zA-Z0-9+/=_-]{0,40}",
        "[0-9 -]{0,20}",
        Just(AWS_KEY.to_owned()),
        Just("@acme.example".to_owned()),
        Just("postgres://u:p@".to_owned()),
        Just("PASSWORD=".to_owned()),
        Just("grant everyone ".to_owned()),
        Just("chmod 777 ".to_owned()),
        Just("-----BEGIN PRIVATE KEY-----".to_owned()),
        Just("eyJ".to_owned()),
        Just("+1 ".to_owned()),
        Just(b64("DB_PASSWORD=Sup3rS3cretPassw0rd")),
        Just(hex::encode("alice@acme.example")),
        Just("add admin ".to_owned()),
        Just("token=".to_owned()),
        Just("4111 1111 1111 1111".to_owned()),
        Just("078-05-1120 ".to_owned()),
        Just("(415) 555-2671".to_owned()),
        Just("DE89 3704 0044 0532 0130 00".to_owned()),
        "\\PC{0,8}",
    ]
}

fn check_invariants(s: &Scan, limits: &ScanLimits) {
    assert!(s.findings.len() <= limits.max_findings);
    for f in &s.findings {
        assert!(s.labels.contains(&f.label), "{f:?} not in {:?}", s.labels);
        assert!(ALL_LABELS.contains(&f.label.as_str()));
    }
    for l in &s.labels {
        assert!(ALL_LABELS.contains(&l.as_str()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn scan_never_panics_on_strings(text in "\\PC{0,400}", max_bytes in 0usize..600, depth in 0u8..4, max_findings in 0usize..8) {
        let limits = ScanLimits { max_bytes, max_decode_depth: depth, max_findings };
        let s = Detectors::new(limits.clone()).scan(&text);
        check_invariants(&s, &limits);
        if text.len() > max_bytes {
            prop_assert!(s.truncated);
        }
    }

    #[test]
    fn scan_never_panics_on_fragments(parts in prop::collection::vec(fragment(), 0..30), max_findings in 0usize..6) {
        let text = parts.concat();
        let limits = ScanLimits { max_findings, ..ScanLimits::default() };
        let s = Detectors::new(limits.clone()).scan(&text);
        check_invariants(&s, &limits);
        prop_assert_eq!(det().scan_bytes(text.as_bytes()).labels, det().scan(&text).labels);
    }

    #[test]
    fn scan_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600), max_bytes in 0usize..700) {
        let limits = ScanLimits { max_bytes, ..ScanLimits::default() };
        let s = Detectors::new(limits.clone()).scan_bytes(&bytes);
        check_invariants(&s, &limits);
        prop_assert_eq!(s.truncated || bytes.len() <= max_bytes, true);
    }
}

#[test]
fn privileged_advice_in_other_wordings() {
    for t in [
        "open the repo to the whole company",
        "remove the IP allowlist on the admin panel",
        "grant Domain Users local admin",
        "grant all contractors admin rights on the wiki",
        "invite all staff as owners of the drive",
        "loosen the permissions so anyone can read it",
        "loosen the permissions on the dashboards folder so anyone can read it",
        "you can safely widen access to the whole org",
        "drop the branch protection on main",
        "elevate bob to org owner",
        "promote the contractor to admin",
        "relax the sharing restrictions so everyone can edit",
        "everyone should get read access to prod logs",
        "Everyone in the org can be given admin rights",
        "anyone can have an owner role there",
    ] {
        assert_finds(t, "privileged-advice", LABEL_PRIVILEGED_ADVICE);
    }
    for t in [
        "remove bob from the allowlist",
        "invite bob to the design review",
        "promote the release to production",
        "drop the table after the migration",
        "relax, the deploy went fine",
        "open the runbook to see the steps",
        "widen the chart to show the whole week",
        "don't open the repo to the whole company",
        "never remove the IP allowlist",
        "everyone should get the onboarding doc",
        "give all owners a heads-up before Friday",
        "give everyone the admin's phone number",
        "everyone should not get admin rights",
        "anyone can read the runbook",
    ] {
        assert_no_label(t, LABEL_PRIVILEGED_ADVICE);
    }
}
