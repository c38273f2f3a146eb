//! The identity provider's public keys (a JSON Web Key Set), kept current without a restart.
//!
//! Keys come from a file (re-read) or a URL (re-fetched). The set is refreshed when a token names
//! a key id the set does not hold, and when it is older than [`RefreshPolicy::max_age`]; never
//! more often than once per [`RefreshPolicy::min_interval`], so a stream of tokens with made-up
//! key ids cannot turn Warden into a load generator against the provider. A failed refresh keeps
//! the last good keys; with no keys at all, every token is refused with
//! [`IdentityError::JwksUnavailable`](super::IdentityError::JwksUnavailable).
//!
//! Only signature keys of the asymmetric kinds are kept (`RSA`, `EC`, `OKP`): a symmetric
//! (`oct`) key in the set is ignored, so a provider's published document can never turn into an
//! HMAC secret.
//!
//! A URL is fetched over HTTPS (rustls), trusting the platform's root certificates and those of
//! `identity.oidc.ca_file`; plain `http://` is for a loopback host only (the configuration
//! refuses any other), and a redirect is followed only to another `https://` URL (or a loopback
//! one). Whoever can replace the keys in transit can sign any person's token.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::DecodingKey;
use warden_core::identity::{is_loopback_host, JwtAlgorithm};

use super::IdentityError;

/// Largest JWKS document read, in bytes.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// Largest CA file read, in bytes (a full public bundle is about 200 KiB).
const MAX_CA_FILE_BYTES: u64 = 4 << 20;

/// Most redirects followed from the JWKS URL.
const MAX_REDIRECTS: usize = 5;

/// Where the keys come from.
#[derive(Debug, Clone)]
pub(crate) enum KeySource {
    /// A file on disk, re-read on refresh.
    File(PathBuf),
    /// A URL, fetched with the client built by [`client`].
    Url {
        /// The URL, as configured.
        url: String,
        /// The HTTP(S) client, with its trust roots.
        client: reqwest::Client,
    },
}

/// The client that fetches a JWKS URL: TLS trusting the platform's roots plus the certificates
/// of `ca_file` (`shown` is the path as configured, for messages), redirects kept on HTTPS.
/// A CA file that cannot be read or holds no certificate is an error here, at start, rather
/// than a refused token later.
pub(crate) fn client(ca_file: Option<(&Path, &str)>) -> Result<reqwest::Client, IdentityError> {
    let mut builder =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::custom(|attempt| {
            let url = attempt.url();
            if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else if url.scheme() == "https" || url.host_str().is_some_and(is_loopback_host) {
                attempt.follow()
            } else {
                let to = url.to_string();
                attempt.error(format!(
                    "redirected to `{to}`: the keys are fetched over https only"
                ))
            }
        }));
    if let Some((path, shown)) = ca_file {
        let bad = |reason: String| IdentityError::CaFile {
            path: shown.to_string(),
            reason,
        };
        let len = std::fs::metadata(path)
            .map_err(|e| bad(format!("cannot read: {e}")))?
            .len();
        if len > MAX_CA_FILE_BYTES {
            return Err(bad(format!("larger than {MAX_CA_FILE_BYTES} bytes")));
        }
        let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| bad(format!("not a PEM certificate bundle: {}", chain(&e))))?;
        if certs.is_empty() {
            return Err(bad(
                "no certificate in it (expected PEM `-----BEGIN CERTIFICATE-----` blocks)".into(),
            ));
        }
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().map_err(|e| match ca_file {
        Some((_, shown)) => IdentityError::CaFile {
            path: shown.to_string(),
            reason: chain(&e),
        },
        None => IdentityError::JwksClient(chain(&e)),
    })
}

/// An error and its causes, outermost first: a failed fetch says why (a TLS certificate
/// problem is in the causes, not in the outermost text).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let t = c.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        cause = c.source();
    }
    text
}

/// How often the key set may and must be refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Least time between two refreshes (an unknown key id inside it is refused at once).
    pub min_interval: Duration,
    /// Keys older than this are refreshed at the next authentication.
    pub max_age: Duration,
    /// How long one fetch of a URL may take.
    pub timeout: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            min_interval: Duration::from_secs(10),
            max_age: Duration::from_secs(300),
            timeout: Duration::from_secs(5),
        }
    }
}

