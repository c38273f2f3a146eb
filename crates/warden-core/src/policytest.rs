//! Policy tests: request → expected outcome, kept beside the policies and run by
//! `warden policy test`.
//!
//! ```toml
//! [[case]]
//! name = "bob cannot read the auth logs through an agent"
//! agent = "forum-helper"
//! principal = "bob"
//! template = "answer-forum-question"
//! tool = "logs.query_logs"
//! args = { source = "auth", query = "bob" }
//! expect = "deny"
//! expect_policies = []          # optional: these policy ids must be among the decision's
//!
//! [[case.before]]               # optional: calls made earlier in the same session
//! tool = "forum.read_thread"
//! args = { channel = "eng-help", thread_id = "T-1042" }
//! output = "…"
//! ```

use serde::Deserialize;
use serde_json::Value;

use crate::engine::{Breakers, Call, Engine};
use crate::error::{line_of, locate_toml};
use crate::mission::MissionUsage;
use crate::model::{Decision, Outcome};
use crate::session::SessionState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    case: Vec<RawCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    agent: String,
    principal: String,
    template: String,
    #[serde(default)]
    purpose: String,
    tool: String,
    #[serde(default)]
    args: Option<toml::Value>,
    expect: String,
    #[serde(default)]
    expect_policies: Vec<String>,
    #[serde(default)]
    before: Vec<RawBefore>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBefore {
    tool: String,
    #[serde(default)]
    args: Option<toml::Value>,
    #[serde(default)]
    output: Option<String>,
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// File.
    pub file: String,
    /// Line of the case.
    pub line: usize,
    /// Case name.
    pub name: String,
    /// Expected outcome.
    pub expect: Outcome,
    /// The decision, or why the case could not run.
    pub decision: Result<Decision, String>,
    /// Expected policies that were missing.
    pub missing_policies: Vec<String>,
}

impl CaseResult {
    /// True when the case passed.
    pub fn passed(&self) -> bool {
        matches!(&self.decision, Ok(d) if d.decision == self.expect)
            && self.missing_policies.is_empty()
    }
}

fn to_json(v: Option<toml::Value>) -> Value {
    v.and_then(|t| serde_json::to_value(t).ok())
        .unwrap_or_else(|| Value::Object(serde_json::Map::new()))
}

fn split(tool: &str) -> (String, String) {
    match tool.split_once('.') {
        Some((s, t)) => (s.to_string(), t.to_string()),
        None => (String::new(), tool.to_string()),
    }
}

/// Run the cases of one test file. A file that does not parse is one failed case.
pub fn run_file(engine: &Engine, file: &str, text: &str, now_ms: i64) -> Vec<CaseResult> {
    let raw: RawFile = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            return vec![CaseResult {
                file: file.into(),
                line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
                name: "(file)".into(),
                expect: Outcome::Allow,
                decision: Err(e.message().to_string()),
                missing_policies: Vec::new(),
            }]
        }
    };
    let case_lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim() == "[[case]]")
        .map(|(i, _)| i + 1)
        .collect();
    let _ = locate_toml;
    raw.case
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let line = case_lines.get(i).copied().unwrap_or(1);
            let expect = Outcome::parse(&c.expect);
            let decision = match expect {
                None => Err(format!(
                    "expect must be allow, deny or ask, not `{}`",
                    c.expect
                )),
                Some(_) => run_case(engine, &c, now_ms),
            };
            let missing_policies = match &decision {
                Ok(d) => c
                    .expect_policies
                    .iter()
                    .filter(|p| !d.policies.contains(p))
                    .cloned()
                    .collect(),
                Err(_) => Vec::new(),
            };
            CaseResult {
                file: file.into(),
                line,
                name: c.name,
                expect: expect.unwrap_or(Outcome::Allow),
                decision,
                missing_policies,
            }
        })
        .collect()
}

fn run_case(engine: &Engine, c: &RawCase, now_ms: i64) -> Result<Decision, String> {
    let mission = engine.grant(
        "test",
        &c.template,
        &c.agent,
        &c.principal,
        &c.purpose,
        now_ms,
    )?;
    let mut session = SessionState::new("test", "test");
    let mut usage = MissionUsage::default();
    let breakers = Breakers::default();
    let mut now = now_ms;
    for b in &c.before {
        now += 1000;
        let (server, tool) = split(&b.tool);
        let d = engine.decide(
            Call::new(server, tool, to_json(b.args.clone())),
            &mission,
            &session,
            &usage,
            &breakers,
            now,
        );
        engine.commit(&d.decision, &mut session, &mut usage);
        match (&d.allowed, &b.output) {
            (Some(p), Some(o)) => {
                engine.absorb(p.receipt(), o, &mut session, &mut usage, now);
            }
            (None, _) => {
                return Err(format!(
                    "earlier call `{}` was not allowed ({}): {}",
                    b.tool,
                    d.decision.decision,
                    d.decision.summary()
                ))
            }
            _ => {}
        }
    }
    let (server, tool) = split(&c.tool);
    let d = engine.decide(
        Call::new(server, tool, to_json(c.args.clone())),
        &mission,
        &session,
        &usage,
        &breakers,
        now + 1000,
    );
    Ok(d.decision)
}
