//! Policy tests: request → expected outcome, kept beside the policies and run by
//! `warden policy test`. This module reads a test file into [`Case`]s; `warden-enforce` runs
//! them through the enforcement pipeline.
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

use crate::engine::Call;
use crate::error::line_of;
use crate::model::{Decision, Outcome};

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

/// One case of a test file, read.
#[derive(Debug, Clone)]
pub struct Case {
    /// File.
    pub file: String,
    /// Line of its `[[case]]`.
    pub line: usize,
    /// Case name.
    pub name: String,
    /// The agent.
    pub agent: String,
    /// The person it acts for.
    pub principal: String,
    /// The mission template.
    pub template: String,
    /// The purpose.
    pub purpose: String,
    /// Calls made earlier in the same session, with the output each returned.
    pub before: Vec<(Call, Option<String>)>,
    /// The call under test.
    pub call: Call,
    /// The expected outcome, or why the `expect` value is not one.
    pub expect: Result<Outcome, String>,
    /// Policies that must be among the decision's.
    pub expect_policies: Vec<String>,
}

impl Case {
    /// The result of this case, given the decision (or why it could not be made).
    pub fn result(&self, decision: Result<Decision, String>) -> CaseResult {
        let decision = match &self.expect {
            Err(e) => Err(e.clone()),
            Ok(_) => decision,
        };
        let missing_policies = match &decision {
            Ok(d) => self
                .expect_policies
                .iter()
                .filter(|p| !d.policies.contains(p))
                .cloned()
                .collect(),
            Err(_) => Vec::new(),
        };
        CaseResult {
            file: self.file.clone(),
            line: self.line,
            name: self.name.clone(),
            expect: self.expect.clone().unwrap_or(Outcome::Allow),
            decision,
            missing_policies,
        }
    }
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

fn call(tool: &str, args: Option<toml::Value>) -> Call {
    let (server, tool) = match tool.split_once('.') {
        Some((s, t)) => (s.to_string(), t.to_string()),
        None => (String::new(), tool.to_string()),
    };
    Call::new(server, tool, to_json(args))
}

/// Read the cases of one test file.
///
/// # Errors
/// A file that does not parse, as one failed case naming the line.
pub fn parse_file(file: &str, text: &str) -> Result<Vec<Case>, Box<CaseResult>> {
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        Box::new(CaseResult {
            file: file.into(),
            line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
            name: "(file)".into(),
            expect: Outcome::Allow,
            decision: Err(e.message().to_string()),
            missing_policies: Vec::new(),
        })
    })?;
    let case_lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim() == "[[case]]")
        .map(|(i, _)| i + 1)
        .collect();
    Ok(raw
        .case
        .into_iter()
        .enumerate()
        .map(|(i, c)| Case {
            file: file.into(),
            line: case_lines.get(i).copied().unwrap_or(1),
            expect: Outcome::parse(&c.expect)
                .ok_or_else(|| format!("expect must be allow, deny or ask, not `{}`", c.expect)),
            name: c.name,
            agent: c.agent,
            principal: c.principal,
            template: c.template,
            purpose: c.purpose,
            before: c
                .before
                .into_iter()
                .map(|b| (call(&b.tool, b.args), b.output))
                .collect(),
            call: call(&c.tool, c.args),
            expect_policies: c.expect_policies,
        })
        .collect())
}
