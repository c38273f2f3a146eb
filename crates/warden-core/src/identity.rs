//! How people authenticate, as configured: `[identity.oidc]`, `[identity.proxy]` and
//! `[users.NAME]` in `warden.toml`.
//!
//! This module only parses and validates; it checks no token. `warden-enforce`'s `identity`
//! module builds an authenticator from these settings. The tables live here, beside
//! [`crate::config`], so that `config.rs` keeps to loading and each concern stays in one file.
//!
//! What a deployer cannot configure is as deliberate as what they can: a shared-secret algorithm
//! (`HS256` …) or `none` is never accepted for people's tokens, because a verifier that holds
//! the secret could also mint tokens, and `none` is no signature at all.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;

use crate::directory::Directory;
use crate::error::{locate_toml, Issues};

/// `[identity]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdentity {
    #[serde(default)]
    oidc: Option<RawOidc>,
    #[serde(default)]
    proxy: Option<RawProxy>,
}

/// `[identity.oidc]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOidc {
    issuer: String,
    audience: OneOrMany,
    jwks: String,
    #[serde(default)]
    clock_skew_secs: Option<u64>,
    #[serde(default)]
    user_claim: Option<String>,
    #[serde(default)]
    algorithms: Option<Vec<String>>,
    #[serde(default)]
    ca_file: Option<String>,
}

/// A string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// `[identity.proxy]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    header: String,
    from: Vec<String>,
}

/// `[users.NAME]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUser {
    token_env: String,
}

/// How people authenticate: validated `[identity.*]` and `[users.*]` tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityConfig {
    /// OIDC/JWT: tokens from an identity provider, checked against its published keys.
    pub oidc: Option<OidcConfig>,
    /// A trusted authenticating proxy that names the user in a header.
    pub proxy: Option<ProxyConfig>,
    /// Local user tokens, by directory user.
    pub users: BTreeMap<String, UserTokenConfig>,
}

/// `[identity.oidc]`: which tokens of which identity provider name a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// The `iss` a token must carry, exactly.
    pub issuer: String,
    /// The `aud` values of which a token must carry at least one.
    pub audience: Vec<String>,
    /// Where the provider's public keys are.
    pub jwks: JwksSource,
    /// Seconds of clock difference tolerated on `exp` and `nbf`.
    pub clock_skew_secs: u64,
    /// The claim whose value is the directory user's id.
    pub user_claim: String,
    /// The signature algorithms accepted (never a shared-secret one, never `none`).
    pub algorithms: Vec<JwtAlgorithm>,
    /// `ca_file`: a PEM file of certificate authorities trusted for an `https://` JWKS URL
    /// besides the platform's roots (a private identity provider), relative to the
    /// configuration file, as written. Only the path: the enforcement side reads the file.
    pub ca_file: Option<String>,
}

/// Where the identity provider's JSON Web Key Set is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A file, relative to the configuration file, as written.
    File(String),
    /// An `https://` URL, or an `http://` URL of a loopback host (see [`is_loopback_host`]).
    Url(String),
}

/// True when `host` (a URL's host as written: a name, an IPv4 address or a bracketed IPv6
/// address) is this machine's loopback: `localhost`, `127.0.0.0/8` or `::1`. The one place a
/// JWKS may be fetched over plain `http://`: keys fetched in clear over a network could be
/// replaced in transit, and whoever replaces them can sign any person's token.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => a.is_loopback(),
        Ok(IpAddr::V6(a)) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|m| m.is_loopback()),
        Err(_) => false,
    }
}

/// An asymmetric JWT signature algorithm Warden accepts for people's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// Ed25519.
    EdDsa,
}

/// The default `algorithms`: RS256, ES256, EdDSA.
pub const DEFAULT_ALGORITHMS: [JwtAlgorithm; 3] = [
    JwtAlgorithm::Rs256,
    JwtAlgorithm::Es256,
    JwtAlgorithm::EdDsa,
];

