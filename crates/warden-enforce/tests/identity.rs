//! People authenticating, with real parts: RSA and Ed25519 keys made with `openssl` (test-only,
//! under `tests/fixtures/identity/`), a JWKS served over HTTP and over HTTPS by a real server
//! (the HTTPS one with a certificate authority made at test time), the Acme directory. Index:
//!
//! - `a_directory_user_signs_in_with_an_oidc_token`: RS256 and EdDSA tokens name Acme users.
//! - `every_bad_token_is_refused_with_its_own_reason`: wrong audience, wrong issuer, expired,
//!   `alg: none`, HS256 signed with the RSA public key, a tampered payload, an unknown user,
//!   a key of another type.
//! - `keys_rotate_without_a_restart`: the provider switches key sets; a token with the new key
//!   works, the old key is gone, unknown key ids do not hammer the provider.
//! - `a_jwks_file_is_read_again_when_a_key_is_unknown`.
//! - `a_jwks_server_down_at_first_use_fails_closed_then_recovers`.
//! - `keys_over_https_with_the_configured_ca_sign_in_and_rotate`: `ca_file` names the test CA.
//! - `keys_over_https_from_an_untrusted_ca_are_refused`: without `ca_file`, every token is
//!   refused and the reason names the certificate.
//! - `a_missing_or_empty_ca_file_stops_the_start`.
//! - `plain_http_keys_are_for_loopback_only`: a non-loopback `http://` JWKS is a config error.
//! - `local_user_tokens`: a user's token names them; any other token is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_rustls::rustls;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use warden_core::{Config, Sources};
use warden_enforce::identity::{AuthMethod, Authenticator, IdentityError, RefreshPolicy};

const ISSUER: &str = "https://id.acme.example";
const AUDIENCE: &str = "warden";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/identity")
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(name)).unwrap()
}

/// Files under one folder.
struct Files(PathBuf);

impl Sources for Files {
    fn read(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(self.0.join(path)).map_err(|e| e.to_string())
    }

    fn list(&self, dir: &str, ext: &str) -> Result<Vec<String>, String> {
        let mut out: Vec<String> = std::fs::read_dir(self.0.join(dir))
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(ext))
            .map(|n| format!("{dir}/{n}"))
            .collect();
        out.sort();
        Ok(out)
    }
}

/// The Acme configuration without its own local user (alice), with `extra` tables appended.
fn acme_with(extra: &str) -> Config {
    let dir = repo().join("examples/acme");
    let text = std::fs::read_to_string(dir.join("warden.toml"))
        .unwrap()
        .replace("[users.alice]\ntoken_env = \"WARDEN_USER_ALICE\"\n", "");
    Config::load("warden.toml", &format!("{text}\n{extra}"), &Files(dir)).unwrap()
}

fn oidc_table(jwks: &str) -> String {
    format!("[identity.oidc]\nissuer = \"{ISSUER}\"\naudience = [\"{AUDIENCE}\", \"warden-admin\"]\njwks = \"{jwks}\"\nclock_skew_secs = 30\n")
}

/// The least time between two fetches of the keys in these tests.
const MIN_REFRESH: Duration = Duration::from_millis(100);

