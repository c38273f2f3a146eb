//! People authenticating, with real parts: RSA and Ed25519 keys made with `openssl` (test-only,
//! under `tests/fixtures/identity/`), a JWKS served over HTTP by a real server, the Acme
//! directory. Index:
//!
//! - `a_directory_user_signs_in_with_an_oidc_token`: RS256 and EdDSA tokens name Acme users.
//! - `every_bad_token_is_refused_with_its_own_reason`: wrong audience, wrong issuer, expired,
//!   `alg: none`, HS256 signed with the RSA public key, a tampered payload, an unknown user,
//!   a key of another type.
//! - `keys_rotate_without_a_restart`: the provider switches key sets; a token with the new key
//!   works, the old key is gone, unknown key ids do not hammer the provider.
//! - `a_jwks_file_is_read_again_when_a_key_is_unknown`.
//! - `a_jwks_server_down_at_first_use_fails_closed_then_recovers`.
//! - `local_user_tokens`: a user's token names them; any other token is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

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

/// The Acme configuration with `extra` tables appended.
fn acme_with(extra: &str) -> Config {
    let dir = repo().join("examples/acme");
    let text = std::fs::read_to_string(dir.join("warden.toml")).unwrap();
    Config::load("warden.toml", &format!("{text}\n{extra}"), &Files(dir)).unwrap()
}

fn oidc_table(jwks: &str) -> String {
    format!("[identity.oidc]\nissuer = \"{ISSUER}\"\naudience = [\"{AUDIENCE}\", \"warden-admin\"]\njwks = \"{jwks}\"\nclock_skew_secs = 30\n")
}

fn quick() -> RefreshPolicy {
    RefreshPolicy {
        min_interval: Duration::from_millis(100),
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

    fn serve(&self, doc: String) {
        *self.doc.write().unwrap() = doc;
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

    // A burst of made-up key ids refreshes at most once per interval.
    let before = server.hits.load(Ordering::SeqCst);
    for i in 0..20 {
        let t = sign(
            Algorithm::RS256,
            &format!("made-up-{i}"),
            &rsa(2),
            &claims("bob"),
        );
        let e = auth.authenticate(&t).await.unwrap_err();
        assert!(matches!(e, IdentityError::UnknownKeyId(_)), "{e}");
    }
    assert!(server.hits.load(Ordering::SeqCst) - before <= 1);
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
