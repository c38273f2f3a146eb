//! Circuit breakers through `warden serve`, as processes: an agent paging through Acme's HR
//! directory of 5,000 employees under a roster mission (whose budget is above 5,000 records,
//! so neither the budget nor the pre-call limit check stops it) is stopped by the records
//! detector before 1,000 records have been returned; it stays stopped, in a new session too
//! and across a restart, until a member of `[breakers] resetters` resets the breaker with
//! `warden breaker reset`; a person who is not one is refused, and the refusal is audited.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::durable::{acme_copy, Answer, Client, Server, TOKEN};
use crate::text;

const FRANK: &str = "frank-breaker-test-token";
const DAVE: &str = "dave-breaker-test-token";
const PAGE: u64 = 100;

/// The Acme configuration in `dir`, with an HR directory of 5,000 people, a roster budget of
/// 6,000 records and 200 calls, dave and frank as local users, and `security` as the resetters.
fn config(dir: &Path) -> std::path::PathBuf {
    let config = acme_copy(dir);
    let toml = std::fs::read_to_string(&config).unwrap().replace(
        "args = [\"--server\", \"hr\"]",
        "args = [\"--server\", \"hr\", \"--employees\", \"5000\"]",
    ) + "\n[users.dave]\ntoken_env = \"WARDEN_USER_DAVE\"\n"
        + "\n[users.frank]\ntoken_env = \"WARDEN_USER_FRANK\"\n"
        + "\n[breakers]\nresetters = [\"security\"]\n";
    assert!(toml.contains("\"--employees\", \"5000\""));
    std::fs::write(&config, toml).unwrap();
    let missions = dir.join("missions.toml");
    let m = std::fs::read_to_string(&missions).unwrap();
    let roster = m.find("[\"project-roster\"]").unwrap();
    let (head, tail) = m.split_at(roster);
    let tail = tail.replacen("calls = 30", "calls = 200", 1).replacen(
        "records = 500",
        "records = 6000",
        1,
    );
    assert!(tail.contains("records = 6000") && tail.contains("calls = 200"));
    std::fs::write(&missions, format!("{head}{tail}")).unwrap();
    config
}

/// `warden ARGS --config CONFIG --store STORE` as the person whose token is `who`.
fn as_person(config: &Path, store: &str, who: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .arg("--config")
        .arg(config)
        .args(["--store", store])
        .env("WARDEN_USER_FRANK", FRANK)
        .env("WARDEN_USER_ALICE", "alice-breaker-test-token")
        .env("WARDEN_USER_DAVE", DAVE)
        .env("WARDEN_USER_TOKEN", who)
        .output()
        .unwrap()
}

fn start(config: &Path, store: &str) -> Server {
    Server::start_with(
        config,
        store,
        &[],
        &[
            // The test client's bearer token is hr-assistant's here.
            ("WARDEN_TOKEN_FORUM_HELPER", "forum-helper-breaker-test"),
            ("WARDEN_TOKEN_HR_ASSISTANT", TOKEN),
            ("WARDEN_USER_FRANK", FRANK),
            ("WARDEN_USER_ALICE", "alice-breaker-test-token"),
            ("WARDEN_USER_DAVE", DAVE),
        ],
    )
}

/// How many employees an answer returned.
fn employees(a: &Answer) -> u64 {
    match a.result()["structuredContent"]["employees"].as_array() {
        Some(rows) => rows.len() as u64,
        None => a.text().lines().skip(1).count() as u64,
    }
}

fn page(cursor: Option<&str>) -> Value {
    let mut args = json!({"query": "*", "fields": ["name", "title", "team", "email"],
        "limit": PAGE});
    if let Some(c) = cursor {
        args["cursor"] = json!(c);
    }
    args
}