/// One verification key.
pub(crate) struct Key {
    /// `kty`: `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// `crv` of an `EC` or `OKP` key.
    pub crv: Option<String>,
    /// `alg`, when the key names the one algorithm it is for.
    pub alg: Option<String>,
    /// The key, for `jsonwebtoken`.
    pub decoding: DecodingKey,
}

impl Key {
    /// True when a token signed with `alg` may be checked with this key: the key's type (and
    /// curve) is the algorithm's, and the key names no other algorithm.
    pub fn fits(&self, alg: JwtAlgorithm) -> bool {
        if self.kty != alg.key_type() {
            return false;
        }
        if self.alg.as_deref().is_some_and(|a| a != alg.name()) {
            return false;
        }
        let crv = self.crv.as_deref();
        match alg {
            JwtAlgorithm::Es256 => crv == Some("P-256"),
            JwtAlgorithm::Es384 => crv == Some("P-384"),
            JwtAlgorithm::EdDsa => crv == Some("Ed25519"),
            _ => true,
        }
    }
}

/// The keys by id. A key without `kid` is kept under the empty id.
#[derive(Clone, Default)]
struct KeySet {
    keys: HashMap<String, Arc<Key>>,
}

/// Parse a JWKS document, keeping the usable signature keys.
fn parse_jwks(text: &str) -> Result<KeySet, String> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Some(list) = doc.get("keys").and_then(|k| k.as_array()) else {
        return Err("no `keys` array".into());
    };
    let mut keys = HashMap::new();
    for v in list {
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let Some(kty) = s("kty") else { continue };
        if !matches!(kty.as_str(), "RSA" | "EC" | "OKP") {
            continue;
        }
        if s("use").is_some_and(|u| u != "sig") {
            continue;
        }
        let alg = s("alg");
        if alg
            .as_deref()
            .is_some_and(|a| JwtAlgorithm::parse(a).is_none())
        {
            continue;
        }
        let Ok(jwk) = serde_json::from_value::<Jwk>(v.clone()) else {
            continue;
        };
        let Ok(decoding) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        keys.insert(
            s("kid").unwrap_or_default(),
            Arc::new(Key {
                kty,
                crv: s("crv"),
                alg,
                decoding,
            }),
        );
    }
    if keys.is_empty() {
        return Err("no usable signature key (RSA, EC or OKP)".into());
    }
    Ok(KeySet { keys })
}

#[derive(Default)]
struct State {
    keys: Arc<KeySet>,
    /// When the keys were last read successfully.
    loaded: Option<Instant>,
    /// Why the last refresh failed, if it did.
    last_error: Option<String>,
}

/// The key set of one identity provider, refreshed as [`RefreshPolicy`] says.
pub(crate) struct KeyCache {
    source: KeySource,
    policy: RefreshPolicy,
    state: RwLock<State>,
    /// When the last refresh was attempted; held while one runs, so refreshes do not pile up.
    attempt: tokio::sync::Mutex<Option<Instant>>,
}

impl KeyCache {
    /// A cache with no keys yet; the first use loads them.
    pub fn new(source: KeySource, policy: RefreshPolicy) -> KeyCache {
        KeyCache {
            source,
            policy,
            state: RwLock::new(State::default()),
            attempt: tokio::sync::Mutex::new(None),
        }
    }

    fn snapshot(&self) -> (Arc<KeySet>, Option<Instant>, Option<String>) {
        match self.state.read() {
            Ok(s) => (s.keys.clone(), s.loaded, s.last_error.clone()),
            Err(p) => {
                let s = p.into_inner();
                (s.keys.clone(), s.loaded, s.last_error.clone())
            }
        }
    }

