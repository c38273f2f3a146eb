//! Tasks (2025-11-25) over `warden serve`: offered at `initialize`, a call made as a task is
//! decided and logged as the plain call, its result fetched with `tasks/result`; tasks belong to
//! their session.

use serde_json::{json, Value};

use super::fastpath::{result_text, served, RawClient, Reply};
use super::http::TOKEN;

fn task_id(r: &Reply) -> String {
    r.message
        .pointer("/result/task/taskId")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no task: {}", r.body))
        .to_string()
}

#[tokio::test]
async fn a_call_made_as_a_task_is_decided_fetched_and_kept_to_its_session() {
    let (_gw, log, addr, _stop, mut c, list) = served().await;
    // Warden's tools are listed; none of Acme's runs long, so none is marked for tasks.
    let tools = list.message["result"]["tools"].as_array().unwrap();
    assert!(
        tools.iter().all(|t| t.get("execution").is_none()),
        "{}",
        list.body
    );

    // `initialize` offers tasks on 2025-11-25.
    let mut fresh = RawClient::new(addr, TOKEN);
    let init = fresh
        .request(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "0"}}),
        )
        .await;
    assert!(
        init.message
            .pointer("/result/capabilities/tasks/requests/tools/call")
            .is_some(),
        "{}",
        init.body
    );

    let before = log.len();
    let args = json!({"channel": "eng-help", "thread_id": "T-1042"});
    let created = c
        .request(
            "tools/call",
            json!({"name": "forum.read_thread", "arguments": args, "task": {"ttl": 60000}}),
        )
        .await;
    let id = task_id(&created);
    assert_eq!(created.message["result"]["task"]["status"], "working");
    let result = c.request("tasks/result", json!({"taskId": id})).await;
    assert!(result_text(&result).contains("T-1042"), "{}", result.body);
    assert_eq!(
        result.message["result"]["_meta"]["io.modelcontextprotocol/related-task"]["taskId"],
        json!(id)
    );
    let got = c.request("tasks/get", json!({"taskId": id})).await;
    assert_eq!(got.message["result"]["status"], "completed", "{}", got.body);
    // Decided and logged as the plain call is.
    let entries = log.entries();
    let decided: Vec<_> = entries
        .get(before..)
        .unwrap_or_default()
        .iter()
        .filter(|e| e.decision.tool == "forum.read_thread")
        .collect();
    assert_eq!(decided.len(), 1);

    // A finished task cannot be cancelled.
    let cancel = c.request("tasks/cancel", json!({"taskId": id})).await;
    assert_eq!(cancel.message["error"]["code"], -32602, "{}", cancel.body);

    // A call Warden refuses is a task whose result is the refusal.
    let refused = c
        .request(
            "tools/call",
            json!({"name": "forum.list_threads", "arguments": {}, "task": {}}),
        )
        .await;
    let refused_id = task_id(&refused);
    let r = c
        .request("tasks/result", json!({"taskId": refused_id}))
        .await;
    assert_eq!(r.message["result"]["isError"], true, "{}", r.body);
    assert!(
        result_text(&r).contains("needs the argument `channel`"),
        "{}",
        r.body
    );

    // Another session of the same agent sees none of them.
    let mut other = RawClient::new(addr, TOKEN);
    other.open().await;
    let listed = other.request("tasks/list", json!({})).await;
    assert_eq!(
        listed.message["result"]["tasks"],
        json!([]),
        "{}",
        listed.body
    );
    for method in ["tasks/get", "tasks/result", "tasks/cancel"] {
        let r = other.request(method, json!({"taskId": id})).await;
        assert_eq!(r.message["error"]["code"], -32602, "{method}: {}", r.body);
    }
    let mine = c.request("tasks/list", json!({})).await;
    assert_eq!(mine.message["result"]["tasks"].as_array().unwrap().len(), 2);

    // Malformed task requests are refused with their reason.
    let r = c.request("tasks/get", json!({})).await;
    assert_eq!(r.message["error"]["code"], -32602, "{}", r.body);
    let r = c
        .request(
            "tools/call",
            json!({"name": "forum.read_thread", "arguments": 5, "task": {}}),
        )
        .await;
    assert_eq!(r.message["error"]["code"], -32602, "{}", r.body);
}

#[tokio::test]
async fn a_running_task_is_cancelled_and_has_no_result() {
    let (_gw, probe, _addr, mut c) = super::notes::served_probe().await;
    let created = c
        .request(
            "tools/call",
            json!({"name": "forum.read_thread",
                   "arguments": {"channel": "eng-help", "thread_id": "T-HANG"}, "task": {}}),
        )
        .await;
    let id = task_id(&created);
    assert!(
        super::common::eventually(std::time::Duration::from_secs(5), || probe.seen().len()
            == 1)
        .await,
        "the call reached the upstream"
    );
    let got = c.request("tasks/get", json!({"taskId": id})).await;
    assert_eq!(got.message["result"]["status"], "working", "{}", got.body);
    let cancelled = c.request("tasks/cancel", json!({"taskId": id})).await;
    assert_eq!(
        cancelled.message["result"]["status"], "cancelled",
        "{}",
        cancelled.body
    );
    let r = c.request("tasks/result", json!({"taskId": id})).await;
    assert_eq!(r.message["error"]["code"], -32602, "{}", r.body);
    assert!(r.body.contains("cancelled"), "{}", r.body);
}