async fn session(server: &Server, token: &str) -> Client {
    let mut c = server.client_with_token(token);
    c.open().await.unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_through_hr_trips_the_records_breaker_until_a_resetter_resets_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let store = format!("sqlite://{}", dir.path().join("w.db").display());

    // frank grants hr-assistant a roster mission.
    let granted = as_person(
        &config,
        &store,
        FRANK,
        &[
            "mission",
            "grant",
            "--template",
            "project-roster",
            "--agent",
            "hr-assistant",
            "--purpose",
            "Roster of everyone for the offsite",
            "--expires",
            "1h",
            "--format",
            "json",
        ],
    );
    assert!(granted.status.success(), "{}", text(&granted.stderr));
    let granted: Value = serde_json::from_slice(&granted.stdout).unwrap();
    let token = granted["token"].as_str().unwrap().to_string();
    let mission = granted["mission"].as_str().unwrap().to_string();
    let key = format!("mission:{mission}");

    let server = start(&config, &store);
    let mut agent = session(&server, &token).await;
    let mut returned = 0u64;
    let mut cursor: Option<String> = None;
    let mut stopped = None;
    for _ in 0..50 {
        let a = agent
            .call("hr.search_employees", page(cursor.as_deref()))
            .await;
        if !a.allowed() {
            stopped = Some(a);
            break;
        }
        returned += employees(&a);
        cursor = a.result()["structuredContent"]["next_cursor"]
            .as_str()
            .map(str::to_string);
        assert!(cursor.is_some(), "the directory ended first: {returned}");
    }
    let stopped = stopped.expect("the agent paged through 5,000 employees unstopped");
    assert!(
        returned > 0 && returned < 1_000,
        "returned {returned}: {stopped:?}"
    );
    let why = stopped.text();
    assert!(
        why.contains(&format!("the breaker of mission `{mission}` is tripped"))
            && why.contains("records in 10 minutes; the limit is 500"),
        "{why}"
    );

    // A new session of the same mission is stopped too.
    let mut second = session(&server, &token).await;
    let a = second.call("hr.search_employees", page(None)).await;
    assert!(!a.allowed() && a.text().contains("is tripped"), "{a:?}");

    // A restart keeps it tripped: the store holds it.
    drop(second);
    drop(agent);
    drop(server);
    let server = start(&config, &store);
    let mut agent = session(&server, &token).await;
    let a = agent.call("hr.search_employees", page(None)).await;
    assert!(!a.allowed() && a.text().contains("is tripped"), "{a:?}");

    // The list names it, with its reason.
    let listed = as_person(
        &config,
        &store,
        FRANK,
        &["breaker", "list", "--format", "json"],
    );
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["key"] == key.as_str())
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(entry["tripped"], true);
    assert_eq!(entry["detector"], "records");
    assert_eq!(entry["by"], "warden");

    // frank is not in `security`: refused, and audited.
    let refused = as_person(&config, &store, FRANK, &["breaker", "reset", &key]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("not allowed"));
    let a = agent.call("hr.search_employees", page(None)).await;
    assert!(!a.allowed(), "{a:?}");

    // dave resets it; the running server follows within moments.
    let reset = as_person(
        &config,
        &store,
        DAVE,
        &[
            "breaker",
            "reset",
            &key,
            "--reason",
            "roster export approved",
        ],
    );
    assert!(reset.status.success(), "{}", text(&reset.stderr));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = agent.call("hr.search_employees", page(None)).await;
        if a.allowed() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still stopped after the reset: {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The audit chain has the trip, the refusal and the reset, each with who.
    let tail = as_person(&config, &store, DAVE, &["audit", "export"]);
    let all = text(&tail.stdout);
    assert!(all.contains("breaker/tripped"), "{all}");
    let refusal = all
        .lines()
        .find(|l| l.contains("breaker/reset-refused"))
        .unwrap_or_else(|| panic!("{all}"));
    assert!(refusal.contains("frank"), "{refusal}");
    let done = all
        .lines()
        .find(|l| l.contains("\"breaker/reset\""))
        .unwrap_or_else(|| panic!("{all}"));
    assert!(
        done.contains("dave") && done.contains("roster export approved"),
        "{done}"
    );
}
