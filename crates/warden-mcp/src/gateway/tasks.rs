//! Tasks, as the 2025-11-25 revision defines them: a `tools/call` with `task` is answered at once
//! with a task, runs in the background, and the agent asks after it with `tasks/get`, fetches
//! its result with `tasks/result`, lists its tasks with `tasks/list` and cancels one with
//! `tasks/cancel`.
//!
//! Warden runs the tasks itself, whatever the upstream offers: a task is the same call as
//! without `task`, decided, logged, forwarded and absorbed by [`Gateway::call_tool`]; a refusal
//! is the task's result, as it would be the call's. Upstream, the call is a plain call (or a task
//! there, for a tool the upstream runs only as one; see `crate::upstream::raw`).
//!
//! Tasks belong to the session that made them: another session (another agent) can neither see
//! nor touch them, and an unknown id and another session's id get the same error. Task ids are
//! random (128 bits). A session holds at most [`MAX_PER_SESSION`] tasks; a finished task is
//! forgotten when its time to live (`task.ttl`, at most [`MAX_TTL_MS`], by default
//! [`DEFAULT_TTL_MS`]) has passed since it was created, and a task still running then is
//! cancelled. Tasks end with their session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rmcp::model::{ErrorCode, ErrorData, JsonObject};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Caller, Gateway, Session};

/// The most tasks one session holds (running or finished, until forgotten).
pub const MAX_PER_SESSION: usize = 64;
/// The time to live of a task that asks for none.
pub const DEFAULT_TTL_MS: u64 = 300_000;
/// The longest time to live a task gets.
pub const MAX_TTL_MS: u64 = 3_600_000;
/// How often Warden suggests an agent polls a task.
const POLL_INTERVAL_MS: u64 = 500;
/// The `_meta` key that ties a result to its task.
const RELATED: &str = "io.modelcontextprotocol/related-task";

/// The methods that are about tasks (with `tools/call` when it carries `task`).
const METHODS: [&str; 4] = ["tasks/get", "tasks/result", "tasks/list", "tasks/cancel"];

/// Whether a request is one [`Gateway::task_request`] answers: a `tasks/*` method, or a
/// `tools/call` with a `task` object.
pub fn is_task_request(method: &str, params: Option<&Value>) -> bool {
    METHODS.contains(&method)
        || (method == "tools/call" && params.and_then(|p| p.get("task")).is_some())
}

/// Where a task is.
#[derive(Debug, Clone)]
enum State {
    Working,
    /// Ended with this result (a refusal or a tool error included).
    Completed(Arc<Value>),
    Cancelled,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Working => "working",
            State::Completed(_) => "completed",
            State::Cancelled => "cancelled",
        }
    }
}

/// One task of a session.
struct Task {
    id: String,
    created_at: String,
    ttl_ms: u64,
    expires: Instant,
    cancel: CancellationToken,
    state: watch::Sender<(State, String)>,
}

impl Task {
    /// The task as the protocol shows it.
    fn json(&self) -> Value {
        let (state, updated) = self.state.borrow().clone();
        let mut v = json!({
            "taskId": self.id,
            "status": state.name(),
            "createdAt": self.created_at,
            "lastUpdatedAt": updated,
            "ttl": self.ttl_ms,
            "pollInterval": POLL_INTERVAL_MS,
        });
        if let (State::Cancelled, Some(m)) = (&state, v.as_object_mut()) {
            m.insert("statusMessage".into(), "cancelled by the agent".into());
        }
        v
    }

    /// Move to `state`, unless the task has ended already.
    fn end(&self, state: State) {
        self.state.send_if_modified(|(s, at)| {
            if matches!(s, State::Working) {
                *s = state;
                *at = timestamp();
                true
            } else {
                false
            }
        });
    }
}

/// The tasks of one session.
#[derive(Default)]
pub struct SessionTasks {
    map: Mutex<HashMap<String, Arc<Task>>>,
}

impl SessionTasks {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Task>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forget the tasks whose time is up (cancelling those still running).
    fn sweep(&self) {
        let now = Instant::now();
        self.map().retain(|_, t| {
            let keep = t.expires > now;
            if !keep {
                t.cancel.cancel();
            }
            keep
        });
    }

