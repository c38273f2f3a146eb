//! Local user tokens: `[users.NAME] token_env = "VAR"`, for deployments without an identity
//! provider.
//!
//! Only SHA-256 digests are kept. A token is compared with every user's digest in constant time,
//! without stopping at a match, so neither whether nor where it matched shows in the time taken.

use sha2::{Digest, Sha256};

/// The users' token digests.
#[derive(Clone, Default)]
pub(crate) struct LocalTokens {
    digests: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for LocalTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTokens")
            .field(
                "users",
                &self.digests.iter().map(|(u, _)| u).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// SHA-256 of a token.
fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether two digests are equal, in time independent of where they differ.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

impl LocalTokens {
    /// Tokens from `(user, token)` pairs.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> LocalTokens {
        LocalTokens {
            digests: pairs.into_iter().map(|(u, t)| (u, digest(&t))).collect(),
        }
    }

    /// The user whose token this is.
    pub fn find(&self, token: &str) -> Option<&str> {
        let d = digest(token);
        let mut found = None;
        for (user, known) in &self.digests {
            if ct_eq(&d, known) && found.is_none() {
                found = Some(user.as_str());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_user_of_a_token() {
        let t = LocalTokens::new([
            ("alice".to_string(), "a-secret".to_string()),
            ("bob".to_string(), "b-secret".to_string()),
        ]);
        assert_eq!(t.find("b-secret"), Some("bob"));
        assert_eq!(t.find("a-secret"), Some("alice"));
        assert_eq!(t.find("a-secreT"), None);
        assert_eq!(t.find(""), None);
        assert!(!format!("{t:?}").contains("secret"));
    }
}
