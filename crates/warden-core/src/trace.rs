//! Traces (JSON Lines, DESIGN §6): read into [`Step`]s here; replayed by `warden_enforce::replay`
//! through the same pipeline as the gateway, each call decided in order, with a call's output
//! fed into its mission (whichever of its sessions made the call) only when it was allowed.

use serde::Deserialize;
use serde_json::Value;

use crate::engine::Call;
use crate::model::{Decision, Outcome};

/// The longest trace line accepted.
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// A problem with a trace line. Replay stops at the first one (exit code 2 in the CLI).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct TraceError {
    /// The trace file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Line {
    Mission {
        id: String,
        template: String,
        agent: String,
        principal: String,
        #[serde(default)]
        purpose: String,
        #[serde(default)]
        at_ms: Option<i64>,
    },
    Call {
        mission: String,
        session: String,
        server: String,
        tool: String,
        #[serde(default = "empty_object")]
        args: Value,
        #[serde(default)]
        output: Option<Value>,
        #[serde(default)]
        expect: Option<String>,
        #[serde(default)]
        at_ms: Option<i64>,
    },
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// One decided call of a trace.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// The trace file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The decision.
    pub decision: Decision,
    /// What the trace expected, if it said.
    pub expect: Option<Outcome>,
}

impl Replayed {
    /// True when the trace expected something else.
    pub fn mismatch(&self) -> bool {
        self.expect.is_some_and(|e| e != self.decision.decision)
    }
}

/// The text a tool output stands for: a string as is, anything else as JSON.
pub fn output_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One step of a trace, in order: a mission granted, or a call made.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A mission line.
    Mission {
        /// 1-based line.
        line: usize,
        /// The mission id the trace uses.
        id: String,
        /// The template.
        template: String,
        /// The agent.
        agent: String,
        /// The person it acts for.
        principal: String,
        /// The person's own words.
        purpose: String,
        /// The clock at this line.
        now: i64,
    },
    /// A call line.
    Call {
        /// 1-based line.
        line: usize,
        /// The mission it runs under (granted by an earlier line).
        mission: String,
        /// The session making it.
        session: String,
        /// The call.
        call: Call,
        /// What the tool answered, if the trace recorded it (absorbed only when allowed).
        output: Option<Value>,
        /// What the trace expects.
        expect: Option<Outcome>,
        /// The clock at this line.
        now: i64,
    },
}

/// Read one trace file into its steps. `start_ms` is the clock at the first line; each line
/// advances it by one second unless the line gives `at_ms`. The first bad line is an error
/// naming the file and line. Steps are replayed, as the gateway decides calls, by
/// `warden_enforce::replay`.
pub fn steps(file: &str, text: &str, start_ms: i64) -> Result<Vec<Step>, TraceError> {
    let mut out = Vec::new();
    let mut now = start_ms;
    for (i, raw) in text.lines().enumerate() {
        let lineno = i + 1;
        let err = |message: String| TraceError {
            file: file.to_string(),
            line: lineno,
            message,
        };
        if raw.trim().is_empty() {
            continue;
        }
        if raw.len() > MAX_LINE_BYTES {
            return Err(err(format!(
                "line is {} bytes; the limit is {MAX_LINE_BYTES}",
                raw.len()
            )));
        }
        let line: Line =
            serde_json::from_str(raw).map_err(|e| err(format!("not a trace line: {e}")))?;
        now += 1000;
        match line {
            Line::Mission {
                id,
                template,
                agent,
                principal,
                purpose,
                at_ms,
            } => {
                if let Some(t) = at_ms {
                    now = t;
                }
                out.push(Step::Mission {
                    line: lineno,
                    id,
                    template,
                    agent,
                    principal,
                    purpose,
                    now,
                });
            }
            Line::Call {
                mission,
                session,
                server,
                tool,
                args,
                output,
                expect,
                at_ms,
            } => {
                if let Some(t) = at_ms {
                    now = t;
                }
                let expect = match expect.as_deref() {
                    None => None,
                    Some(e) => Some(Outcome::parse(e).ok_or_else(|| {
                        err(format!("expect must be allow, deny or ask, not `{e}`"))
                    })?),
                };
                out.push(Step::Call {
                    line: lineno,
                    mission,
                    session,
                    call: Call::new(server, tool, args),
                    output,
                    expect,
                    now,
                });
            }
        }
    }
    Ok(out)
}