    fn get(&self, id: &str) -> Result<Arc<Task>, ErrorData> {
        self.sweep();
        self.map().get(id).cloned().ok_or_else(|| {
            ErrorData::new(
                ErrorCode::INVALID_PARAMS,
                format!("no task `{id}` in this session"),
                None,
            )
        })
    }

    /// Cancel every task (the session ends).
    pub fn cancel_all(&self) {
        for t in self.map().values() {
            t.cancel.cancel();
        }
    }
}

impl Drop for SessionTasks {
    fn drop(&mut self) {
        self.cancel_all();
    }
}

fn timestamp() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn invalid(message: impl Into<String>) -> ErrorData {
    ErrorData::new(ErrorCode::INVALID_PARAMS, message.into(), None)
}

fn task_id(params: &Value) -> Result<&str, ErrorData> {
    params
        .get("taskId")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("`taskId` (a string) is required"))
}

fn random_id() -> Result<String, ErrorData> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        ErrorData::new(
            ErrorCode::INTERNAL_ERROR,
            format!("cannot draw a task id: {e}"),
            None,
        )
    })?;
    Ok(hex::encode(bytes))
}

impl Gateway {
    /// Answer a request about tasks (see [`is_task_request`]) of `session`. `cancel` fires when
    /// the agent cancels this request (a `tasks/result` then stops waiting; the task runs on).
    ///
    /// # Errors
    /// `-32602` for malformed parameters, an unknown task (or another session's), a cancel of
    /// a task that has ended, or a session that holds too many tasks; `-32601` for another
    /// method.
    pub async fn task_request(
        self: &Arc<Self>,
        session: &Arc<Session>,
        method: &str,
        params: Option<Value>,
        cancel: &CancellationToken,
    ) -> Result<Value, ErrorData> {
        let params = params.unwrap_or_else(|| json!({}));
        session.touch();
        let tasks = &session.tasks;
        match method {
            "tools/call" => self.start_task(session, params),
            "tasks/get" => Ok(tasks.get(task_id(&params)?)?.json()),
            "tasks/list" => {
                tasks.sweep();
                let mut all: Vec<Arc<Task>> = tasks.map().values().cloned().collect();
                all.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
                Ok(json!({ "tasks": all.iter().map(|t| t.json()).collect::<Vec<_>>() }))
            }
            "tasks/cancel" => {
                let task = tasks.get(task_id(&params)?)?;
                if !matches!(task.state.borrow().0, State::Working) {
                    return Err(invalid(format!(
                        "task `{}` has ended already; it cannot be cancelled",
                        task.id
                    )));
                }
                task.cancel.cancel();
                task.end(State::Cancelled);
                Ok(task.json())
            }
            "tasks/result" => {
                let task = tasks.get(task_id(&params)?)?;
                let mut rx = task.state.subscribe();
                let state = tokio::select! {
                    r = rx.wait_for(|(s, _)| !matches!(s, State::Working)) => {
                        r.map(|s| s.0.clone()).map_err(|_| invalid("the task is gone"))?
                    }
                    _ = cancel.cancelled() => {
                        return Err(ErrorData::new(ErrorCode::INTERNAL_ERROR, "the request was cancelled", None));
                    }
                };
                match state {
                    State::Completed(result) => {
                        let mut r = Value::clone(&result);
                        if let Some(m) = r.as_object_mut() {
                            m.remove("resultType");
                            let meta = m.entry("_meta").or_insert_with(|| json!({}));
                            if let Some(meta) = meta.as_object_mut() {
                                meta.insert(RELATED.into(), json!({ "taskId": task.id }));
                            }
                        }
                        Ok(r)
                    }
                    State::Cancelled | State::Working => Err(invalid(format!(
                        "task `{}` was cancelled; it has no result",
                        task.id
                    ))),
                }
            }
            other => Err(ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!("`{other}` is not a task request"),
                None,
            )),
        }
    }

    /// Start the call in `params` as a task of `session`; the `CreateTaskResult`.
    fn start_task(
        self: &Arc<Self>,
        session: &Arc<Session>,
        params: Value,
    ) -> Result<Value, ErrorData> {
        let Value::Object(mut params) = params else {
            return Err(invalid("the parameters must be an object"));
        };
        let name = match params.remove("name") {
            Some(Value::String(n)) => n,
            _ => return Err(invalid("`name` (a string) is required")),
        };
        let args: Option<JsonObject> = match params.remove("arguments") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(_) => return Err(invalid("`arguments` must be an object")),
        };
        let ttl_ms = match params.get("task").and_then(|t| t.get("ttl")) {
            None | Some(Value::Null) => DEFAULT_TTL_MS,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| invalid("`task.ttl` must be a whole number of milliseconds"))?
                .clamp(1, MAX_TTL_MS),
        };
        let tasks = &session.tasks;
        tasks.sweep();
        let now = timestamp();
        let task = Arc::new(Task {
            id: random_id()?,
            created_at: now.clone(),
            ttl_ms,
            expires: Instant::now() + Duration::from_millis(ttl_ms),
            cancel: CancellationToken::new(),
            state: watch::channel((State::Working, now)).0,
        });
        {
            let mut map = tasks.map();
            if map.len() >= MAX_PER_SESSION {
                return Err(invalid(format!(
                    "this session holds {MAX_PER_SESSION} tasks already; fetch or wait out some first"
                )));
            }
            map.insert(task.id.clone(), task.clone());
        }
        let (gateway, session, run) = (self.clone(), session.clone(), task.clone());
        tokio::spawn(async move {
            let caller = Caller::cancel_only(run.cancel.clone());
            // A cancel (the agent's, or the time to live) reaches the call through `caller`.
            let out = gateway.call_tool(&session, &name, args, &caller).await;
            let state = match serde_json::to_value(&out.result) {
                Ok(v) => State::Completed(Arc::new(v)),
                Err(e) => State::Completed(Arc::new(json!({
                    "content": [{ "type": "text", "text": format!("Warden cannot encode the result: {e}") }],
                    "isError": true,
                }))),
            };
            run.end(state);
        });
        Ok(json!({ "task": task.json() }))
    }
}

