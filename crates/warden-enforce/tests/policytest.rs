#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

//! `warden policy test` cases run through the enforcement pipeline: an earlier call's output is
//! absorbed into the case's mission, so a case can test what taint does; a wrong expectation
//! fails; a file that does not parse is one failed case with its line.

mod support;

use warden_enforce::policytest::run_file;

const NOW: i64 = 1_764_000_000_000;

const CASES: &str = r#"
[[case]]
name = "a public reply after reading auth logs waits for a person"
agent = "forum-helper"
principal = "alice"
template = "answer-forum-question"
tool = "forum.post_reply"
args = { channel = "eng-help", thread_id = "T-1042", as_user = "alice", body = "see the logs" }
expect = "ask"
expect_policies = ["ask-exposure"]

[[case.before]]
tool = "logs.query_logs"
args = { source = "auth", query = "user=bob" }
output = "2026-11-20T09:14:03Z auth FAIL user=bob ip=10.20.3.17 reason=invalid_password"

[[case]]
name = "the same reply without the read, expected (wrongly) to wait for the exposure"
agent = "forum-helper"
principal = "alice"
template = "answer-forum-question"
tool = "forum.post_reply"
args = { channel = "eng-help", thread_id = "T-1042", as_user = "alice", body = "see the logs" }
expect = "ask"
expect_policies = ["ask-exposure"]

[[case]]
name = "an unknown outcome"
agent = "forum-helper"
principal = "alice"
template = "answer-forum-question"
tool = "forum.read_thread"
args = { channel = "eng-help", thread_id = "T-1042" }
expect = "maybe"
"#;

#[tokio::test]
async fn cases_run_through_the_pipeline_with_their_earlier_calls() {
    let engine = support::acme();
    let results = run_file(&engine, "t.toml", CASES, NOW).await;
    assert_eq!(results.len(), 3);

    let tainted = &results[0];
    assert_eq!(tainted.line, 2);
    assert!(tainted.passed(), "{tainted:?}");

    // Without the earlier read nothing taints the mission: the reply waits only for the
    // principal's consent to post under their name, not for the exposure, and a case that
    // expects the exposure fails, naming the policy that did not decide.
    let clean = &results[1];
    assert!(!clean.passed());
    let d = clean.decision.as_ref().expect("decided");
    assert!(!d.policies.iter().any(|p| p == "ask-exposure"), "{d:?}");
    assert_eq!(clean.missing_policies, vec!["ask-exposure".to_string()]);
    assert_eq!(clean.line, 17);

    let unknown = &results[2];
    assert!(!unknown.passed());
    assert!(unknown
        .decision
        .as_ref()
        .is_err_and(|e| e.contains("`maybe`")));
}

#[tokio::test]
async fn a_file_that_does_not_parse_is_one_failed_case_with_its_line() {
    let engine = support::acme();
    let text = "[[case]]\nname = \"x\"\nagent = 3\n";
    let results = run_file(&engine, "bad.toml", text, NOW).await;
    assert_eq!(results.len(), 1);
    assert!(!results[0].passed());
    assert_eq!(results[0].line, 3);
    assert_eq!(results[0].file, "bad.toml");
}