impl JwtAlgorithm {
    /// Every algorithm accepted in `algorithms`.
    pub const ALL: [JwtAlgorithm; 9] = [
        JwtAlgorithm::Rs256,
        JwtAlgorithm::Rs384,
        JwtAlgorithm::Rs512,
        JwtAlgorithm::Ps256,
        JwtAlgorithm::Ps384,
        JwtAlgorithm::Ps512,
        JwtAlgorithm::Es256,
        JwtAlgorithm::Es384,
        JwtAlgorithm::EdDsa,
    ];

    /// The name in a JWT header's `alg` (RFC 7518).
    pub fn name(self) -> &'static str {
        match self {
            JwtAlgorithm::Rs256 => "RS256",
            JwtAlgorithm::Rs384 => "RS384",
            JwtAlgorithm::Rs512 => "RS512",
            JwtAlgorithm::Ps256 => "PS256",
            JwtAlgorithm::Ps384 => "PS384",
            JwtAlgorithm::Ps512 => "PS512",
            JwtAlgorithm::Es256 => "ES256",
            JwtAlgorithm::Es384 => "ES384",
            JwtAlgorithm::EdDsa => "EdDSA",
        }
    }

    /// The algorithm a header's `alg` names, if Warden accepts it at all.
    pub fn parse(name: &str) -> Option<JwtAlgorithm> {
        JwtAlgorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The JWK key type (`kty`) its keys have: `RSA`, `EC` or `OKP`.
    pub fn key_type(self) -> &'static str {
        match self {
            JwtAlgorithm::Rs256
            | JwtAlgorithm::Rs384
            | JwtAlgorithm::Rs512
            | JwtAlgorithm::Ps256
            | JwtAlgorithm::Ps384
            | JwtAlgorithm::Ps512 => "RSA",
            JwtAlgorithm::Es256 | JwtAlgorithm::Es384 => "EC",
            JwtAlgorithm::EdDsa => "OKP",
        }
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `[identity.proxy]`: an authenticating proxy in front of Warden that names the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The header (lowercase) in which the proxy names the user.
    pub header: String,
    /// The addresses the proxy connects from; the header is believed from nowhere else.
    pub from: Vec<IpNet>,
}

impl ProxyConfig {
    /// True when a connection from `addr` comes from the trusted proxy.
    pub fn trusts(&self, addr: IpAddr) -> bool {
        self.from.iter().any(|n| n.contains(addr))
    }
}

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    /// The network address, as written.
    pub addr: IpAddr,
    /// The prefix length in bits.
    pub prefix: u8,
}

impl IpNet {
    /// Parse `ADDR` or `ADDR/PREFIX`.
    pub fn parse(s: &str) -> Option<IpNet> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(IpNet { addr, prefix })
    }

    /// True when `ip` is in the network (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                prefix_eq(&n.octets(), &a.octets(), u32::from(self.prefix))
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                prefix_eq(&n.octets(), &a.octets(), u32::from(self.prefix))
            }
            _ => false,
        }
    }
}

fn prefix_eq(n: &[u8], a: &[u8], bits: u32) -> bool {
    let mut left = bits;
    for (x, y) in n.iter().zip(a.iter()) {
        if left == 0 {
            return true;
        }
        let take = left.min(8);
        let mask = u8::MAX << (8 - take);
        if (x & mask) != (y & mask) {
            return false;
        }
        left -= take;
    }
    true
}

/// `[users.NAME]`: a local token for a directory user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserTokenConfig {
    /// The environment variable that holds the user's token.
    pub token_env: String,
}

