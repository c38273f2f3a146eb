//! Requests Warden sends to an upstream past rmcp's client, for shapes rmcp's types do not
//! carry: the tool list as the upstream wrote it (with `execution.taskSupport`), task-augmented
//! calls, and `tasks/result` and `tasks/cancel` of the 2025-11-25 revision.
//!
//! On HTTP upstreams they go through the calls path (`crate::upstream::rawhttp`). On line transports
//! (child processes, in-process servers) [`RawLines`] writes them on the same connection with
//! ids of their own (`warden-raw-N`) and takes their responses off the line before rmcp sees
//! them. Their progress and client requests are routed like every request's, by the progress
//! token Warden puts on them.
//!
//! **Tools that run only as tasks.** A tool whose upstream says `taskSupport: "required"` is
//! called as a task: `tools/call` with `task`, then `tasks/result`, which the upstream answers
//! when the task ends. The agent sees one call, decided and absorbed as every call is. The wait
//! is bounded by the tool's whole deadline (`max_timeout_ms`), and a call given up on is
//! cancelled upstream with `tasks/cancel`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rmcp::model::{CallToolResult, ErrorCode, ErrorData, NumberOrString, ProgressToken, RequestId};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::{refused_response, Deadline, Relay, Upstream, UpstreamError};

/// Writes one line (newline included) on the connection.
pub(crate) type WriteLine =
    Arc<dyn Fn(Vec<u8>) -> Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> + Send + Sync>;

/// The answer to a raw request: its result, or its error.
type Answer = Result<Value, ErrorData>;

/// The prefix of the ids of raw requests on line transports.
const PREFIX: &str = "warden-raw-";
/// At most this many raw requests wait at once on one connection.
const MAX_WAITING: usize = 4096;

/// How a tool of an upstream may be run as a task (`execution.taskSupport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskSupport {
    /// Only as a plain call (the default).
    #[default]
    Forbidden,
    /// Either way.
    Optional,
    /// Only as a task.
    Required,
}

impl TaskSupport {
    fn of(tool: &Value) -> TaskSupport {
        match tool
            .pointer("/execution/taskSupport")
            .and_then(Value::as_str)
        {
            Some("required") => TaskSupport::Required,
            Some("optional") => TaskSupport::Optional,
            _ => TaskSupport::Forbidden,
        }
    }
}

/// The raw requests of one line-transport upstream: the current connection's writer, and the
/// requests waiting for their response.
#[derive(Default)]
pub(crate) struct RawLines {
    next: AtomicU64,
    state: Mutex<LinesState>,
}

#[derive(Default)]
struct LinesState {
    writer: Option<WriteLine>,
    waiting: HashMap<String, oneshot::Sender<Answer>>,
}

impl RawLines {
    fn state(&self) -> std::sync::MutexGuard<'_, LinesState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new connection writes with `writer`; requests of the one before fail.
    pub(crate) fn attach(&self, writer: WriteLine) {
        let mut s = self.state();
        s.writer = Some(writer);
        s.waiting.clear();
    }

    /// The connection closed: its requests fail.
    pub(crate) fn detach(&self) {
        let mut s = self.state();
        s.writer = None;
        s.waiting.clear();
    }

    /// Whether any raw request waits for its response.
    pub(crate) fn expects(&self) -> bool {
        !self.state().waiting.is_empty()
    }

    /// The waiting request with `id`, taken out.
    fn take(&self, id: &RequestId) -> Option<oneshot::Sender<Answer>> {
        let NumberOrString::String(id) = id else {
            return None;
        };
        if !id.starts_with(PREFIX) {
            return None;
        }
        self.state().waiting.remove(id.as_ref())
    }

    /// Deliver `line` if it is the response to a waiting raw request; `true` when it was.
    pub(crate) fn deliver(&self, ids: &[Option<RequestId>], line: &[u8]) -> bool {
        let Some((id, tx)) = ids
            .iter()
            .flatten()
            .find_map(|id| self.take(id).map(|tx| (id.clone(), tx)))
        else {
            return false;
        };
        let answer = match serde_json::from_slice::<Value>(line) {
            Ok(v) if v.get("method").is_some() => {
                // A request that happens to carry the id: not the response; put it back.
                if let NumberOrString::String(s) = id {
                    self.state().waiting.insert(s.to_string(), tx);
                }
                return false;
            }
            Ok(mut v) => match (v.get_mut("result").map(Value::take), v.get("error")) {
                (_, Some(e)) => Err(serde_json::from_value(e.clone()).unwrap_or_else(|e| {
                    malformed(format!("the error is not a JSON-RPC error: {e}"))
                })),
                (Some(r), None) => Ok(r),
                (None, None) => Err(malformed(
                    "the response has neither a result nor an error".into(),
                )),
            },
            Err(e) => Err(malformed(format!("the response is not JSON: {e}"))),
        };
        let _ = tx.send(answer);
        true
    }

