//! Who owns each HTTP MCP session.
//!
//! An MCP session belongs to the bearer token that opened it: the token of the `initialize`
//! request whose response carried the new `Mcp-Session-Id`. The owner is recorded before that
//! response leaves Warden, so no other request can claim a fresh session. Every later request
//! naming the session (POST of a request or notification, GET of its event stream, DELETE) is
//! served only for the same token; for any other token the session does not exist.
//!
//! The registry also remembers whether the client has sent `notifications/initialized`
//! (requests other than `ping` are refused until it has).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::ct_eq;

/// One session's owner.
#[derive(Debug, Clone, Copy)]
struct Owner {
    /// SHA-256 of the bearer token that opened the session.
    token: [u8; 32],
    /// Whether the client has sent `notifications/initialized`.
    initialized: bool,
    /// When the session was claimed.
    since: Instant,
}

/// The owners of the open HTTP MCP sessions, by `Mcp-Session-Id`.
#[derive(Debug, Default)]
pub struct Owners {
    map: Mutex<HashMap<String, Owner>>,
}

/// What a request may do in a session, as seen by [`Owners::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No such session for this token (unknown, ended, or another token's).
    NotFound,
    /// The token's own session, before `notifications/initialized`.
    Uninitialized,
    /// The token's own session, initialized.
    Ready,
}

impl Owners {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Owner>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record `token` as the owner of the new session `sid` (not yet initialized).
    pub fn claim(&self, sid: &str, token: [u8; 32]) {
        self.map().insert(
            sid.to_string(),
            Owner {
                token,
                initialized: false,
                since: Instant::now(),
            },
        );
    }

    /// What `token` may do in session `sid`.
    pub fn check(&self, sid: &str, token: &[u8; 32]) -> Access {
        match self.map().get(sid) {
            Some(o) if ct_eq(&o.token, token) && o.initialized => Access::Ready,
            Some(o) if ct_eq(&o.token, token) => Access::Uninitialized,
            _ => Access::NotFound,
        }
    }

    /// The client of session `sid` sent `notifications/initialized`.
    pub fn initialized(&self, sid: &str) {
        if let Some(o) = self.map().get_mut(sid) {
            o.initialized = true;
        }
    }

    /// Forget session `sid` (it was deleted).
    pub fn forget(&self, sid: &str) {
        self.map().remove(sid);
    }

    /// Forget every session that is not `live`, except those claimed less than `grace` ago
    /// (which may have opened after `live` was read).
    pub fn retain_live(&self, live: &[String], grace: Duration) {
        self.map()
            .retain(|sid, o| o.since.elapsed() < grace || live.iter().any(|l| l == sid));
    }

    /// How many sessions have an owner.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// True when no session has an owner.
    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_claiming_token_finds_the_session() {
        let o = Owners::default();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert_eq!(o.check("s", &a), Access::NotFound);
        o.claim("s", a);
        assert_eq!(o.check("s", &a), Access::Uninitialized);
        assert_eq!(o.check("s", &b), Access::NotFound);
        o.initialized("s");
        assert_eq!(o.check("s", &a), Access::Ready);
        assert_eq!(o.check("s", &b), Access::NotFound);
        o.retain_live(&[], Duration::ZERO);
        assert_eq!(o.check("s", &a), Access::NotFound);
    }
}
