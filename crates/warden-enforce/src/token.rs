//! Mission tokens: a mission a person granted, signed by Warden, narrowed by whoever holds it.
//!
//! A mission token is a [biscuit](biscuit_auth) signed with Warden's root key ([`RootKey`]).
//! - The **authority block** carries the grant ([`Grant`]) as its context (JSON): the mission
//!   id and template, the agent and the principal, the purpose (the person's own words), when
//!   it was granted, when it expires, how the person authenticated, and any narrowing made at
//!   the grant. It also carries a Datalog check on the expiry, so any biscuit verifier refuses
//!   it once expired.
//! - Each **attenuation block** carries a [`Narrowing`] as its context (JSON) and a check on
//!   its expiry. Anyone holding a token can append one, offline ([`attenuate`]); biscuit's
//!   signatures make blocks impossible to remove or change. The child mission's id is derived
//!   from the block's signature (its revocation id), so no holder can choose it.
//!
//! Verifying a token ([`Verifier::verify`]) checks the signatures against the root public key,
//! reads every block, and rebuilds the mission through [`Engine::attenuate`], block by block:
//! a block that would widen its parent in any way (tools, resources, hosts, argument values,
//! label ceiling, audience, budgets, expiry, agent) is refused, whoever made it and with
//! whichever biscuit library, as is a block Warden cannot read. The Datalog checks of every
//! block are then run with the clock given. Nothing is looked up in the store: revocation is
//! applied by the [`crate::Enforcer`] to every mission of the chain, from its cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use biscuit_auth::builder::{AuthorizerBuilder, BlockBuilder};
use biscuit_auth::{Biscuit, KeyPair, PrivateKey, PublicKey, UnverifiedBiscuit};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use warden_core::mission::Mission;
use warden_core::narrow::{Narrowing, WidenError};
use warden_core::Engine;

/// How many verified tokens are kept (by digest) before the cache starts afresh.
const CACHE_MAX: usize = 4096;

/// Why a mission token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a biscuit, or its signatures do not verify against Warden's root key (forged with
    /// another key, or changed after signing).
    #[error("the mission token is not valid: {0}")]
    Invalid(String),
    /// A block Warden did not write and cannot read.
    #[error("block {block} of the mission token is not a Warden grant or narrowing: {reason}")]
    Unreadable {
        /// The block (0: the grant).
        block: usize,
        /// Why.
        reason: String,
    },
    /// The grant names what this configuration does not have.
    #[error("the mission token's grant cannot be honoured: {0}")]
    Grant(String),
    /// A narrowing block would widen its parent.
    #[error("block {block} of the mission token widens its parent: {source}")]
    Widening {
        /// The block.
        block: usize,
        /// What it widens.
        source: WidenError,
    },
    /// Expired (or a block's Datalog check failed).
    #[error("the mission token is expired or refused by its own checks: {0}")]
    Refused(String),
    /// Presented by an agent other than the one the mission is for.
    #[error("the mission `{mission}` is for agent `{expected}`, not `{presented}`")]
    WrongAgent {
        /// The mission.
        mission: String,
        /// Its agent.
        expected: String,
        /// Who presented it.
        presented: String,
    },
    /// The root key cannot be read or made.
    #[error("Warden's mission-token key: {0}")]
    Key(String),
}

/// Warden's root key for mission tokens (Ed25519).
pub struct RootKey {
    pair: KeyPair,
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootKey")
            .field("public", &self.public_hex())
            .finish_non_exhaustive()
    }
}

impl RootKey {
    /// A new random key.
    pub fn generate() -> RootKey {
        RootKey {
            pair: KeyPair::new(),
        }
    }

    /// The key from its private half, hex-encoded (as [`RootKey::private_hex`] writes it).
    ///
    /// # Errors
    /// When it is not a hex-encoded Ed25519 private key.
    pub fn from_private_hex(hex_key: &str) -> Result<RootKey, TokenError> {
        let private =
            PrivateKey::from_bytes_hex(hex_key.trim(), biscuit_auth::builder::Algorithm::Ed25519)
                .map_err(|e| TokenError::Key(e.to_string()))?;
        Ok(RootKey {
            pair: KeyPair::from(&private),
        })
    }

    /// The key of an Ed25519 private key's 32 bytes (as in a PKCS#8 file `warden keygen`
    /// writes).
    ///
    /// # Errors
    /// When the bytes are not an Ed25519 private key.
    pub fn from_ed25519_bytes(bytes: &[u8; 32]) -> Result<RootKey, TokenError> {
        let private = PrivateKey::from_bytes(bytes, biscuit_auth::builder::Algorithm::Ed25519)
            .map_err(|e| TokenError::Key(e.to_string()))?;
        Ok(RootKey {
            pair: KeyPair::from(&private),
        })
    }