    /// The key a token's `kid` names (a token without `kid` may use the set's only key).
    pub async fn key(&self, kid: Option<&str>) -> Result<Arc<Key>, IdentityError> {
        let (keys, loaded, _) = self.snapshot();
        let stale = loaded.is_none_or(|t| t.elapsed() >= self.policy.max_age);
        let found = lookup(&keys, kid);
        if found.is_some() && !stale {
            return found.ok_or_else(|| unknown(kid));
        }
        self.refresh().await;
        let (keys, _, error) = self.snapshot();
        if keys.keys.is_empty() {
            return Err(IdentityError::JwksUnavailable(
                error.unwrap_or_else(|| "no keys have been loaded yet".into()),
            ));
        }
        lookup(&keys, kid).ok_or_else(|| unknown(kid))
    }

    /// Read the keys again, unless a refresh ran less than `min_interval` ago.
    async fn refresh(&self) {
        let mut attempt = self.attempt.lock().await;
        if attempt.is_some_and(|t| t.elapsed() < self.policy.min_interval) {
            return;
        }
        *attempt = Some(Instant::now());
        let result = self.fetch().await.and_then(|text| parse_jwks(&text));
        let mut state = match self.state.write() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        match result {
            Ok(keys) => {
                state.keys = Arc::new(keys);
                state.loaded = Some(Instant::now());
                state.last_error = None;
            }
            Err(e) => {
                tracing::warn!(source = %self.describe(), error = %e, "JWKS refresh failed; keeping the last good keys");
                state.last_error = Some(format!("{}: {e}", self.describe()));
            }
        }
    }

    fn describe(&self) -> String {
        match &self.source {
            KeySource::File(p) => p.display().to_string(),
            KeySource::Url { url, .. } => url.clone(),
        }
    }

    async fn fetch(&self) -> Result<String, String> {
        match &self.source {
            KeySource::File(path) => {
                let path = path.clone();
                let text = tokio::task::spawn_blocking(move || std::fs::read_to_string(path))
                    .await
                    .map_err(|e| format!("cannot read: {e}"))?
                    .map_err(|e| format!("cannot read: {e}"))?;
                if text.len() > MAX_JWKS_BYTES {
                    return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
                }
                Ok(text)
            }
            KeySource::Url { url, client } => {
                let response = client
                    .get(url)
                    .timeout(self.policy.timeout)
                    .send()
                    .await
                    .map_err(|e| fetch_error(&e))?;
                if !response.status().is_success() {
                    return Err(format!("HTTP status {}", response.status()));
                }
                let body = response
                    .bytes()
                    .await
                    .map_err(|e| format!("cannot read the response: {e}"))?;
                if body.len() > MAX_JWKS_BYTES {
                    return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
                }
                String::from_utf8(body.to_vec()).map_err(|_| "not UTF-8".to_string())
            }
        }
    }
}

/// Why a fetch failed, with a hint when the server's certificate was not trusted.
fn fetch_error(e: &reqwest::Error) -> String {
    let text = format!("cannot fetch: {}", chain(e));
    if text.contains("certificate") {
        format!("{text} (a provider whose certificate is from a private authority needs that authority in identity.oidc.ca_file)")
    } else {
        text
    }
}

fn lookup(keys: &KeySet, kid: Option<&str>) -> Option<Arc<Key>> {
    match kid {
        Some(k) => keys.keys.get(k).cloned(),
        None if keys.keys.len() == 1 => keys.keys.values().next().cloned(),
        None => None,
    }
}

fn unknown(kid: Option<&str>) -> IdentityError {
    IdentityError::UnknownKeyId(kid.unwrap_or("(none)").to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_encryption_and_unknown_keys_are_not_kept() {
        let doc = r#"{"keys":[
            {"kty":"oct","kid":"h","k":"c2VjcmV0"},
            {"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","kid":"hs","alg":"HS256","n":"AQAB","e":"AQAB"},
            {"kty":"OKP","kid":"ed","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
        ]}"#;
        let set = parse_jwks(doc).unwrap();
        assert_eq!(set.keys.len(), 1);
        let ed = set.keys.get("ed").unwrap();
        assert!(ed.fits(JwtAlgorithm::EdDsa));
        assert!(!ed.fits(JwtAlgorithm::Rs256));
        assert!(parse_jwks(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).is_err());
        assert!(parse_jwks("[]").is_err());
    }
}
