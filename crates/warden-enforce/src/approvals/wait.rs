//! Waiting for a person: a held call waits on the store's change feed for its request to be
//! answered, on every replica alike.

use std::future::Future;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use warden_store::Change;

use super::{Stored, APPROVED, CANCELLED, DENIED, PENDING, USED};
use crate::{EnforceError, Enforcer};

/// How a wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Every hold is approved (or a narrower call was chosen): decide the call again.
    Approved,
    /// A person denied it: why.
    Denied(String),
    /// Cancelled (the kill switch): why.
    Cancelled(String),
    /// Used already, or expired: why.
    Closed(String),
    /// Still waiting when the time ran out (nothing is approved by a timeout).
    Pending,
    /// The caller gave up.
    Abandoned,
}

/// How often a waiting call looks at its request even without news (a missed notification
/// costs at most this).
const POLL: Duration = Duration::from_secs(1);

impl Enforcer {
    /// Wait up to `wait` for request `id` to be answered; `tick` is called about once a second
    /// with the time waited (for progress notifications); `abandoned` resolves when the caller
    /// gives up.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn wait_approval(
        &self,
        id: &str,
        wait: Duration,
        mut tick: impl FnMut(Duration),
        abandoned: impl Future<Output = ()>,
    ) -> Result<Resolution, EnforceError> {
        let mut changes = self.store().subscribe();
        let start = Instant::now();
        let deadline = start + wait;
        tokio::pin!(abandoned);
        loop {
            let now = self.clock.now();
            let Some(s) = self.store().approval(id).await?.and_then(Stored::of) else {
                return Ok(Resolution::Closed(format!("no approval request `{id}`")));
            };
            match s.state.as_str() {
                APPROVED if !s.expired(now) => return Ok(Resolution::Approved),
                DENIED => {
                    return Ok(Resolution::Denied(
                        s.request.closed.unwrap_or_else(|| "denied".into()),
                    ))
                }
                CANCELLED => {
                    return Ok(Resolution::Cancelled(
                        s.request.closed.unwrap_or_else(|| "cancelled".into()),
                    ))
                }
                USED => {
                    return Ok(Resolution::Closed(format!(
                        "request `{id}` was used already"
                    )))
                }
                PENDING | APPROVED if s.expired(now) => {
                    return Ok(Resolution::Closed(format!("request `{id}` expired")))
                }
                _ => {}
            }
            // Wait for news of this request, a poll, the deadline or the caller.
            let next_poll = (Instant::now() + POLL).min(deadline);
            loop {
                tokio::select! {
                    change = changes.recv() => match change {
                        Ok(Change::Approval(c)) if c == id => break,
                        Ok(Change::Resync) | Err(RecvError::Lagged(_)) => break,
                        Ok(_) => continue,
                        Err(RecvError::Closed) => {
                            tokio::time::sleep_until(next_poll).await;
                            break;
                        }
                    },
                    () = tokio::time::sleep_until(next_poll) => {
                        tick(start.elapsed());
                        break;
                    }
                    () = &mut abandoned => return Ok(Resolution::Abandoned),
                }
            }
            if Instant::now() >= deadline {
                // One last look: an answer that came in just now still counts.
                let s = self.store().approval(id).await?.and_then(Stored::of);
                return Ok(match s {
                    Some(s) if s.state == APPROVED && !s.expired(self.clock.now()) => {
                        Resolution::Approved
                    }
                    Some(s) if s.state == DENIED => {
                        Resolution::Denied(s.request.closed.unwrap_or_default())
                    }
                    _ => Resolution::Pending,
                });
            }
        }
    }
}