    /// The key in the PKCS#8 PEM file `path`, made (readable by its owner only) when there is
    /// none yet. Returns the key and whether it was made now.
    ///
    /// # Errors
    /// When the file cannot be read, is not an Ed25519 private key, or cannot be written.
    pub fn load_or_create(path: &std::path::Path) -> Result<(RootKey, bool), TokenError> {
        let key_error = |e: warden_store::StoreError| TokenError::Key(e.to_string());
        let (signing, made) = if path.exists() {
            (
                warden_store::load_signing_key(path).map_err(key_error)?,
                false,
            )
        } else {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    TokenError::Key(format!("cannot make `{}`: {e}", dir.display()))
                })?;
            }
            let key = warden_store::generate_keypair().map_err(key_error)?;
            warden_store::save_signing_key(path, &key).map_err(key_error)?;
            (key, true)
        };
        Ok((RootKey::from_ed25519_bytes(&signing.to_bytes())?, made))
    }

    /// The private half, hex-encoded (keep it secret: whoever has it can grant any mission).
    pub fn private_hex(&self) -> String {
        self.pair.private().to_bytes_hex()
    }

    /// The public half, hex-encoded (enough to verify tokens).
    pub fn public_hex(&self) -> String {
        self.pair.public().to_bytes_hex()
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.pair.public()
    }
}

/// What a person granted: the authority block's context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The mission id (given by Warden at the grant).
    pub mission: String,
    /// The template.
    pub template: String,
    /// The agent it is for.
    pub agent: String,
    /// The person it acts for (who granted it).
    pub principal: String,
    /// The person's own words.
    pub purpose: String,
    /// Granted at, ms since the Unix epoch.
    pub granted_at_ms: i64,
    /// Expires at, ms since the Unix epoch.
    pub expires_at_ms: i64,
    /// How the person authenticated (`jwt`, `local`, `proxy`).
    pub auth: String,
    /// A narrowing made at the grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub narrowing: Option<Narrowing>,
}

/// An attenuation block's context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Attenuation {
    /// What the block narrows.
    narrowing: Narrowing,
}

/// Context prefixes, so that a block's context is never mistaken for another kind.
const GRANT_PREFIX: &str = "warden-grant:";
const NARROW_PREFIX: &str = "warden-narrowing:";

fn expiry_check(expires_at_ms: i64) -> String {
    format!("check if now_ms($t), $t < {expires_at_ms}")
}

/// Mint the token of `grant`, signed with `key`.
///
/// # Errors
/// When the token cannot be built.
pub fn mint(key: &RootKey, grant: &Grant) -> Result<String, TokenError> {
    let context = serde_json::to_string(grant).map_err(|e| TokenError::Invalid(e.to_string()))?;
    let token = Biscuit::builder()
        .check(expiry_check(grant.expires_at_ms).as_str())
        .map_err(|e| TokenError::Invalid(e.to_string()))?
        .context(format!("{GRANT_PREFIX}{context}"))
        .build(&key.pair)
        .map_err(|e| TokenError::Invalid(e.to_string()))?;
    token
        .to_base64()
        .map_err(|e| TokenError::Invalid(e.to_string()))
}

/// A narrower token: `token` with one more block narrowing it by `narrowing`. Needs no key: any
/// holder can narrow, offline. Whether the narrowing is really narrower is checked when the
/// token is verified.
///
/// # Errors
/// When `token` is not a biscuit.
pub fn attenuate(token: &str, narrowing: &Narrowing) -> Result<String, TokenError> {
    let parsed = UnverifiedBiscuit::from_base64(token.trim())
        .map_err(|e| TokenError::Invalid(e.to_string()))?;
    let context = serde_json::to_string(&Attenuation {
        narrowing: narrowing.clone(),
    })
    .map_err(|e| TokenError::Invalid(e.to_string()))?;
    let mut block = BlockBuilder::new().context(format!("{NARROW_PREFIX}{context}"));
    if let Some(at) = narrowing.expires_at_ms {
        block = block
            .check(expiry_check(at).as_str())
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
    }
    parsed
        .append(block)
        .and_then(|t| t.to_base64())
        .map_err(|e| TokenError::Invalid(e.to_string()))
}

/// The id of the mission a token's block `index` makes: derived from that block's signature.
fn child_id(revocation_id: &[u8]) -> String {
    let digest = Sha256::digest(revocation_id);
    format!("m-{}", hex::encode(&digest[..8]))
}

/// A verified token's mission and what is needed to check it again.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The mission the token gives (the last of its chain), with its chain and narrowings.
    pub mission: Arc<Mission>,
    /// The grant at the root.
    pub grant: Grant,
}

