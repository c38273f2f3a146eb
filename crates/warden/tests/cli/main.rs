//! `warden` CLI tests: exit codes scripts can trust, precise errors, and output snapshots.
//!
//! - replay: `--check` passes on the Acme scenarios, exits 1 on a mismatch and prints it; a
//!   malformed trace exits 2 naming the file and line; `--format json` is one object per call.
//! - policy: validate reports every problem with file and line (exit 2); test runs the cases.
//! - catalog discover: drafts for the Acme servers are entries Warden loads, with guessed
//!   audiences and act-as arguments; an unknown server is a usage error.
//! - `serve`: `@acme-mcp` upstreams run with the warden binary alone; a command that cannot
//!   start is named at once; `/healthz` and `/readyz` answer without a token, `/mcp` wants one.
//! - `audit` (and `migrate`, `keygen`): an SQLite chain verifies, then an edited record is
//!   named (exit 1); export, show and tail read it; keys are never overwritten; migrate on a
//!   fresh SQLite file and on PostgreSQL prints the schema version.
//! - durable: over real MCP, a mission's taint holds in a second session, after a restart and
//!   on another replica; a SIGKILL under load loses no record of an allowed call; a store
//!   outage refuses calls, and its return is noticed without a restart.
//! - kill: two `warden serve` replicas on one PostgreSQL; `warden kill --all` with a call in
//!   flight returns once both confirmed, the call comes back as the kill's error, and nothing
//!   is allowed after; a live replica that does not confirm is named (exit 1); refusals are
//!   audited.
//! - breakers: paging through a 5,000-employee HR directory trips the records breaker before
//!   1,000 records; it holds in a new session and across a restart until a resetter resets it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod audit;
mod breakers;
#[path = "../../../warden-store/tests/store/cluster.rs"]
mod cluster;
mod durable;
mod kill;
mod missions;
mod serve;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn warden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

const CONFIG: &str = "examples/acme/warden.toml";

#[test]
fn replay_check_passes_on_every_acme_scenario() {
    let mut args = vec!["replay", "--config", CONFIG, "--check"];
    let files: Vec<String> = std::fs::read_dir(repo().join("examples/acme/scenarios"))
        .unwrap()
        .flatten()
        .map(|e| {
            format!(
                "examples/acme/scenarios/{}",
                e.file_name().to_string_lossy()
            )
        })
        .collect();
    args.extend(files.iter().map(String::as_str));
    let out = warden(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(", 0 mismatches"),
        "{}",
        text(&out.stderr)
    );
}

