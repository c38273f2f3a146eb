//! `[identity.oidc]`, `[identity.proxy]` and `[users.NAME]`: parsed into typed settings, every
//! mistake reported with its line.

use warden_core::identity::{IpNet, JwksSource, JwtAlgorithm, DEFAULT_ALGORITHMS};

use crate::common::{acme_text, load_with};

/// The Acme configuration without its one local user (alice), so that each test says who
/// authenticates.
fn base() -> String {
    let text = acme_text();
    let user = "[users.alice]\ntoken_env = \"WARDEN_USER_ALICE\"\n";
    assert!(
        text.contains(user),
        "the Acme configuration names alice's token"
    );
    text.replace(user, "")
}

/// The Acme configuration (without its user) with `extra` appended; the line of the first
/// appended line.
fn with(extra: &str) -> (String, usize) {
    let base = base();
    let base = base.trim_end_matches('\n');
    (format!("{base}\n{extra}"), base.lines().count() + 1)
}

fn issues(main: &str) -> Vec<String> {
    match load_with(main, &[]) {
        Ok(_) => panic!("the configuration should not load"),
        Err(e) => e.0.iter().map(|i| i.to_string()).collect(),
    }
}

fn has(got: &[String], line: usize, words: &str) {
    let prefix = format!("warden.toml:{line}: ");
    assert!(
        got.iter()
            .any(|i| i.starts_with(&prefix) && i.contains(words)),
        "want `{prefix}…{words}…` in {got:#?}"
    );
}

#[test]
fn no_identity_tables_means_no_people_authenticate() {
    let c = load_with(&base(), &[]).unwrap();
    assert!(c.identity.oidc.is_none());
    assert!(c.identity.proxy.is_none());
    assert!(c.identity.users.is_empty());
}

#[test]
fn the_acme_configuration_signs_alice_in_with_a_local_token() {
    let c = load_with(&acme_text(), &[]).unwrap();
    assert!(c.identity.oidc.is_none());
    assert_eq!(c.identity.users.len(), 1);
    assert_eq!(c.identity.users["alice"].token_env, "WARDEN_USER_ALICE");
    assert_eq!(c.grants.revokers, vec!["security".to_string()]);
}

#[test]
fn the_oidc_table_with_defaults() {
    let (text, _) = with(
        "[identity.oidc]\nissuer = \"https://id.acme.example\"\naudience = \"warden\"\njwks = \"keys/jwks.json\"\n",
    );
    let c = load_with(&text, &[]).unwrap();
    let o = c.identity.oidc.unwrap();
    assert_eq!(o.issuer, "https://id.acme.example");
    assert_eq!(o.audience, vec!["warden"]);
    assert_eq!(o.jwks, JwksSource::File("keys/jwks.json".into()));
    assert_eq!(o.clock_skew_secs, 60);
    assert_eq!(o.user_claim, "sub");
    assert_eq!(o.algorithms, DEFAULT_ALGORITHMS.to_vec());
    assert_eq!(o.ca_file, None);
}

#[test]
fn the_oidc_ca_file_is_a_path_for_an_https_jwks() {
    let (text, _) = with(
        "[identity.oidc]\nissuer = \"https://id.acme.example\"\naudience = \"warden\"\n\
         jwks = \"https://id.internal.example/jwks.json\"\nca_file = \"certs/idp-ca.pem\"\n",
    );
    let o = load_with(&text, &[]).unwrap().identity.oidc.unwrap();
    assert_eq!(o.ca_file.as_deref(), Some("certs/idp-ca.pem"));

    // Beside ca_file, an unknown key is still refused with its line.
    let (text, first) = with(
        "[identity.oidc]\nissuer = \"https://id.acme.example\"\naudience = \"warden\"\n\
         jwks = \"https://id.internal.example/jwks.json\"\nca_file = \"ca.pem\"\nca_path = \"certs\"\n",
    );
    has(&issues(&text), first + 5, "unknown field `ca_path`");

    // ca_file checks an https URL only; an empty one names nothing.
    let (text, first) = with(
        "[identity.oidc]\nissuer = \"https://id.acme.example\"\naudience = \"warden\"\n\
         jwks = \"keys/jwks.json\"\nca_file = \"ca.pem\"\n",
    );
    has(
        &issues(&text),
        first + 4,
        "used only to check an https:// jwks URL",
    );
    let (text, first) = with(
        "[identity.oidc]\nissuer = \"https://id.acme.example\"\naudience = \"warden\"\n\
         jwks = \"https://id.internal.example/jwks.json\"\nca_file = \" \"\n",
    );
    has(&issues(&text), first + 4, "ca_file must name a PEM file");
}