    /// Deliver `error` to the waiting raw request among `ids`; `true` when there was one.
    pub(crate) fn fail(&self, ids: &[Option<RequestId>], error: ErrorData) -> bool {
        match ids.iter().flatten().find_map(|id| self.take(id)) {
            Some(tx) => {
                let _ = tx.send(Err(error));
                true
            }
            None => false,
        }
    }

    /// Write request `method` with `params`; the id it was sent with and where its answer
    /// comes.
    async fn send(self: &Arc<Self>, method: &str, mut params: Value) -> Result<Waiting, String> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("{PREFIX}{n}");
        if let Value::Object(m) = &mut params {
            let meta = m
                .entry("_meta")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Value::Object(meta) = meta {
                meta.insert("progressToken".into(), Value::String(id.clone()));
            }
        }
        let mut line = serde_json::to_vec(&json!({
            "jsonrpc": "2.0", "id": id, "method": method, "params": params,
        }))
        .map_err(|e| e.to_string())?;
        line.push(b'\n');
        let (tx, rx) = oneshot::channel();
        let writer = {
            let mut s = self.state();
            if s.waiting.len() >= MAX_WAITING {
                return Err("too many requests wait for this upstream".into());
            }
            let Some(w) = s.writer.clone() else {
                return Err("it is not connected".into());
            };
            s.waiting.insert(id.clone(), tx);
            w
        };
        let waiting = Waiting {
            lines: self.clone(),
            id: id.clone(),
            rx: Some(rx),
            armed: true,
        };
        writer(line).await.map_err(|e| e.to_string())?;
        Ok(waiting)
    }
}

fn malformed(detail: String) -> ErrorData {
    ErrorData::new(
        ErrorCode::INTERNAL_ERROR,
        detail.clone(),
        Some(json!({ "warden": super::lines::MALFORMED, "detail": detail })),
    )
}

/// A raw request sent and not answered yet; dropped unanswered, it is forgotten and cancelled
/// upstream (`notifications/cancelled`).
struct Waiting {
    lines: Arc<RawLines>,
    id: String,
    rx: Option<oneshot::Receiver<Answer>>,
    armed: bool,
}

impl Waiting {
    async fn answer(mut self) -> Option<Answer> {
        let rx = self.rx.take()?;
        let r = rx.await.ok();
        self.armed = false;
        r
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let writer = {
            let mut s = self.lines.state();
            s.waiting.remove(&self.id);
            s.writer.clone()
        };
        if !self.armed || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let Some(writer) = writer else { return };
        let mut line = json!({
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": { "requestId": self.id, "reason": "Warden gave up on the request" },
        })
        .to_string()
        .into_bytes();
        line.push(b'\n');
        tokio::spawn(async move {
            let _ = writer(line).await;
        });
    }
}

/// How each tool of an upstream may run as a task, by its name there.
type TaskTable = Arc<HashMap<String, TaskSupport>>;

/// The task support of an upstream's tools, as of one connection.
#[derive(Default)]
pub(crate) struct TaskTools {
    /// The connection number and list change the table was read at, and the table.
    cached: Mutex<Option<(u64, u64, TaskTable)>>,
    /// Counts tool list changes.
    pub(crate) generation: AtomicU64,
}

impl Upstream {
    /// Send request `method` with `params` past rmcp and return its raw result, within
    /// `deadline` (see [`Upstream::call`] for what ends it).
    ///
    /// # Errors
    /// As [`Upstream::call`]; [`UpstreamError::Unsupported`] when this upstream has no raw
    /// path (an `https://` URL).
    pub(crate) async fn raw_request(
        &self,
        method: &str,
        params: Value,
        relay: &Relay,
        deadline: Deadline,
    ) -> Result<Value, UpstreamError> {
        let live = self.peer()?;
        if let Some(http) = &self.raw {
            let peer = live.0.clone();
            let renew = move || super::requests::renew_session(&peer);
            return self
                .bounded(
                    http.request::<Value>(method, params, relay, renew),
                    &live,
                    relay,
                    deadline,
                    |e| e,
                )
                .await;
        }
        let waiting = self
            .shared
            .lines
            .send(method, params)
            .await
            .map_err(|why| UpstreamError::Down {
                name: self.name.clone(),
                reason: why,
            })?;
        let token = ProgressToken(NumberOrString::String(waiting.id.clone().into()));
        let _routed = self.shared.inflight.register(token, relay.clone());
        let name = self.name.clone();
        let answered = async {
            match waiting.answer().await {
                Some(Ok(v)) => Ok(v),
                Some(Err(error)) => Err(refused_response(&name, &error).unwrap_or_else(|| {
                    UpstreamError::Protocol {
                        name: name.clone(),
                        message: error.message.to_string(),
                        error: Box::new(error),
                    }
                })),
                None => Err(UpstreamError::Exited { name: name.clone() }),
            }
        };
        self.bounded(answered, &live, relay, deadline, |e| e).await
    }