/// Verifies mission tokens for one engine, offline, caching what it verified by the token's
/// digest.
pub struct Verifier {
    root: PublicKey,
    engine: Arc<Engine>,
    cache: Mutex<HashMap<[u8; 32], Verified>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("root", &self.root.to_bytes_hex())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier of tokens signed by `root`, for missions of `engine`'s configuration.
    pub fn new(root: PublicKey, engine: Arc<Engine>) -> Verifier {
        Verifier {
            root,
            engine,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The mission `token` gives to `agent` at `now_ms`. A token verified before is taken from
    /// the cache; its expiry and agent are checked again every time.
    ///
    /// # Errors
    /// [`TokenError`], naming why.
    pub fn verify(&self, token: &str, agent: &str, now_ms: i64) -> Result<Verified, TokenError> {
        let digest: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&digest)
            .cloned();
        let verified = match cached {
            Some(v) => v,
            None => {
                let v = self.verify_fresh(token, now_ms)?;
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= CACHE_MAX {
                    cache.clear();
                }
                cache.insert(digest, v.clone());
                v
            }
        };
        let m = &verified.mission;
        if now_ms >= m.expires_at_ms {
            return Err(TokenError::Refused(format!(
                "the mission `{}` expired",
                m.id
            )));
        }
        if m.agent != agent {
            return Err(TokenError::WrongAgent {
                mission: m.id.clone(),
                expected: m.agent.clone(),
                presented: agent.to_string(),
            });
        }
        Ok(verified)
    }

    /// Verify `token` without the cache.
    ///
    /// # Errors
    /// As [`Verifier::verify`].
    pub fn verify_fresh(&self, token: &str, now_ms: i64) -> Result<Verified, TokenError> {
        let biscuit = Biscuit::from_base64(token.trim(), self.root)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        let contexts = biscuit.context();
        let ids = biscuit.revocation_identifiers();
        let grant: Grant = read_context(contexts.first(), 0, GRANT_PREFIX)?;
        let mut mission = self.root_mission(&grant, now_ms)?;
        for (block, context) in contexts.iter().enumerate().skip(1) {
            let a: Attenuation = read_context(Some(context), block, NARROW_PREFIX)?;
            let id = ids
                .get(block)
                .map(|r| child_id(r))
                .ok_or_else(|| TokenError::Unreadable {
                    block,
                    reason: "it has no signature".into(),
                })?;
            mission = self
                .engine
                .attenuate(&mission, &id, &a.narrowing, now_ms)
                .map_err(|source| TokenError::Widening { block, source })?;
            mission.auth = grant.auth.clone();
        }
        let mut authorizer = AuthorizerBuilder::new()
            .fact(format!("now_ms({now_ms})").as_str())
            .and_then(|b| b.policy("allow if true"))
            .and_then(|b| b.build(&biscuit))
            .map_err(|e| TokenError::Refused(e.to_string()))?;
        authorizer
            .authorize()
            .map_err(|e| TokenError::Refused(e.to_string()))?;
        Ok(Verified {
            mission: Arc::new(mission),
            grant,
        })
    }

    fn root_mission(&self, g: &Grant, now_ms: i64) -> Result<Mission, TokenError> {
        let mut root = self
            .engine
            .grant(
                &g.mission,
                &g.template,
                &g.agent,
                &g.principal,
                &g.purpose,
                g.granted_at_ms,
            )
            .map_err(TokenError::Grant)?;
        if g.expires_at_ms > root.expires_at_ms {
            return Err(TokenError::Grant(format!(
                "it expires after the template `{}` allows",
                g.template
            )));
        }
        root.expires_at_ms = g.expires_at_ms;
        root.auth = g.auth.clone();
        if let Some(n) = &g.narrowing {
            // The grant's own narrowing is checked as a block would be, and kept on the root.
            let narrowed = self
                .engine
                .attenuate(&root, &format!("{}-narrowed", root.id), n, now_ms)
                .map_err(|source| TokenError::Widening { block: 0, source })?;
            root.agent = narrowed.agent;
            root.expires_at_ms = narrowed.expires_at_ms;
            root.narrowings = narrowed.narrowings;
        }
        Ok(root)
    }
}

fn read_context<T: serde::de::DeserializeOwned>(
    context: Option<&Option<String>>,
    block: usize,
    prefix: &str,
) -> Result<T, TokenError> {
    let unreadable = |reason: String| TokenError::Unreadable { block, reason };
    let text = context
        .and_then(|c| c.as_deref())
        .ok_or_else(|| unreadable("it has no context".into()))?;
    let json = text
        .strip_prefix(prefix)
        .ok_or_else(|| unreadable(format!("its context does not start with `{prefix}`")))?;
    serde_json::from_str(json).map_err(|e| unreadable(e.to_string()))
}
