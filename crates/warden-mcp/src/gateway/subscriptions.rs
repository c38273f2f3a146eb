//! Resource subscriptions (`resources/subscribe`, `resources/unsubscribe`,
//! `notifications/resources/updated`).
//!
//! A subscription is decided as a read of its URI (`server.resources/read`): a session may
//! subscribe to what it may read. Warden subscribes upstream once per URI, for all the sessions
//! that subscribed to it, and unsubscribes when the last one leaves. An update carries data (it
//! says the resource changed), so each one is decided again, as a read, for each subscribed
//! session, and reaches only the sessions it is allowed for. These decisions are logged but not
//! counted against the session's or the mission's budgets: the agent did not ask for them.
//!
//! Clients of the 2026-07-28 revision subscribe with `subscriptions/listen` instead: each URI
//! in its filter is subscribed to as above while the stream is open, and the session's
//! notifications (updates, list changes) go on the stream.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use rmcp::model::ResourceUpdatedNotificationParam;
use rmcp::service::SubscriptionContext;
use rmcp::ErrorData;
use tokio_util::sync::CancellationToken;
use warden_core::Call;

use super::text::{first_text, refusal_text};
use super::{lock, Gateway, Session, RESOURCES_READ};

/// At most this many resources one session is subscribed to.
pub const MAX_SUBSCRIPTIONS_PER_SESSION: usize = 256;

/// The sessions subscribed to each (server, URI).
pub(crate) type Subscribers = HashMap<(String, String), Vec<Weak<Session>>>;

impl Gateway {
    /// Handle `resources/subscribe` of `uri` for `session`.
    ///
    /// # Errors
    /// A JSON-RPC error with the reason when the session may not read `uri`, or the upstream
    /// refuses the subscription.
    pub async fn subscribe(&self, session: &Arc<Session>, uri: &str) -> Result<(), ErrorData> {
        let server = self.server_of_resource(session, uri).unwrap_or_default();
        let call = Call::new(
            server.clone(),
            RESOURCES_READ,
            serde_json::json!({ "uri": uri }),
        );
        let decided = self.decide(session, call).await;
        let (decision, permitted) = decided
            .map_err(|(_, r)| ErrorData::invalid_request(first_text(&r), r.structured_content))?;
        if permitted.is_none() {
            return Err(ErrorData::invalid_request(
                refusal_text(&decision),
                serde_json::to_value(&decision).ok(),
            ));
        }
        let key = (server.clone(), uri.to_string());
        let first = {
            let mut subs = lock(&self.subscribers);
            let mine = subs
                .iter()
                .filter(|(k, l)| {
                    **k != key
                        && l.iter()
                            .any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(session)))
                })
                .count();
            if mine >= MAX_SUBSCRIPTIONS_PER_SESSION {
                return Err(ErrorData::invalid_request(
                    format!("this session is subscribed to {mine} resources, the most Warden allows: unsubscribe from one first"),
                    None,
                ));
            }
            let list = subs.entry(key.clone()).or_default();
            list.retain(|w| w.strong_count() > 0);
            let first = list.is_empty();
            if !list
                .iter()
                .any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(session)))
            {
                list.push(Arc::downgrade(session));
            }
            first
        };
        if first {
            let up = self.upstreams.get(&server).ok_or_else(|| {
                ErrorData::internal_error(format!("no upstream server `{server}`"), None)
            })?;
            if let Err(e) = up.subscribe(uri, true, &CancellationToken::new()).await {
                self.forget_subscriber(&key, session);
                return Err(ErrorData::internal_error(
                    format!("the upstream refused the subscription: {e}"),
                    None,
                ));
            }
        }
        Ok(())
    }

    /// Serve one `subscriptions/listen` stream of `session` until the client closes it: its
    /// resource URIs are subscribed to (each decided as a read; a URI the session may not read
    /// gets no updates), and the session's notifications go on the stream.
    pub async fn listen(&self, session: &Arc<Session>, stream: SubscriptionContext) {
        let sink = session.add_sink(stream.sink().clone());
        let uris = stream
            .accepted()
            .resource_subscriptions
            .clone()
            .unwrap_or_default();
        let mut subscribed = Vec::new();
        for uri in uris {
            if self.subscribe(session, &uri).await.is_ok() {
                subscribed.push(uri);
            }
        }
        stream.cancelled().await;
        for uri in subscribed {
            self.unsubscribe(session, &uri).await;
        }
        session.remove_sink(sink);
    }

    /// Handle `resources/unsubscribe` of `uri` for `session`; the upstream is unsubscribed when
    /// no session is left.
    pub async fn unsubscribe(&self, session: &Arc<Session>, uri: &str) {
        let keys: Vec<(String, String)> = lock(&self.subscribers)
            .keys()
            .filter(|(_, u)| u == uri)
            .cloned()
            .collect();
        for key in keys {
            if self.forget_subscriber(&key, session) {
                if let Some(up) = self.upstreams.get(&key.0) {
                    let _ = up.subscribe(uri, false, &CancellationToken::new()).await;
                }
            }
        }
    }

    /// Remove `session` from the subscribers of `key`; true when none are left (and the key
    /// was dropped).
    fn forget_subscriber(&self, key: &(String, String), session: &Arc<Session>) -> bool {
        let mut subs = lock(&self.subscribers);
        let Some(list) = subs.get_mut(key) else {
            return false;
        };
        list.retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(session)));
        if list.is_empty() {
            subs.remove(key);
            return true;
        }
        false
    }

    /// Upstream `server` connected again: subscribe it again to every URI a session still
    /// subscribes to.
    pub(crate) async fn resubscribe(&self, server: &str) {
        let uris: Vec<String> = {
            let mut subs = lock(&self.subscribers);
            subs.retain(|_, l| {
                l.retain(|w| w.strong_count() > 0);
                !l.is_empty()
            });
            subs.keys()
                .filter(|(s, _)| s == server)
                .map(|(_, u)| u.clone())
                .collect()
        };
        let Some(up) = self.upstreams.get(server) else {
            return;
        };
        for uri in uris {
            if let Err(e) = up.subscribe(&uri, true, &CancellationToken::new()).await {
                tracing::warn!(upstream = %server, "cannot subscribe again to a resource: {e}");
            }
        }
    }

    /// Upstream `server` says `uri` changed: decide a read of it for each subscribed session,
    /// and tell those it is allowed for.
    pub(crate) async fn resource_updated(&self, server: &str, uri: &str) {
        let sessions: Vec<Arc<Session>> = lock(&self.subscribers)
            .get(&(server.to_string(), uri.to_string()))
            .map(|l| l.iter().filter_map(Weak::upgrade).collect())
            .unwrap_or_default();
        for session in sessions {
            let call = Call::new(server, RESOURCES_READ, serde_json::json!({ "uri": uri }));
            let decided = self.decide_only(&session, call).await;
            if !matches!(decided, Ok((_, Some(_)))) {
                continue;
            }
            let sinks = session.sinks();
            if !sinks.is_empty() {
                for sink in sinks {
                    let _ = sink.notify_resource_updated(uri).await;
                }
            } else if let Some(peer) = session.peer.get() {
                let _ = peer
                    .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                    .await;
            }
        }
    }
}