/// A response Warden adds its task support to on the way out (rmcp's types do not carry it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advertised {
    /// The `initialize` result: `capabilities.tasks`, on the 2025-11-25 revision.
    Initialize,
    /// A `tools/list` result: `execution.taskSupport` of the tools that run long.
    ToolsList,
}

impl Advertised {
    /// Which response to request `method` is advertised in, if any.
    pub fn of(method: &str) -> Option<Advertised> {
        match method {
            "initialize" => Some(Advertised::Initialize),
            "tools/list" => Some(Advertised::ToolsList),
            _ => None,
        }
    }
}

/// The revision tasks belong to.
const TASKS_REVISION: &str = "2025-11-25";

impl Gateway {
    /// Add Warden's task support to `result`, the result of an `initialize` or a `tools/list`
    /// (see [`Advertised`]). Every tool can be run as a task through Warden; a tool is marked
    /// `taskSupport: "optional"` when its upstream marks it `optional` or `required` (it runs
    /// long), so that clients that choose tasks by that mark still call the others plainly.
    pub async fn advertise_tasks(&self, kind: Advertised, result: &mut Value) {
        match kind {
            Advertised::Initialize => {
                if result.get("protocolVersion").and_then(Value::as_str) != Some(TASKS_REVISION) {
                    return;
                }
                if let Some(caps) = result
                    .get_mut("capabilities")
                    .and_then(Value::as_object_mut)
                {
                    caps.insert(
                        "tasks".into(),
                        json!({ "list": {}, "cancel": {}, "requests": { "tools": { "call": {} } } }),
                    );
                }
            }
            Advertised::ToolsList => {
                let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) else {
                    return;
                };
                for tool in tools.iter_mut() {
                    let Some(name) = tool.get("name").and_then(Value::as_str) else {
                        continue;
                    };
                    let Some((server, bare)) = name.split_once('.') else {
                        continue;
                    };
                    let Some(upstream) = self.upstream(server) else {
                        continue;
                    };
                    if upstream.task_support(bare).await != crate::upstream::TaskSupport::Forbidden
                    {
                        if let Some(t) = tool.as_object_mut() {
                            t.insert("execution".into(), json!({ "taskSupport": "optional" }));
                        }
                    }
                }
            }
        }
    }
}
