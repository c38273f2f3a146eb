//! Session names: what logs, explanations and traces call a session instead of its id.
//!
//! An HTTP `Mcp-Session-Id` is a capability: whoever holds it (with a valid token) addresses the
//! session. It therefore never appears in the decision log, in texts sent to agents, or in
//! tracing. A session is named instead by [`session_name`]: HMAC-SHA256 of its id under a key
//! drawn at random when the process starts, truncated to 64 bits of hex. The same id always has
//! the same name within one process, so every decision of a session carries one name (and a
//! breaker can be tripped by it), while the name reveals nothing about the id.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// How many bytes of the keyed hash a name keeps (16 hex digits).
const NAME_BYTES: usize = 8;

/// The process's naming key: from the operating system's random source; should that fail, from
/// the standard library's randomly seeded hasher keys (also drawn from the operating system).
fn key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut k = [0u8; 32];
        if getrandom::fill(&mut k).is_err() {
            for (i, chunk) in k.chunks_mut(8).enumerate() {
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_usize(i);
                chunk.copy_from_slice(&h.finish().to_le_bytes());
            }
        }
        k
    })
}

/// The name of the session whose id is `id`: `s-` and 16 hex digits of a keyed hash of it.
pub fn session_name(id: &str) -> String {
    let digest: [u8; 32] = match <Hmac<Sha256> as Mac>::new_from_slice(key()) {
        Ok(mut mac) => {
            mac.update(id.as_bytes());
            mac.finalize().into_bytes().into()
        }
        // HMAC takes keys of any length; this arm only keeps the function total.
        Err(_) => {
            let mut h = Sha256::new();
            h.update(key());
            h.update(id.as_bytes());
            h.finalize().into()
        }
    };
    format!(
        "s-{}",
        hex::encode(digest.get(..NAME_BYTES).unwrap_or_default())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_stable_short_and_hides_the_id() {
        let id = "0b6f3c2e-6a41-4c5e-9b0e-2f3d8c1a7e55";
        let name = session_name(id);
        assert_eq!(name, session_name(id));
        assert_ne!(name, session_name("another"));
        assert_eq!(name.len(), 2 + 2 * NAME_BYTES);
        assert!(!name.contains(id) && !id.contains(&name[2..]));
    }
}