/// Validate the raw tables, recording every problem with its line in `file`.
pub(crate) fn validate(
    file: &str,
    text: &str,
    raw: Option<&RawIdentity>,
    users: &BTreeMap<String, RawUser>,
    directory: Option<&Directory>,
    issues: &mut Issues,
) -> IdentityConfig {
    let oidc = raw
        .and_then(|r| r.oidc.as_ref())
        .and_then(|o| validate_oidc(file, text, o, issues));
    let proxy = raw
        .and_then(|r| r.proxy.as_ref())
        .and_then(|p| validate_proxy(file, text, p, issues));
    let mut out = BTreeMap::new();
    for (name, u) in users {
        let at = |key| locate_toml(text, &["users", name.as_str()], key);
        if let Some(d) = directory {
            if d.user(name).is_none() {
                issues.push(
                    file,
                    at(None),
                    format!("users.{name}: `{name}` is not a user in the directory"),
                );
                continue;
            }
        }
        if !is_env_name(&u.token_env) {
            issues.push(
                file,
                at(Some("token_env")),
                format!(
                    "users.{name}: token_env `{}` is not an environment variable name (letters, digits, `_`)",
                    u.token_env
                ),
            );
            continue;
        }
        out.insert(
            name.clone(),
            UserTokenConfig {
                token_env: u.token_env.clone(),
            },
        );
    }
    IdentityConfig {
        oidc,
        proxy,
        users: out,
    }
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn validate_oidc(file: &str, text: &str, o: &RawOidc, issues: &mut Issues) -> Option<OidcConfig> {
    let at = |key| locate_toml(text, &["identity", "oidc"], Some(key));
    let before = issues.0.len();
    if o.issuer.trim().is_empty() {
        issues.push(file, at("issuer"), "identity.oidc.issuer must not be empty");
    }
    let audience = match &o.audience {
        OneOrMany::One(a) => vec![a.clone()],
        OneOrMany::Many(v) => v.clone(),
    };
    if audience.is_empty() || audience.iter().any(|a| a.trim().is_empty()) {
        issues.push(
            file,
            at("audience"),
            "identity.oidc.audience must name at least one audience, none of them empty",
        );
    }
    let jwks = o.jwks.trim();
    let jwks = if jwks.starts_with("https://") || jwks.starts_with("http://") {
        match url::Url::parse(jwks) {
            Ok(u) if u.scheme() == "http" && !u.host_str().is_some_and(is_loopback_host) => {
                issues.push(
                    file,
                    at("jwks"),
                    format!("identity.oidc.jwks: `{jwks}` is plain http: keys fetched in clear could be replaced in transit, and a replaced key signs any person's token; use an https:// URL (http:// is accepted only for a loopback host: localhost, 127.0.0.1, ::1)"),
                );
                None
            }
            Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => {
                Some(JwksSource::Url(jwks.to_string()))
            }
            _ => {
                issues.push(
                    file,
                    at("jwks"),
                    format!("identity.oidc.jwks: `{jwks}` is not a valid URL"),
                );
                None
            }
        }
    } else if jwks.is_empty() {
        issues.push(
            file,
            at("jwks"),
            "identity.oidc.jwks must name a file (relative to warden.toml) or an https:// URL",
        );
        None
    } else if jwks.contains("://") {
        issues.push(
            file,
            at("jwks"),
            format!("identity.oidc.jwks: `{jwks}`: only `https://` and `http://` URLs are read; write a file path otherwise"),
        );
        None
    } else {
        Some(JwksSource::File(jwks.to_string()))
    };
    let ca_file = match o.ca_file.as_deref().map(str::trim) {
        None => None,
        Some("") => {
            issues.push(
                file,
                at("ca_file"),
                "identity.oidc.ca_file must name a PEM file (relative to warden.toml); remove it to trust the platform's roots only",
            );
            None
        }
        Some(f) if !o.jwks.trim().starts_with("https://") => {
            issues.push(
                file,
                at("ca_file"),
                format!("identity.oidc.ca_file `{f}` is used only to check an https:// jwks URL, and jwks is `{}`; remove ca_file, or give jwks as the provider's https:// URL", o.jwks.trim()),
            );
            None
        }
        Some(f) => Some(f.to_string()),
    };
    let clock_skew_secs = o.clock_skew_secs.unwrap_or(60);
    if clock_skew_secs > 600 {
        issues.push(
            file,
            at("clock_skew_secs"),
            format!("identity.oidc.clock_skew_secs is {clock_skew_secs}: more than 600 seconds would accept tokens long expired"),
        );
    }
    let user_claim = o.user_claim.clone().unwrap_or_else(|| "sub".to_string());
    if user_claim.trim().is_empty() {
        issues.push(
            file,
            at("user_claim"),
            "identity.oidc.user_claim must name a claim (default `sub`)",
        );
    }
    let algorithms = match &o.algorithms {
        None => DEFAULT_ALGORITHMS.to_vec(),
        Some(names) => {
            let mut algs = Vec::new();
            for n in names {
                match JwtAlgorithm::parse(n) {
                    Some(a) if !algs.contains(&a) => algs.push(a),
                    Some(_) => {}
                    None => issues.push(file, at("algorithms"), refused_algorithm(n)),
                }
            }
            if names.is_empty() {
                issues.push(
                    file,
                    at("algorithms"),
                    "identity.oidc.algorithms is empty: no token could be accepted; remove it for the default (RS256, ES256, EdDSA)",
                );
            }
            algs
        }
    };
    if issues.0.len() > before {
        return None;
    }
    Some(OidcConfig {
        issuer: o.issuer.clone(),
        audience,
        jwks: jwks?,
        clock_skew_secs,
        user_claim,
        algorithms,
        ca_file,
    })
}

/// Why an `alg` name is not accepted in `algorithms`.
fn refused_algorithm(name: &str) -> String {
    let upper = name.to_ascii_uppercase();
    if upper.starts_with("HS") {
        format!("identity.oidc.algorithms: `{name}` is a shared-secret algorithm; whoever can check such a token can also forge one, so people's tokens must be signed with a private key (RS256, ES256, EdDSA …)")
    } else if upper == "NONE" {
        format!("identity.oidc.algorithms: `{name}` means an unsigned token and is never accepted")
    } else {
        let all: Vec<&str> = JwtAlgorithm::ALL.iter().map(|a| a.name()).collect();
        format!(
            "identity.oidc.algorithms: `{name}` is not a known algorithm; use some of {}",
            all.join(", ")
        )
    }
}

fn validate_proxy(
    file: &str,
    text: &str,
    p: &RawProxy,
    issues: &mut Issues,
) -> Option<ProxyConfig> {
    let at = |key| locate_toml(text, &["identity", "proxy"], Some(key));
    let before = issues.0.len();
    let header = p.header.trim().to_ascii_lowercase();
    let token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if header.is_empty() || !header.chars().all(token_char) {
        issues.push(
            file,
            at("header"),
            format!(
                "identity.proxy.header: `{}` is not an HTTP header name",
                p.header
            ),
        );
    } else if header == "authorization" || header.starts_with("x-warden-") {
        issues.push(
            file,
            at("header"),
            format!("identity.proxy.header: `{header}` is read for other purposes; use the header your proxy sets, such as `x-forwarded-user`"),
        );
    }
    let mut from = Vec::new();
    for f in &p.from {
        match IpNet::parse(f) {
            Some(n) => from.push(n),
            None => issues.push(
                file,
                at("from"),
                format!("identity.proxy.from: `{f}` is not an IP address or CIDR block (`10.0.0.5`, `10.0.0.0/24`, `::1`)"),
            ),
        }
    }
    if p.from.is_empty() {
        issues.push(
            file,
            at("from"),
            "identity.proxy.from must list the addresses the proxy connects from; the header is believed from nowhere else",
        );
    }
    if issues.0.len() > before {
        return None;
    }
    Some(ProxyConfig { header, from })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn networks_contain_their_addresses_only() {
        let n = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one = IpNet::parse("192.168.1.7").unwrap();
        assert_eq!(one.prefix, 32);
        assert!(one.contains("192.168.1.7".parse().unwrap()));
        assert!(!one.contains("192.168.1.8".parse().unwrap()));
        let v6 = IpNet::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("10.1.0.1".parse().unwrap()));
        assert!(IpNet::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        for bad in ["10.0.0.0/33", "host", "10.0.0/8", "::1/129", ""] {
            assert!(IpNet::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "LocalHost",
            "localhost.",
            "127.0.0.1",
            "127.200.0.9",
            "[::1]",
            "::1",
            "[::ffff:127.0.0.1]",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "localhost.example",
            "example.com",
            "10.0.0.1",
            "[::2]",
            "0.0.0.0",
            "[::]",
            "128.0.0.1",
            "",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn algorithm_names_round_trip_and_shared_secrets_are_unknown() {
        for a in JwtAlgorithm::ALL {
            assert_eq!(JwtAlgorithm::parse(a.name()), Some(a));
        }
        for bad in ["HS256", "HS512", "none", "rs256"] {
            assert_eq!(JwtAlgorithm::parse(bad), None, "{bad}");
        }
    }
}