fn temp_trace(name: &str, body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warden-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn a_mismatch_is_printed_and_exits_1() {
    let p = temp_trace(
        "wrong.jsonl",
        concat!(
            r#"{"kind":"mission","id":"m1","template":"answer-forum-question","agent":"forum-helper","principal":"bob","purpose":"x"}"#,
            "\n",
            r#"{"kind":"call","mission":"m1","session":"s1","server":"logs","tool":"query_logs","args":{"source":"auth","query":"*"},"expect":"allow"}"#,
            "\n"
        ),
    );
    let out = warden(&["replay", "--config", CONFIG, "--check", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("wrong.jsonl:2: `logs.query_logs` expected allow, got deny"),
        "{err}"
    );
}

#[test]
fn malformed_traces_exit_2_with_file_and_line() {
    for (body, needle) in [
        (
            "{\"kind\":\"mission\"}\n",
            "bad.jsonl:1: not a mission line: missing field `id`",
        ),
        (
            r#"{"kind":"mission","id":"m","template":"answer-forum-question","agent":"forum-helper","principal":"bob","tolls":["forum.*"]}"#,
            "bad.jsonl:1: not a mission line: unknown field `tolls`",
        ),
        ("\n\nnot json\n", "bad.jsonl:3: not a trace line"),
        (
            r#"{"kind":"call","mission":"nope","session":"s","server":"a","tool":"b"}"#,
            "bad.jsonl:1: call names mission `nope`",
        ),
        (
            r#"{"kind":"mission","id":"m","template":"zzz","agent":"forum-helper","principal":"bob"}"#,
            "unknown mission template `zzz`",
        ),
    ] {
        let p = temp_trace("bad.jsonl", body);
        let out = warden(&["replay", "--config", CONFIG, p.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{body}");
        assert!(text(&out.stderr).contains(needle), "{}", text(&out.stderr));
        assert!(!text(&out.stderr).contains("panicked"));
    }
}

#[test]
fn json_output_is_one_decision_per_call() {
    let out = warden(&[
        "replay",
        "--config",
        CONFIG,
        "--format",
        "json",
        "--now-ms",
        "1763629200000",
        "examples/acme/scenarios/sev1-incident.jsonl",
    ]);
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let last = &lines[2];
    assert_eq!(last["decision"], "ask");
    assert_eq!(last["exposure"]["count"], 2999);
    assert_eq!(last["exposure"]["audience"], 3000);
    assert!(last["policies"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "ask-exposure"));
    assert!(last["flow"]["labels"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l == "security-sensitive"));
    assert!(last["elapsed_us"].is_number());
}

#[test]
fn replay_text_output_snapshot() {
    let out = warden(&[
        "replay",
        "--config",
        CONFIG,
        "--now-ms",
        "1763629200000",
        "examples/acme/scenarios/sev1-incident.jsonl",
        "examples/acme/scenarios/confused-deputy.jsonl",
    ]);
    assert!(out.status.success());
    insta::assert_snapshot!(text(&out.stdout));
}

#[test]
fn an_invalid_config_lists_every_problem_and_exits_2() {
    let dir = std::env::temp_dir().join(format!("warden-cli-cfg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    for f in ["catalog.toml", "missions.toml", "directory.json"] {
        std::fs::copy(repo().join("examples/acme").join(f), dir.join(f)).unwrap();
    }
    std::fs::write(
        dir.join("policies/a.cedar"),
        "permit(principal, action, resource);\nforbid(principal,,);\n",
    )
    .unwrap();
    let main = std::fs::read_to_string(repo().join(CONFIG))
        .unwrap()
        .replace(
            "ceiling = [\"acl.*\", \"files.*\", \"logs.*\"]",
            "ceiling = [\"acl.*\", \"files.nope\", \"logs.*\"]",
        );
    std::fs::write(dir.join("warden.toml"), main).unwrap();
    let out = warden(&[
        "policy",
        "validate",
        "--config",
        dir.join("warden.toml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("policies/a.cedar:2:"), "{err}");
    assert!(err.contains("ceiling names `files.nope`"), "{err}");
}

#[test]
fn policy_validate_and_test_pass_on_acme() {
    let out = warden(&["policy", "validate", "--config", CONFIG]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("12200 users"));
    let out = warden(&["policy", "test", "--config", CONFIG]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains(" 0 failed"));
}

#[test]
fn help_is_everywhere() {
    for args in [
        vec!["--help"],
        vec!["replay", "--help"],
        vec!["policy", "test", "--help"],
    ] {
        let out = warden(&args);
        assert!(out.status.success());
        assert!(text(&out.stdout).contains("Usage"));
    }
}

#[test]
fn catalog_discover_drafts_entries_warden_loads() {
    // `@acme-mcp` is served by warden itself: no `acme-mcp` binary is needed.
    // Acme's catalog describes every tool: without --all there is nothing to draft.
    let o = warden(&[
        "catalog", "discover", "--config", CONFIG, "--server", "forum",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(!text(&o.stdout).contains("[tools."), "{}", text(&o.stdout));
    let o = warden(&["catalog", "discover", "--config", CONFIG, "--all"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    for entry in [
        "[tools.\"forum.send_dm\"]",
        "[tools.\"mail.send_email\"]",
        "[tools.\"files.read_file\"]",
    ] {
        assert!(out.contains(entry), "{entry} missing:\n{out}");
    }
    assert!(
        out.contains("audience = { kind = \"user\", arg = \"to\" }"),
        "{out}"
    );
    // Mail reaches `to`, `cc` and `bcc`: all three are drafted as its audiences.
    for arg in ["to", "cc", "bcc"] {
        assert!(
            out.contains(&format!("  {{ kind = \"email\", arg = \"{arg}\" }},\n")),
            "{out}"
        );
    }
    assert!(out.contains("acts_as = \"as_user\""), "{out}");
    // The drafts are a catalog Warden loads.
    let labels = ["public", "internal"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut issues = warden_core::error::Issues::default();
    let c = warden_core::catalog::Catalog::parse("draft.toml", &out, &labels, &mut issues);
    assert!(issues.0.is_empty(), "{:?}", issues.0);
    assert!(c
        .get("logs.query_logs")
        .is_some_and(|t| t.declares("limit")));
    // A server that is not configured is a usage error.
    let o = warden(&[
        "catalog", "discover", "--config", CONFIG, "--server", "nope",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
}
