//! Traces (JSON Lines, DESIGN §6) and their replay: each call decided in order, as the gateway
//! would, with a call's output fed into its mission (whichever of its sessions made the call)
//! only when the call was allowed.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use crate::engine::{Breakers, Call, Engine};
use crate::mission::{Mission, MissionUsage};
use crate::model::{Decision, Outcome};
use crate::session::SessionState;

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

/// Replay one trace file. `start_ms` is the clock at the first line; each line advances it by
/// one second unless the line gives `at_ms`.
pub fn replay(
    engine: &Engine,
    file: &str,
    text: &str,
    start_ms: i64,
) -> Result<Vec<Replayed>, TraceError> {
    replay_timed(engine, file, text, start_ms, &|| 0)
}

/// [`replay`], filling each decision's `elapsed_us` from `micros`, a monotonic microsecond
/// counter the caller owns (the core has no clock).
pub fn replay_timed(
    engine: &Engine,
    file: &str,
    text: &str,
    start_ms: i64,
    micros: &dyn Fn() -> u64,
) -> Result<Vec<Replayed>, TraceError> {
    let mut missions: HashMap<String, Mission> = HashMap::new();
    let mut usage: HashMap<String, MissionUsage> = HashMap::new();
    // The mission of each session, and the state of each mission (shared by its sessions).
    let mut sessions: HashMap<String, String> = HashMap::new();
    let mut states: HashMap<String, SessionState> = HashMap::new();
    let breakers = Breakers::default();
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
                if missions.contains_key(&id) {
                    return Err(err(format!("mission `{id}` is granted twice")));
                }
                let m = engine
                    .grant(&id, &template, &agent, &principal, &purpose, now)
                    .map_err(|e| err(format!("cannot grant mission `{id}`: {e}")))?;
                missions.insert(id, m);
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
                let m = missions.get(&mission).ok_or_else(|| {
                    err(format!(
                        "call names mission `{mission}`, which no earlier line grants"
                    ))
                })?;
                let expect = match expect.as_deref() {
                    None => None,
                    Some(e) => Some(Outcome::parse(e).ok_or_else(|| {
                        err(format!("expect must be allow, deny or ask, not `{e}`"))
                    })?),
                };
                let of = sessions.entry(session.clone()).or_insert(mission.clone());
                if *of != mission {
                    return Err(err(format!(
                        "session `{session}` belongs to mission `{of}`, not `{mission}`"
                    )));
                }
                // What a mission has read is its own, whichever of its sessions read it.
                let state = states
                    .entry(mission.clone())
                    .or_insert_with(|| SessionState::new(session.clone(), mission.clone()));
                state.id.clone_from(&session);
                let u = usage.entry(mission.clone()).or_default();
                let t0 = micros();
                let mut decided =
                    engine.decide(Call::new(server, tool, args), m, state, u, &breakers, now);
                let t1 = micros();
                if t1 > t0 {
                    decided.decision.elapsed_us = Some(t1 - t0);
                }
                engine.commit(&decided.decision, state, u);
                if let (Some(p), Some(o)) = (decided.permitted.as_ref(), output.as_ref()) {
                    engine.absorb(p, &output_text(o), state, u, now);
                }
                out.push(Replayed {
                    file: file.to_string(),
                    line: lineno,
                    decision: decided.decision,
                    expect,
                });
            }
        }
    }
    Ok(out)
}