fn quick() -> RefreshPolicy {
    RefreshPolicy {
        min_interval: MIN_REFRESH,
        max_age: Duration::from_secs(300),
        timeout: Duration::from_secs(2),
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(user: &str) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": user, "iat": now(), "exp": now() + 600})
}

fn sign(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn rsa(n: u8) -> EncodingKey {
    EncodingKey::from_rsa_pem(fixture(&format!("test-rsa-{n}.key.pem")).as_bytes()).unwrap()
}

fn ed() -> EncodingKey {
    EncodingKey::from_ed_pem(fixture("test-ed25519.key.pem").as_bytes()).unwrap()
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

/// A JWKS over HTTP: the document it serves can be swapped, and it counts its requests.
struct JwksServer {
    url: String,
    doc: Arc<RwLock<String>>,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    async fn start(doc: String) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        JwksServer::on(listener, doc).await
    }

    async fn on(listener: tokio::net::TcpListener, doc: String) -> JwksServer {
        let addr = listener.local_addr().unwrap();
        let (app, doc, hits) = jwks_app(doc);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        JwksServer {
            url: format!("http://{addr}/jwks.json"),
            doc,
            hits,
            task,
        }
    }

    /// The same server over HTTPS on 127.0.0.1, with a certificate `ca` issued.
    async fn https(doc: String, ca: &TestCa) -> JwksServer {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let listener = TlsListener {
            tcp,
            acceptor: ca.acceptor(),
        };
        let (app, doc, hits) = jwks_app(doc);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        JwksServer {
            url: format!("https://{addr}/jwks.json"),
            doc,
            hits,
            task,
        }
    }

    fn serve(&self, doc: String) {
        *self.doc.write().unwrap() = doc;
    }
}

/// The router serving `/jwks.json`: the document (swappable) and a request count.
fn jwks_app(doc: String) -> (axum::Router, Arc<RwLock<String>>, Arc<AtomicUsize>) {
    let doc = Arc::new(RwLock::new(doc));
    let hits = Arc::new(AtomicUsize::new(0));
    let (d, h) = (doc.clone(), hits.clone());
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let (d, h) = (d.clone(), h.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                let body = d.read().unwrap().clone();
                ([("content-type", "application/json")], body)
            }
        }),
    );
    (app, doc, hits)
}

/// A certificate authority made for one test, and a server certificate it issued for
/// `localhost` and `127.0.0.1`.
struct TestCa {
    /// The authority's certificate, PEM (what `ca_file` names).
    pem: String,
    leaf: rustls::pki_types::CertificateDer<'static>,
    leaf_key: Vec<u8>,
}

impl TestCa {
    fn new() -> TestCa {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Warden test CA");
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
        let mut leaf =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = leaf.signed_by(&leaf_key, &ca).unwrap();
        TestCa {
            pem: ca.pem(),
            leaf: leaf.der().clone(),
            leaf_key: leaf_key.serialize_der(),
        }
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(self.leaf_key.clone());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![self.leaf.clone()], key.into())
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}

/// TCP with a TLS handshake on each connection, for `axum::serve`.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            // A client that does not trust the certificate ends the handshake: wait for the next.
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn oidc_against(server: &JwksServer) -> Authenticator {
    let config = acme_with(&oidc_table(&server.url));
    Authenticator::with_refresh(&config, &repo(), no_env, quick()).unwrap()
}

#[tokio::test]
async fn a_directory_user_signs_in_with_an_oidc_token() {
    let server = JwksServer::start(fixture("jwks-1.json")).await;
    let auth = oidc_against(&server).await;
    let token = sign(Algorithm::RS256, "test-rsa-1", &rsa(1), &claims("alice"));
    let p = auth.authenticate(&token).await.unwrap();
    assert_eq!(p.user, "alice");
    assert_eq!(p.method, AuthMethod::Jwt);
    assert_eq!(p.subject.as_deref(), Some("alice"));
    assert_eq!(p.issuer.as_deref(), Some(ISSUER));

    // Another accepted audience, an Ed25519 key, a generated employee.
    let mut c = claims("eng00001");
    c["aud"] = json!(["someone-else", "warden-admin"]);
    let token = sign(Algorithm::EdDSA, "test-ed25519", &ed(), &c);
    let p = auth.authenticate(&token).await.unwrap();
    assert_eq!((p.user.as_str(), p.method), ("eng00001", AuthMethod::Jwt));
}