    /// How `tool` may be run as a task, from the tool list as the upstream wrote it (read once
    /// per connection and list change).
    pub(crate) async fn task_support(&self, tool: &str) -> TaskSupport {
        let Ok(live) = self.peer() else {
            return TaskSupport::Forbidden;
        };
        let generation = self.shared.tasks.generation.load(Ordering::SeqCst);
        let cached = self
            .shared
            .tasks
            .cached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let table = match cached {
            Some((c, g, t)) if c == live.1 && g == generation => t,
            _ => {
                let t = Arc::new(self.raw_tool_list().await);
                *self
                    .shared
                    .tasks
                    .cached
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some((live.1, generation, t.clone()));
                t
            }
        };
        table.get(tool).copied().unwrap_or_default()
    }

    /// The task support of every tool, read with raw `tools/list` requests (at most 64 pages);
    /// empty when the upstream cannot be asked.
    async fn raw_tool_list(&self) -> HashMap<String, TaskSupport> {
        let mut out = HashMap::new();
        let relay = Relay::cancel_only(Default::default());
        let mut cursor: Option<String> = None;
        for _ in 0..64 {
            let params = match &cursor {
                Some(c) => json!({ "cursor": c }),
                None => json!({}),
            };
            let page = match self
                .raw_request("tools/list", params, &relay, self.deadline(None))
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(upstream = %self.name, "cannot read the tool list for task support: {e}");
                    break;
                }
            };
            for tool in page
                .get("tools")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(name) = tool.get("name").and_then(Value::as_str) {
                    out.insert(name.to_string(), TaskSupport::of(tool));
                }
            }
            cursor = page
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_string);
            if cursor.is_none() {
                break;
            }
        }
        out
    }

    /// Run `tool` with `args` as a task upstream and wait for its result (see the module doc).
    pub(crate) async fn call_as_task(
        &self,
        tool: &str,
        args: &Value,
        relay: &Relay,
    ) -> Result<CallToolResult, UpstreamError> {
        let deadline = self.deadline(Some(tool));
        // A task is long by nature: its whole deadline is the wait.
        let whole = Deadline {
            idle: deadline.max,
            max: deadline.max,
        };
        let ttl = u64::try_from(deadline.max.as_millis()).unwrap_or(u64::MAX);
        let params = json!({ "name": tool, "arguments": args, "task": { "ttl": ttl } });
        let created = self
            .raw_request("tools/call", params, relay, deadline)
            .await?;
        let task_id = created
            .pointer("/task/taskId")
            .or_else(|| created.get("taskId"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let Some(task_id) = task_id else {
            // The upstream ran it as a plain call after all.
            return self.tool_result(created);
        };
        let mut cancel = CancelTask {
            upstream: self,
            task_id: Some(task_id.clone()),
        };
        let r = self
            .raw_request("tasks/result", json!({ "taskId": task_id }), relay, whole)
            .await;
        if !matches!(
            r,
            Err(UpstreamError::Timeout { .. } | UpstreamError::Cancelled)
        ) {
            cancel.task_id = None;
        }
        drop(cancel);
        self.tool_result(r?)
    }

    fn tool_result(&self, v: Value) -> Result<CallToolResult, UpstreamError> {
        let mut r: CallToolResult =
            serde_json::from_value(v).map_err(|e| UpstreamError::Malformed {
                name: self.name.clone(),
                detail: format!("the task's result is not a tool result: {e}"),
            })?;
        if r.result_type.is_none() {
            r.result_type = Some(rmcp::model::ResultType::COMPLETE);
        }
        Ok(r)
    }
}

/// Cancels the task upstream when dropped with one (the call was given up on).
struct CancelTask<'a> {
    upstream: &'a Upstream,
    task_id: Option<String>,
}

/// How long a `tasks/cancel` sent for a call given up on is waited for.
const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Drop for CancelTask<'_> {
    fn drop(&mut self) {
        let Some(task_id) = self.task_id.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let params = json!({ "taskId": task_id });
        let relay = Relay::cancel_only(Default::default());
        if let Some(http) = self.upstream.raw.clone() {
            tokio::spawn(async move {
                let sent = http.request::<Value>("tasks/cancel", params, &relay, || {});
                let _ = tokio::time::timeout(CANCEL_WAIT, sent).await;
            });
            return;
        }
        let lines = self.upstream.shared.lines.clone();
        tokio::spawn(async move {
            if let Ok(waiting) = lines.send("tasks/cancel", params).await {
                let _ = tokio::time::timeout(CANCEL_WAIT, waiting.answer()).await;
            }
        });
    }
}
