//! Waiting for a person: a held call waits on the store's change feed for its request to be
//! answered, on every replica alike.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

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

/// The calls waiting on approval requests, by request id. The enforcer's one follower of the
/// store's change feed wakes the waiters of a request when it changes (and every waiter after a
/// resync): a waiting call does not wake for the changes of other requests or of missions.
#[derive(Debug, Default)]
pub(crate) struct Waiters(Mutex<HashMap<String, Weak<Notify>>>);

impl Waiters {
    /// The notifier of request `id`, shared by every call waiting on it.
    fn register(&self, id: &str) -> Arc<Notify> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, w| w.strong_count() > 0);
        if let Some(n) = map.get(id).and_then(Weak::upgrade) {
            return n;
        }
        let n = Arc::new(Notify::new());
        map.insert(id.to_string(), Arc::downgrade(&n));
        n
    }

    /// Wake the calls waiting on request `id`.
    pub(crate) fn wake(&self, id: &str) {
        let n = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .and_then(Weak::upgrade);
        if let Some(n) = n {
            n.notify_waiters();
        }
    }

    /// Wake every waiting call (changes may have been missed).
    pub(crate) fn wake_all(&self) {
        let all: Vec<Arc<Notify>> = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for n in all {
            n.notify_waiters();
        }
    }
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
        let notify = self.waiters.register(id);
        let start = Instant::now();
        let deadline = start + wait;
        tokio::pin!(abandoned);
        loop {
            // Listen before looking, so that a change made in between is not missed.
            let news = notify.notified();
            tokio::pin!(news);
            news.as_mut().enable();
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
            tokio::select! {
                () = &mut news => {}
                () = tokio::time::sleep_until(next_poll) => tick(start.elapsed()),
                () = &mut abandoned => return Ok(Resolution::Abandoned),
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