#[tokio::test]
async fn every_bad_token_is_refused_with_its_own_reason() {
    let server = JwksServer::start(fixture("jwks-1.json")).await;
    let auth = oidc_against(&server).await;
    let refused = |token: String| {
        let auth = &auth;
        async move { auth.authenticate(&token).await.unwrap_err() }
    };

    let mut c = claims("alice");
    c["aud"] = json!("another-service");
    let e = refused(sign(Algorithm::RS256, "test-rsa-1", &rsa(1), &c)).await;
    assert!(matches!(e, IdentityError::WrongAudience { .. }), "{e}");
    assert!(e.to_string().starts_with("wrong audience"), "{e}");

    let mut c = claims("alice");
    c["iss"] = json!("https://evil.example");
    let e = refused(sign(Algorithm::RS256, "test-rsa-1", &rsa(1), &c)).await;
    assert!(matches!(e, IdentityError::WrongIssuer { .. }), "{e}");
    assert!(e.to_string().starts_with("wrong issuer"), "{e}");

    // Expired beyond the 30 s skew; within it, still accepted.
    let mut c = claims("alice");
    c["exp"] = json!(now() - 120);
    let e = refused(sign(Algorithm::RS256, "test-rsa-1", &rsa(1), &c)).await;
    assert_eq!(e, IdentityError::Expired);
    assert!(e.to_string().starts_with("token expired"), "{e}");
    c["exp"] = json!(now() - 5);
    let t = sign(Algorithm::RS256, "test-rsa-1", &rsa(1), &c);
    assert_eq!(auth.authenticate(&t).await.unwrap().user, "alice");

    // `alg: none`, unsigned.
    let header = b64(br#"{"alg":"none","typ":"JWT","kid":"test-rsa-1"}"#);
    let body = b64(claims("alice").to_string().as_bytes());
    let e = refused(format!("{header}.{body}.")).await;
    assert_eq!(e, IdentityError::AlgorithmNotAllowed("none".into()));
    assert!(e.to_string().starts_with("algorithm not allowed"), "{e}");

    // HS256 with the RSA public key (as published) used as the HMAC secret.
    let public = fixture("test-rsa-1.pub.pem");
    let forged = sign(
        Algorithm::HS256,
        "test-rsa-1",
        &EncodingKey::from_secret(public.as_bytes()).unwrap(),
        &claims("alice"),
    );
    let e = refused(forged).await;
    assert_eq!(e, IdentityError::AlgorithmNotAllowed("HS256".into()));

    // A payload changed after signing: bob becomes carol.
    let good = sign(Algorithm::RS256, "test-rsa-1", &rsa(1), &claims("bob"));
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims("carol").to_string().as_bytes()),
        parts[2]
    );
    let e = refused(tampered).await;
    assert_eq!(e, IdentityError::BadSignature);
    assert!(e.to_string().starts_with("bad signature"), "{e}");

    // Signed by a key that is not the provider's, under the provider's key id.
    let e = refused(sign(
        Algorithm::RS256,
        "test-rsa-1",
        &rsa(2),
        &claims("bob"),
    ))
    .await;
    assert_eq!(e, IdentityError::BadSignature);

    // A person the directory does not know.
    let e = refused(sign(
        Algorithm::RS256,
        "test-rsa-1",
        &rsa(1),
        &claims("mallory"),
    ))
    .await;
    assert_eq!(e, IdentityError::NoSuchUser("mallory".into()));
    assert!(e.to_string().starts_with("no such directory user"), "{e}");

    // An RS256 token naming the Ed25519 key.
    let e = refused(sign(
        Algorithm::RS256,
        "test-ed25519",
        &rsa(1),
        &claims("bob"),
    ))
    .await;
    assert!(matches!(e, IdentityError::KeyMismatch { .. }), "{e}");

    // An algorithm that is asymmetric but not allowed by default.
    let e = refused(sign(
        Algorithm::PS256,
        "test-rsa-1",
        &rsa(1),
        &claims("bob"),
    ))
    .await;
    assert_eq!(e, IdentityError::AlgorithmNotAllowed("PS256".into()));

    // Not a token at all.
    let e = refused("hello".into()).await;
    assert_eq!(e, IdentityError::UnknownToken);

    // Every reason reads differently.
    let texts = [
        IdentityError::UnknownToken.to_string(),
        IdentityError::Expired.to_string(),
        IdentityError::BadSignature.to_string(),
        IdentityError::UnknownKeyId("k".into()).to_string(),
        IdentityError::JwksUnavailable("x".into()).to_string(),
        IdentityError::NoSuchUser("u".into()).to_string(),
        IdentityError::AlgorithmNotAllowed("a".into()).to_string(),
    ];
    let distinct: std::collections::BTreeSet<&String> = texts.iter().collect();
    assert_eq!(distinct.len(), texts.len());
}

