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
//!
//! A request the upstream makes of the client while a request is in flight (sampling,
//! elicitation, roots) goes to that request's [`Asker`], which decides it and relays it to the
//! agent. It belongs to a request when it came on that request's HTTP response stream, or, on a
//! stream that names no request (stdio), when that request is the only one in flight to the
//! upstream. Otherwise no agent can be named, and it is refused. While the agent is being asked,
//! the request's deadline waits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use rmcp::model::{ClientResult, ErrorData, LoggingLevel, ProgressToken, ServerRequest};
use serde_json::Value;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// At most this many notes of one request wait to reach its agent; more are dropped.
pub const NOTES_QUEUED: usize = 256;

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

/// Decides a request an upstream makes of the client during one of an agent's requests, and
/// relays it to the agent when it is allowed.
pub trait Asker: Send + Sync {
    /// Decide and relay `request`.
    fn ask(
        &self,
        request: ServerRequest,
    ) -> Pin<Box<dyn Future<Output = Result<ClientResult, ErrorData>> + Send + '_>>;
}

/// Where the notes of one request go, in order, on their way to its agent.
pub trait NoteSink: Send + Sync {
    /// Take `note` (or drop it, when too many wait).
    fn send(&self, note: Note);
}

impl NoteSink for mpsc::Sender<Note> {
    fn send(&self, note: Note) {
        let _ = self.try_send(note);
    }
}

struct Inner {
    /// Where the notes go.
    notes: Option<Arc<dyn NoteSink>>,
    /// Where the upstream's requests go.
    asker: Option<Arc<dyn Asker>>,
    /// Requests to the agent being answered now.
    asking: AtomicUsize,
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
    pub fn new(cancel: CancellationToken, notes: Option<Arc<dyn NoteSink>>) -> Relay {
        Relay::with_asker(cancel, notes, None)
    }

    /// A relay that also passes the upstream's requests to `asker`.
    pub fn with_asker(
        cancel: CancellationToken,
        notes: Option<Arc<dyn NoteSink>>,
        asker: Option<Arc<dyn Asker>>,
    ) -> Relay {
        Relay {
            cancel,
            inner: Arc::new(Inner {
                notes,
                asker,
                asking: AtomicUsize::new(0),
                beat: Notify::new(),
            }),
        }
    }

    /// Decide and relay a request the upstream made of the client during this request.
    ///
    /// # Errors
    /// The refusal (no one to ask, not allowed, the agent's answer was an error).
    pub async fn ask(&self, request: ServerRequest) -> Result<ClientResult, ErrorData> {
        let Some(asker) = self.inner.asker.clone() else {
            return Err(ErrorData::invalid_request(
                "Warden does not relay this request from the upstream to the agent: the agent's request cannot take it",
                None,
            ));
        };
        self.inner.asking.fetch_add(1, Ordering::SeqCst);
        let r = asker.ask(request).await;
        self.inner.asking.fetch_sub(1, Ordering::SeqCst);
        self.inner.beat.notify_one();
        r
    }

    /// Whether the agent is being asked something now (the deadline waits).
    pub(crate) fn asking(&self) -> bool {
        self.inner.asking.load(Ordering::SeqCst) > 0
    }

    /// A relay that only carries `cancel`.
    pub fn cancel_only(cancel: CancellationToken) -> Relay {
        Relay::new(cancel, None)
    }

    /// The upstream said `note` about this request. Notes are dropped while [`NOTES_QUEUED`]
    /// wait for the agent: an upstream cannot fill Warden's memory with them.
    pub fn hear(&self, note: Note) {
        self.inner.beat.notify_one();
        if let Some(sink) = &self.inner.notes {
            sink.send(note);
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

    /// How many requests are in flight.
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }

    /// The relay of the only request in flight, if exactly one is.
    pub(crate) fn sole(&self) -> Option<Relay> {
        let map = self.map();
        if map.len() == 1 {
            map.values().next().cloned()
        } else {
            None
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

/// How severe a log level is (`debug` 0 … `emergency` 7).
#[allow(deprecated)]
pub fn severity(l: LoggingLevel) -> u8 {
    match l {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}