#[test]
fn a_plain_http_jwks_url_is_accepted_for_loopback_only() {
    let table = |jwks: &str| {
        with(&format!(
            "[identity.oidc]\nissuer = \"https://id.acme.example\"\naudience = \"warden\"\njwks = \"{jwks}\"\n"
        ))
    };
    for remote in [
        "http://id.acme.example/jwks.json",
        "http://192.168.1.10:8080/jwks.json",
        "http://[fd00::1]/jwks.json",
        "http://localhost.example/jwks.json",
    ] {
        let (text, first) = table(remote);
        let got = issues(&text);
        has(
            &got,
            first + 3,
            "keys fetched in clear could be replaced in transit",
        );
        has(&got, first + 3, "use an https:// URL");
    }
    for local in [
        "http://127.0.0.1:9000/jwks.json",
        "http://127.1.2.3/jwks.json",
        "http://localhost/jwks.json",
        "http://LOCALHOST:8080/jwks.json",
        "http://[::1]:9000/jwks.json",
    ] {
        let (text, _) = table(local);
        let o = load_with(&text, &[]).unwrap().identity.oidc.unwrap();
        assert_eq!(o.jwks, JwksSource::Url(local.into()));
    }
}

#[test]
fn the_oidc_table_in_full() {
    let (text, _) = with(
        "[identity.oidc]\nissuer = \"https://id.acme.example\"\naudience = [\"warden\", \"warden-admin\"]\n\
         jwks = \"https://id.acme.example/.well-known/jwks.json\"\nclock_skew_secs = 5\n\
         user_claim = \"preferred_username\"\nalgorithms = [\"PS256\", \"ES384\"]\n",
    );
    let o = load_with(&text, &[]).unwrap().identity.oidc.unwrap();
    assert_eq!(o.audience, vec!["warden", "warden-admin"]);
    assert_eq!(
        o.jwks,
        JwksSource::Url("https://id.acme.example/.well-known/jwks.json".into())
    );
    assert_eq!(o.clock_skew_secs, 5);
    assert_eq!(o.user_claim, "preferred_username");
    assert_eq!(o.algorithms, vec![JwtAlgorithm::Ps256, JwtAlgorithm::Es384]);
}

#[test]
fn shared_secret_and_unsigned_algorithms_are_refused_with_their_line() {
    let (text, first) = with(
        "[identity.oidc]\nissuer = \"https://id.acme.example\"\naudience = \"warden\"\njwks = \"jwks.json\"\n\
         algorithms = [\"RS256\", \"HS256\", \"none\", \"XS1\"]\n",
    );
    let got = issues(&text);
    let line = first + 4;
    has(&got, line, "`HS256` is a shared-secret algorithm");
    has(&got, line, "`none` means an unsigned token");
    has(&got, line, "`XS1` is not a known algorithm");
}

#[test]
fn every_oidc_mistake_is_reported_at_once() {
    let (text, first) = with(
        "[identity.oidc]\nissuer = \"\"\naudience = []\njwks = \"ftp://keys.example/jwks\"\n\
         clock_skew_secs = 86400\nuser_claim = \"\"\nalgorithms = []\n",
    );
    let got = issues(&text);
    has(&got, first + 1, "issuer must not be empty");
    has(&got, first + 2, "audience must name at least one");
    has(&got, first + 3, "only `https://` and `http://` URLs");
    has(&got, first + 4, "more than 600 seconds");
    has(&got, first + 5, "user_claim must name a claim");
    has(&got, first + 6, "algorithms is empty");
}

