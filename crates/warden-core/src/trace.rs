//! Traces (JSON Lines, DESIGN §6): read into [`Step`]s here; replayed by `warden_enforce::replay`
//! through the same pipeline as the gateway, each call decided in order, with a call's output
//! fed into its mission (whichever of its sessions made the call) only when it was allowed.

use serde::Deserialize;
use serde_json::Value;

use std::collections::HashMap;

use crate::engine::Call;
use crate::mission::parse_duration_secs;
use crate::model::{Decision, Outcome};
use crate::narrow::Narrowing;

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

/// A mission line. A root names its template, agent and principal; a child names its
/// `parent` (an earlier mission of the same file) and may narrow it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MissionLine {
    id: String,
    #[serde(default)]
    parent: Option<String>,
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    principal: Option<String>,
    #[serde(default)]
    purpose: Option<String>,
    #[serde(default)]
    tools: Option<Vec<String>>,
    #[serde(default)]
    resources: Option<Vec<String>>,
    #[serde(default)]
    expires: Option<String>,
    #[serde(default)]
    expires_at_ms: Option<i64>,
    #[serde(default)]
    at_ms: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallLine {
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
}

enum Line {
    Mission(MissionLine),
    Call(CallLine),
}

/// Read one line: its `kind`, then the rest, where an unknown key is an error.
fn parse_line(raw: &str) -> Result<Line, String> {
    let v: Value = serde_json::from_str(raw).map_err(|e| format!("not a trace line: {e}"))?;
    let Value::Object(mut map) = v else {
        return Err("not a trace line: a line is a JSON object".into());
    };
    let kind = map.remove("kind");
    let rest = Value::Object(map);
    match kind.as_ref().and_then(Value::as_str) {
        Some("mission") => serde_json::from_value(rest)
            .map(Line::Mission)
            .map_err(|e| format!("not a mission line: {e}")),
        Some("call") => serde_json::from_value(rest)
            .map(Line::Call)
            .map_err(|e| format!("not a call line: {e}")),
        Some(other) => Err(format!(
            "not a trace line: `kind` is `mission` or `call`, not `{other}`"
        )),
        None => Err("not a trace line: it has no `kind` (`mission` or `call`)".into()),
    }
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
        /// The mission it narrows (an earlier line's), for a sub-agent's mission.
        parent: Option<String>,
        /// What it narrows (empty for a root).
        narrowing: Narrowing,
        /// The template (a child's is its parent's).
        template: String,
        /// The agent (a child's is its parent's unless it names another).
        agent: String,
        /// The person it acts for (a child's is its parent's).
        principal: String,
        /// The person's own words (a child's are its parent's).
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
/// naming the file and line: a line that is not JSON, a key a line kind does not have, a child
/// mission whose parent no earlier line grants, or whose `template`, `principal` or `purpose`
/// differ from its parent's. Steps are replayed, as the gateway decides calls, by
/// `warden_enforce::replay` (which refuses a narrowing that would widen its parent).
pub fn steps(file: &str, text: &str, start_ms: i64) -> Result<Vec<Step>, TraceError> {
    let mut out = Vec::new();
    let mut now = start_ms;
    // Mission id → (template, agent, principal, purpose), for children to inherit.
    let mut granted: HashMap<String, (String, String, String, String)> = HashMap::new();
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
        let line = parse_line(raw).map_err(err)?;
        now += 1000;
        match line {
            Line::Mission(m) => {
                if let Some(t) = m.at_ms {
                    now = t;
                }
                let step = mission_step(m, lineno, now, &granted).map_err(err)?;
                if let Step::Mission {
                    id,
                    template,
                    agent,
                    principal,
                    purpose,
                    ..
                } = &step
                {
                    granted.insert(
                        id.clone(),
                        (
                            template.clone(),
                            agent.clone(),
                            principal.clone(),
                            purpose.clone(),
                        ),
                    );
                }
                out.push(step);
            }
            Line::Call(CallLine {
                mission,
                session,
                server,
                tool,
                args,
                output,
                expect,
                at_ms,
            }) => {
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

/// The step of a mission line: a root as written, or a child with what it inherits.
fn mission_step(
    m: MissionLine,
    line: usize,
    now: i64,
    granted: &HashMap<String, (String, String, String, String)>,
) -> Result<Step, String> {
    let Some(parent) = m.parent else {
        if m.tools.is_some()
            || m.resources.is_some()
            || m.expires.is_some()
            || m.expires_at_ms.is_some()
        {
            return Err(format!(
                "mission `{}`: `tools`, `resources` and `expires` narrow a parent; a mission without `parent` takes them from its template",
                m.id
            ));
        }
        let need = |v: Option<String>, key: &str| {
            v.ok_or_else(|| format!("mission `{}` has no `{key}` (and no `parent`)", m.id))
        };
        return Ok(Step::Mission {
            line,
            template: need(m.template, "template")?,
            agent: need(m.agent, "agent")?,
            principal: need(m.principal, "principal")?,
            purpose: m.purpose.unwrap_or_default(),
            id: m.id,
            parent: None,
            narrowing: Narrowing::default(),
            now,
        });
    };
    let Some((template, agent, principal, purpose)) = granted.get(&parent) else {
        return Err(format!(
            "mission `{}` names parent `{parent}`, which no earlier line grants",
            m.id
        ));
    };
    for (key, given, inherited) in [
        ("template", &m.template, template),
        ("principal", &m.principal, principal),
        ("purpose", &m.purpose, purpose),
    ] {
        if let Some(g) = given.as_ref().filter(|g| *g != inherited) {
            return Err(format!(
                "mission `{}`: `{key}` `{g}` differs from its parent's `{inherited}`; a narrowed mission keeps its parent's"
            , m.id));
        }
    }
    let expires_at_ms = match (m.expires.as_deref(), m.expires_at_ms) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "mission `{}`: give `expires` or `expires_at_ms`, not both",
                m.id
            ))
        }
        (Some(d), None) => Some(
            parse_duration_secs(d)
                .map(|s| now.saturating_add(s.saturating_mul(1000)))
                .ok_or_else(|| {
                    format!(
                        "mission `{}`: `expires` `{d}` is not a duration like `30m` or `2h`",
                        m.id
                    )
                })?,
        ),
        (None, at) => at,
    };
    let narrowing = Narrowing {
        tools: m.tools,
        resources: m.resources,
        expires_at_ms,
        agent: m.agent.clone(),
        ..Narrowing::default()
    };
    Ok(Step::Mission {
        line,
        agent: m.agent.unwrap_or_else(|| agent.clone()),
        template: template.clone(),
        principal: principal.clone(),
        purpose: purpose.clone(),
        id: m.id,
        parent: Some(parent),
        narrowing,
        now,
    })
}