#[tokio::test]
async fn keys_rotate_without_a_restart() {
    let server = JwksServer::start(fixture("jwks-1.json")).await;
    let auth = oidc_against(&server).await;
    let old = sign(Algorithm::RS256, "test-rsa-1", &rsa(1), &claims("alice"));
    assert_eq!(auth.authenticate(&old).await.unwrap().user, "alice");
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);

    // Known keys are not fetched again.
    for _ in 0..5 {
        auth.authenticate(&old).await.unwrap();
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);

    server.serve(fixture("jwks-2.json"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let new = sign(Algorithm::RS256, "test-rsa-2", &rsa(2), &claims("bob"));
    let p = auth.authenticate(&new).await.unwrap();
    assert_eq!((p.user.as_str(), p.method), ("bob", AuthMethod::Jwt));
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);

    // The old key is gone from the set.
    let e = auth.authenticate(&old).await.unwrap_err();
    assert_eq!(e, IdentityError::UnknownKeyId("test-rsa-1".into()));
    assert!(e.to_string().starts_with("unknown key id"), "{e}");

    // A burst of made-up key ids refreshes at most once per interval: the tokens are signed
    // first (signing is slow in a debug build), and the bound allows one refresh per interval
    // the burst really took, however slow the machine.
    let made_up: Vec<String> = (0..20)
        .map(|i| {
            sign(
                Algorithm::RS256,
                &format!("made-up-{i}"),
                &rsa(2),
                &claims("bob"),
            )
        })
        .collect();
    let before = server.hits.load(Ordering::SeqCst);
    let started = std::time::Instant::now();
    for t in &made_up {
        let e = auth.authenticate(t).await.unwrap_err();
        assert!(matches!(e, IdentityError::UnknownKeyId(_)), "{e}");
    }
    let intervals = started.elapsed().as_millis() / MIN_REFRESH.as_millis() + 1;
    let fetched = server.hits.load(Ordering::SeqCst) - before;
    assert!(
        fetched as u128 <= intervals,
        "{fetched} fetches for 20 unknown key ids in {intervals} refresh intervals"
    );
    assert!(fetched < 20, "every unknown key id fetched the keys again");
}

#[tokio::test]
async fn a_jwks_file_is_read_again_when_a_key_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jwks.json"), fixture("jwks-1.json")).unwrap();
    let config = acme_with(&oidc_table("jwks.json"));
    let auth = Authenticator::with_refresh(&config, dir.path(), no_env, quick()).unwrap();
    let t = sign(Algorithm::RS256, "test-rsa-1", &rsa(1), &claims("carol"));
    assert_eq!(auth.authenticate(&t).await.unwrap().user, "carol");

    std::fs::write(dir.path().join("jwks.json"), fixture("jwks-2.json")).unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let t = sign(Algorithm::RS256, "test-rsa-2", &rsa(2), &claims("carol"));
    assert_eq!(auth.authenticate(&t).await.unwrap().user, "carol");

    // A broken file keeps the last good keys.
    std::fs::write(dir.path().join("jwks.json"), "{ not json").unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let e = auth
        .authenticate(&sign(Algorithm::RS256, "other", &rsa(2), &claims("carol")))
        .await
        .unwrap_err();
    assert_eq!(e, IdentityError::UnknownKeyId("other".into()));
    assert_eq!(auth.authenticate(&t).await.unwrap().user, "carol");
}