#[test]
fn oidc_requires_issuer_audience_and_jwks() {
    let (text, first) = with("[identity.oidc]\nissuer = \"https://id.acme.example\"\n");
    let got = issues(&text);
    assert!(
        got.iter()
            .any(|i| i.starts_with(&format!("warden.toml:{first}:")) && i.contains("audience")),
        "{got:#?}"
    );
}

#[test]
fn unknown_keys_in_identity_tables_are_errors_with_their_line() {
    let (text, first) = with(
        "[identity.oidc]\nissuer = \"https://id.acme.example\"\naudience = \"warden\"\njwks = \"jwks.json\"\nsecret = \"x\"\n",
    );
    has(&issues(&text), first + 4, "unknown field `secret`");
    let (text, first) = with("[identity.proxy]\nheader = \"x-forwarded-user\"\nfrom = [\"10.0.0.1\"]\ntrust_all = true\n");
    has(&issues(&text), first + 3, "unknown field `trust_all`");
    let (text, first) = with("[identity.saml]\nurl = \"x\"\n");
    has(&issues(&text), first, "unknown field `saml`");
    let (text, first) = with("[users.alice]\ntoken_env = \"ALICE_TOKEN\"\ntoken = \"plain\"\n");
    has(&issues(&text), first + 2, "unknown field `token`");
}

#[test]
fn the_proxy_table() {
    let (text, _) = with(
        "[identity.proxy]\nheader = \"X-Forwarded-User\"\nfrom = [\"10.0.0.0/24\", \"::1\"]\n",
    );
    let p = load_with(&text, &[]).unwrap().identity.proxy.unwrap();
    assert_eq!(p.header, "x-forwarded-user");
    assert_eq!(
        p.from,
        vec![
            IpNet::parse("10.0.0.0/24").unwrap(),
            IpNet::parse("::1/128").unwrap()
        ]
    );
    assert!(p.trusts("10.0.0.77".parse().unwrap()));
    assert!(!p.trusts("10.0.1.1".parse().unwrap()));
}

#[test]
fn proxy_mistakes_name_their_line() {
    let (text, first) =
        with("[identity.proxy]\nheader = \"x forwarded user\"\nfrom = [\"10.0.0.0/40\", \"proxy.internal\"]\n");
    let got = issues(&text);
    has(&got, first + 1, "is not an HTTP header name");
    has(
        &got,
        first + 2,
        "`10.0.0.0/40` is not an IP address or CIDR block",
    );
    has(&got, first + 2, "`proxy.internal` is not an IP address");
    let (text, first) = with("[identity.proxy]\nheader = \"authorization\"\nfrom = []\n");
    let got = issues(&text);
    has(&got, first + 1, "is read for other purposes");
    has(&got, first + 2, "must list the addresses");
}

#[test]
fn local_user_tokens_for_directory_users() {
    let (text, _) = with(
        "[users.alice]\ntoken_env = \"WARDEN_ALICE_TOKEN\"\n\n[users.bob]\ntoken_env = \"WARDEN_BOB_TOKEN\"\n",
    );
    let users = load_with(&text, &[]).unwrap().identity.users;
    assert_eq!(users.len(), 2);
    assert_eq!(users["alice"].token_env, "WARDEN_ALICE_TOKEN");
}

#[test]
fn a_user_token_for_someone_not_in_the_directory_is_an_error() {
    let (text, first) = with(
        "[users.alice]\ntoken_env = \"WARDEN_ALICE_TOKEN\"\n\n[users.mallory]\ntoken_env = \"M\"\n\n[users.bob]\ntoken_env = \"1BAD-NAME\"\n",
    );
    let got = issues(&text);
    has(&got, first + 3, "`mallory` is not a user in the directory");
    has(
        &got,
        first + 7,
        "`1BAD-NAME` is not an environment variable name",
    );
    assert_eq!(got.len(), 2, "{got:#?}");
}
