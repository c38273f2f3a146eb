//! Calls in several rounds, for clients of the 2026-07-28 revision.
//!
//! On that revision a server does not send the client requests; it answers a call with
//! `input_required` (the requests, and an opaque `requestState`), and the client calls again
//! with its answers. Upstreams still ask Warden the older way, during the call. So when an
//! upstream asks (sampling, elicitation, roots) during the call of such a client, and Warden
//! allows the request (see `pipeline::AskAgent`), the call is parked, still running upstream,
//! and the client gets `input_required` with the request. Its next call, with the answers and
//! the `requestState`, resumes the parked call: the answers go to the upstream, and the call
//! goes on to its result or to the next round.
//!
//! A parked call belongs to the session that made it and to the tool it called: a
//! `requestState` presented by another session, or for another tool, is refused. A call parked
//! longer than [`PARKED_FOR`] is cancelled upstream.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientResult, CreateMessageResult, ElicitResult,
    InputRequest, InputRequiredResult, ListRootsResult, ServerRequest,
};
use rmcp::ErrorData;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::pipeline::Caller;
use super::{lock, CallOutcome, Gateway, Session};

/// A call parked this long without the client coming back is cancelled.
pub const PARKED_FOR: Duration = Duration::from_secs(300);
/// At most this many calls are parked at once; past it a new round is refused (and its call
/// cancelled).
pub const MAX_PARKED: usize = 4096;
/// At most this many calls of one session are parked at once.
pub const MAX_PARKED_PER_SESSION: usize = 16;

/// Where the answer to one request of the client goes.
pub type Answer = oneshot::Sender<Result<ClientResult, ErrorData>>;

/// A request an upstream made of the client during a call, allowed, waiting for the client.
pub type Asked = (ServerRequest, Answer);

/// What kind of answer a request wants.
#[derive(Clone, Copy)]
enum Kind {
    Sampling,
    Elicitation,
    Roots,
}

/// A call waiting for its client's answers.
pub(crate) struct Parked {
    session: Arc<Session>,
    tool: String,
    call: tokio::task::JoinHandle<CallOutcome>,
    asks: mpsc::Receiver<Asked>,
    waiting: BTreeMap<String, (Kind, Answer)>,
    cancel: CancellationToken,
    since: Instant,
    rounds: u32,
}

impl Drop for Parked {
    fn drop(&mut self) {
        // Never resumed (expired, or refused): the call is cancelled upstream.
        if !self.call.is_finished() && !self.waiting.is_empty() {
            self.cancel.cancel();
        }
    }
}

fn kind_of(r: &ServerRequest) -> Option<(Kind, InputRequest)> {
    match r {
        ServerRequest::CreateMessageRequest(m) => {
            Some((Kind::Sampling, InputRequest::CreateMessage(m.clone())))
        }
        ServerRequest::ElicitRequest(e) => {
            Some((Kind::Elicitation, InputRequest::Elicitation(e.clone())))
        }
        ServerRequest::ListRootsRequest(l) => {
            Some((Kind::Roots, InputRequest::ListRoots(l.clone())))
        }
        _ => None,
    }
}

fn answer_of(kind: Kind, v: Value) -> Result<ClientResult, ErrorData> {
    let bad = |e: serde_json::Error| {
        ErrorData::invalid_params(format!("an input response does not parse: {e}"), None)
    };
    Ok(match kind {
        Kind::Sampling => ClientResult::CreateMessageResult(Box::new(
            serde_json::from_value::<CreateMessageResult>(v).map_err(bad)?,
        )),
        Kind::Elicitation => {
            ClientResult::ElicitResult(serde_json::from_value::<ElicitResult>(v).map_err(bad)?)
        }
        Kind::Roots => ClientResult::ListRootsResult(
            serde_json::from_value::<ListRootsResult>(v).map_err(bad)?,
        ),
    })
}