#[tokio::test]
async fn a_jwks_server_down_at_first_use_fails_closed_then_recovers() {
    // A port nothing listens on (yet).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let config = acme_with(&oidc_table(&format!("http://{addr}/jwks.json")));
    let auth = Authenticator::with_refresh(&config, &repo(), no_env, quick()).unwrap();
    let t = sign(Algorithm::RS256, "test-rsa-1", &rsa(1), &claims("alice"));
    let e = auth.authenticate(&t).await.unwrap_err();
    assert!(matches!(e, IdentityError::JwksUnavailable(_)), "{e}");
    assert!(e.to_string().starts_with("JWKS unavailable"), "{e}");

    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let _server = JwksServer::on(listener, fixture("jwks-1.json")).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(auth.authenticate(&t).await.unwrap().user, "alice");
}

#[tokio::test]
async fn local_user_tokens() {
    let config = acme_with(
        "[users.alice]\ntoken_env = \"WARDEN_TEST_ALICE\"\n\n[users.dave]\ntoken_env = \"WARDEN_TEST_DAVE\"\n",
    );
    let env = |var: &str| match var {
        "WARDEN_TEST_ALICE" => Some("alice-local-secret".to_string()),
        "WARDEN_TEST_DAVE" => Some("dave-local-secret".to_string()),
        _ => None,
    };
    let auth = Authenticator::from_config(&config, &repo(), env).unwrap();
    let p = auth.authenticate("alice-local-secret").await.unwrap();
    assert_eq!((p.user.as_str(), p.method), ("alice", AuthMethod::Local));
    assert_eq!(
        auth.authenticate("dave-local-secret").await.unwrap().user,
        "dave"
    );
    for wrong in ["alice-local-secreT", "", "bob", "a.b.c"] {
        assert_eq!(
            auth.authenticate(wrong).await.unwrap_err(),
            IdentityError::UnknownToken,
            "{wrong}"
        );
    }
    assert!(!format!("{auth:?}").contains("secret"));

    // A configured user whose variable is unset: the authenticator is not built.
    let e = Authenticator::from_config(&config, &repo(), no_env).unwrap_err();
    assert!(matches!(e, IdentityError::MissingUserToken { .. }), "{e}");
}

