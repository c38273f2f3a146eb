//! What a forwarded request carries back to the agent that made it, besides its result.
//!
//! Each request Warden forwards upstream gets a [`Relay`]: the agent's cancellation, and a
//! channel for what the upstream says about that request on the way (progress, log messages).
//! Notifications reach an agent only through the relay of one of its own requests, found by
//! the progress token Warden put on the upstream request (or the HTTP response stream the
//! notification came on). A notification for which no request can be found reaches no agent.
//!
//! Every note about a request also extends its deadline (see [`Deadline`]): an upstream that
//! reports progress is alive.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{LoggingLevel, ProgressToken};
use serde_json::Value;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// Something an upstream said about one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// `notifications/progress`.
    Progress {
        /// Progress so far.
        progress: f64,
        /// The total, when known.
        total: Option<f64>,
        /// A human-readable message.
        message: Option<String>,
    },
    /// `notifications/message` (logging).
    Log {
        /// The severity.
        level: LoggingLevel,
        /// The logger's name.
        logger: Option<String>,
        /// The message.
        data: Value,
    },
}

impl Note {
    /// The text this note shows the agent.
    pub fn text(&self) -> String {
        match self {
            Note::Progress { message, .. } => message.clone().unwrap_or_default(),
            Note::Log { data, .. } => match data {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
        }
    }
}

struct Inner {
    /// Where the notes go (the agent's side drains it in order).
    notes: Option<mpsc::UnboundedSender<Note>>,
    /// Signalled by every note: the request is alive.
    beat: Notify,
}

/// The way back from one forwarded request to the agent that made it. Cheap to clone.
#[derive(Clone)]
pub struct Relay {
    /// Fires when the agent gives up on the request (it cancelled it, or went away).
    pub cancel: CancellationToken,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("cancelled", &self.cancel.is_cancelled())
            .field("notes", &self.inner.notes.is_some())
            .finish()
    }
}

impl Relay {
    /// A relay that passes notes to `notes` (none: they are only counted as signs of life).
    pub fn new(cancel: CancellationToken, notes: Option<mpsc::UnboundedSender<Note>>) -> Relay {
        Relay {
            cancel,
            inner: Arc::new(Inner {
                notes,
                beat: Notify::new(),
            }),
        }
    }

    /// A relay that only carries `cancel`.
    pub fn cancel_only(cancel: CancellationToken) -> Relay {
        Relay::new(cancel, None)
    }

    /// The upstream said `note` about this request.
    pub fn hear(&self, note: Note) {
        self.inner.beat.notify_one();
        if let Some(tx) = &self.inner.notes {
            let _ = tx.send(note);
        }
    }

    /// Whether notes go anywhere but the deadline.
    pub fn wants_notes(&self) -> bool {
        self.inner.notes.is_some()
    }

    /// Resolves at the next note.
    pub(crate) async fn beat(&self) {
        self.inner.beat.notified().await;
    }
}

/// How long a request may run: `idle` without a word from the upstream, and `max` in all.
/// Every note (progress, log) about the request restarts the `idle` wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// Longest wait for the answer or the next note.
    pub idle: Duration,
    /// Longest the request may run, notes or not.
    pub max: Duration,
}

/// The relays of the requests in flight to one upstream, by the progress token Warden put on
/// each.
#[derive(Default)]
pub(crate) struct InFlight {
    by_token: Mutex<HashMap<ProgressToken, Relay>>,
}

impl InFlight {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<ProgressToken, Relay>> {
        self.by_token.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Route notes with `token` to `relay` until the guard is dropped.
    pub(crate) fn register(self: &Arc<Self>, token: ProgressToken, relay: Relay) -> Registered {
        self.map().insert(token.clone(), relay);
        Registered {
            flight: self.clone(),
            token,
        }
    }

    /// The relay of the request with `token`, if it is still in flight.
    pub(crate) fn find(&self, token: &ProgressToken) -> Option<Relay> {
        self.map().get(token).cloned()
    }
}

/// Keeps a request's relay registered; unregisters it when dropped.
pub(crate) struct Registered {
    flight: Arc<InFlight>,
    token: ProgressToken,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.flight.map().remove(&self.token);
    }
}