impl Gateway {
    /// Handle `tools/call` for a client of the 2026-07-28 revision: a first call, or the next
    /// round of a parked one (`requestState` with `inputResponses`).
    ///
    /// # Errors
    /// A `requestState` that is unknown, expired, of another session or of another tool.
    pub async fn call_tool_rounds(
        self: &Arc<Self>,
        session: &Arc<Session>,
        params: CallToolRequestParams,
        caller: &Caller,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = params.name.to_string();
        let mut parked = match params.request_state {
            Some(token) => {
                let mut p = self.take_parked(session, &name, &token)?;
                for (key, value) in params.input_responses.unwrap_or_default() {
                    if let Some((kind, answer)) = p.waiting.remove(&key) {
                        let _ = answer.send(answer_of(kind, value));
                    }
                }
                // Requests left unanswered are refused upstream.
                for (_, (_, answer)) in std::mem::take(&mut p.waiting) {
                    let _ = answer.send(Err(ErrorData::invalid_request(
                        "the client did not answer this request",
                        None,
                    )));
                }
                p
            }
            None => {
                let (tx, rx) = mpsc::channel(16);
                let cancel = CancellationToken::new();
                let mut inner = caller.clone();
                inner.cancel = cancel.clone();
                inner.inputs = Some(tx);
                let (gateway, s, args) = (self.clone(), session.clone(), params.arguments);
                let tool = name.clone();
                let call =
                    tokio::spawn(async move { gateway.call_tool(&s, &tool, args, &inner).await });
                Parked {
                    session: session.clone(),
                    tool: name,
                    call,
                    asks: rx,
                    waiting: BTreeMap::new(),
                    cancel,
                    since: Instant::now(),
                    rounds: 0,
                }
            }
        };
        let Parked {
            call, asks, cancel, ..
        } = &mut parked;
        let first = tokio::select! {
            biased;
            out = call => {
                return Ok(CallToolResponse::Complete(match out {
                    Ok(o) => o.result,
                    Err(e) => rmcp::model::CallToolResult::error(vec![rmcp::model::ContentBlock::text(
                        format!("Warden could not finish the call: {e}"),
                    )]),
                }));
            }
            Some(asked) = asks.recv() => Some(asked),
            _ = caller.cancel.cancelled() => {
                cancel.cancel();
                return Err(ErrorData::invalid_request("the request was cancelled by the client", None));
            }
        };
        let mut requests = BTreeMap::new();
        let mut next = first;
        while let Some((request, answer)) = next.take() {
            match kind_of(&request) {
                Some((kind, input)) => {
                    parked.rounds += 1;
                    let key = format!("warden-{}-{}", parked.rounds, requests.len());
                    requests.insert(key.clone(), input);
                    parked.waiting.insert(key, (kind, answer));
                }
                None => {
                    let _ = answer.send(Err(ErrorData::invalid_request(
                        "Warden relays sampling, elicitation and roots requests only",
                        None,
                    )));
                }
            }
            next = parked.asks.try_recv().ok();
        }
        parked.since = Instant::now();
        let token = self.park(parked)?;
        Ok(CallToolResponse::InputRequired(InputRequiredResult::new(
            Some(requests),
            Some(token),
        )))
    }

    /// Keep `parked` under a fresh random token; calls parked too long are dropped (cancelled).
    ///
    /// # Errors
    /// At the caps ([`MAX_PARKED`], [`MAX_PARKED_PER_SESSION`]), or without randomness from the
    /// system: the call is cancelled.
    fn park(&self, parked: Parked) -> Result<String, ErrorData> {
        let mut bytes = [0u8; 24];
        if getrandom::fill(&mut bytes).is_err() {
            return Err(ErrorData::internal_error(
                "Warden cannot make a requestState (no system randomness); the call was cancelled",
                None,
            ));
        }
        let token = hex::encode(bytes);
        let mut map = lock(&self.parked);
        map.retain(|_, p| p.since.elapsed() < PARKED_FOR);
        let mine = map
            .values()
            .filter(|p| Arc::ptr_eq(&p.session, &parked.session))
            .count();
        if map.len() >= MAX_PARKED || mine >= MAX_PARKED_PER_SESSION {
            return Err(ErrorData::invalid_request(
                format!(
                    "too many calls are waiting for their client's answers ({mine} of this session, at most {MAX_PARKED_PER_SESSION}); the call was cancelled"
                ),
                None,
            ));
        }
        map.insert(token.clone(), parked);
        Ok(token)
    }

    fn take_parked(
        &self,
        session: &Arc<Session>,
        tool: &str,
        token: &str,
    ) -> Result<Parked, ErrorData> {
        let mut map = lock(&self.parked);
        let fits = map.get(token).is_some_and(|p| {
            Arc::ptr_eq(&p.session, session) && p.tool == tool && p.since.elapsed() < PARKED_FOR
        });
        if !fits {
            return Err(ErrorData::invalid_params(
                "this requestState is unknown, expired, or belongs to another session or tool",
                None,
            ));
        }
        map.remove(token).ok_or_else(|| {
            ErrorData::invalid_params("this requestState is unknown or expired", None)
        })
    }
}

/// The parked calls of a gateway, by token.
pub(crate) type ParkedCalls = HashMap<String, Parked>;