#[tokio::test]
async fn keys_over_https_with_the_configured_ca_sign_in_and_rotate() {
    let ca = TestCa::new();
    let server = JwksServer::https(fixture("jwks-1.json"), &ca).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("idp-ca.pem"), &ca.pem).unwrap();
    let config = acme_with(&format!(
        "{}ca_file = \"idp-ca.pem\"\n",
        oidc_table(&server.url)
    ));
    assert_eq!(
        config.identity.oidc.as_ref().unwrap().ca_file.as_deref(),
        Some("idp-ca.pem")
    );
    let auth = Authenticator::with_refresh(&config, dir.path(), no_env, quick()).unwrap();

    let old = sign(Algorithm::RS256, "test-rsa-1", &rsa(1), &claims("alice"));
    let p = auth.authenticate(&old).await.unwrap();
    assert_eq!((p.user.as_str(), p.method), ("alice", AuthMethod::Jwt));
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);

    // The provider rotates its keys; the new key is fetched over HTTPS, the old one is gone.
    server.serve(fixture("jwks-2.json"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let new = sign(Algorithm::RS256, "test-rsa-2", &rsa(2), &claims("bob"));
    assert_eq!(auth.authenticate(&new).await.unwrap().user, "bob");
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
    let e = auth.authenticate(&old).await.unwrap_err();
    assert_eq!(e, IdentityError::UnknownKeyId("test-rsa-1".into()));
}

#[tokio::test]
async fn keys_over_https_from_an_untrusted_ca_are_refused() {
    let ca = TestCa::new();
    let server = JwksServer::https(fixture("jwks-1.json"), &ca).await;
    let config = acme_with(&oidc_table(&server.url));
    let auth = Authenticator::with_refresh(&config, &repo(), no_env, quick()).unwrap();
    let t = sign(Algorithm::RS256, "test-rsa-1", &rsa(1), &claims("alice"));
    let e = auth.authenticate(&t).await.unwrap_err();
    let IdentityError::JwksUnavailable(why) = &e else {
        panic!("want JWKS unavailable, got {e}");
    };
    assert!(why.contains(&server.url), "{why}");
    assert!(why.contains("certificate"), "{why}");
    assert!(why.contains("UnknownIssuer"), "{why}");
    assert!(why.contains("identity.oidc.ca_file"), "{why}");
    // The handshake failed before any request reached the server.
    assert_eq!(server.hits.load(Ordering::SeqCst), 0);

    // Another authority's certificate in `ca_file` does not help either.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("other-ca.pem"), TestCa::new().pem).unwrap();
    let config = acme_with(&format!(
        "{}ca_file = \"other-ca.pem\"\n",
        oidc_table(&server.url)
    ));
    let auth = Authenticator::with_refresh(&config, dir.path(), no_env, quick()).unwrap();
    let e = auth.authenticate(&t).await.unwrap_err();
    assert!(
        matches!(&e, IdentityError::JwksUnavailable(w) if w.contains("certificate")),
        "{e}"
    );
    assert_eq!(server.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_missing_or_empty_ca_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let table = |ca: &str| {
        acme_with(&format!(
            "{}ca_file = \"{ca}\"\n",
            oidc_table("https://id.acme.example/jwks.json")
        ))
    };
    let e = Authenticator::from_config(&table("missing.pem"), dir.path(), no_env).unwrap_err();
    assert!(
        matches!(&e, IdentityError::CaFile { path, reason } if path == "missing.pem" && reason.starts_with("cannot read")),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("identity.oidc.ca_file `missing.pem`"),
        "{e}"
    );

    std::fs::write(dir.path().join("empty.pem"), "not a certificate\n").unwrap();
    let e = Authenticator::from_config(&table("empty.pem"), dir.path(), no_env).unwrap_err();
    assert!(e.to_string().contains("no certificate in it"), "{e}");

    // PEM markers around bytes that are no certificate.
    std::fs::write(
        dir.path().join("broken.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = Authenticator::from_config(&table("broken.pem"), dir.path(), no_env).unwrap_err();
    assert!(matches!(e, IdentityError::CaFile { .. }), "{e}");
}

#[test]
fn plain_http_keys_are_for_loopback_only() {
    let dir = repo().join("examples/acme");
    let text = std::fs::read_to_string(dir.join("warden.toml")).unwrap();
    let load = |jwks: &str| {
        Config::load(
            "warden.toml",
            &format!("{text}\n{}", oidc_table(jwks)),
            &Files(dir.clone()),
        )
    };
    for remote in [
        "http://id.acme.example/jwks.json",
        "http://10.0.0.7:8080/jwks.json",
        "http://[2001:db8::1]/jwks.json",
        "http://localhost.evil.example/jwks.json",
    ] {
        let e = load(remote).unwrap_err().to_string();
        assert!(e.contains("identity.oidc.jwks"), "{remote}: {e}");
        assert!(e.contains("use an https:// URL"), "{remote}: {e}");
    }
    for local in [
        "http://127.0.0.1:8080/jwks.json",
        "http://127.9.9.9/jwks.json",
        "http://localhost:9000/jwks.json",
        "http://[::1]:9000/jwks.json",
        "https://id.acme.example/jwks.json",
    ] {
        assert!(load(local).is_ok(), "{local}");
    }
}
