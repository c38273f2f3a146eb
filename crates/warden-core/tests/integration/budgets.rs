//! Budgets and queries before the call, and the holds that are not needed.
//!
//! - A read that asks for more records than the mission has left is refused before it runs,
//!   counting what earlier reads returned.
//! - A query that names a field outside the mission's fields is refused, in every syntax the
//!   catalog can declare; a mission with `deny_fields` refuses only those.
//! - Public text keeps its label: a detector's `pii` does not override it, a `secret` does.

use serde_json::{json, Value};
use warden_core::mission::MissionUsage;
use warden_core::session::SessionState;
use warden_core::{Breakers, Call, Engine, Outcome};

use crate::common::{acme, acme_dir, acme_text, load_with, NOW};

struct Run {
    e: Engine,
    m: warden_core::mission::Mission,
    s: SessionState,
    u: MissionUsage,
}

impl Run {
    fn new(e: Engine, template: &str, agent: &str, principal: &str) -> Run {
        Run::for_purpose(e, template, agent, principal, "a task")
    }

    fn for_purpose(e: Engine, template: &str, agent: &str, principal: &str, purpose: &str) -> Run {
        let m = e
            .grant("m", template, agent, principal, purpose, NOW)
            .unwrap();
        Run {
            e,
            m,
            s: SessionState::new("s", "m"),
            u: MissionUsage::default(),
        }
    }

    /// Decide a call; when allowed and `output` is given, absorb it. Returns outcome and reason.
    fn call(&mut self, tool: &str, args: Value, output: Option<&str>) -> (Outcome, String) {
        let (server, t) = tool.split_once('.').unwrap();
        let d = self.e.decide(
            Call::new(server, t, args),
            &self.m,
            &self.s,
            &self.u,
            &Breakers::default(),
            NOW,
        );
        self.e.commit(&d.decision, &mut self.s, &mut self.u);
        if let (Some(p), Some(out)) = (&d.allowed, output) {
            self.e
                .absorb(p.receipt(), out, &mut self.s, &mut self.u, NOW);
        }
        (d.decision.decision, d.decision.summary())
    }
}

fn lines(n: usize) -> String {
    (0..n)
        .map(|i| format!("2026-11-20T09:{:02}:00Z deploy ok service=s{i}\n", i % 60))
        .collect()
}

#[test]
fn records_already_read_count_against_what_a_call_may_ask_for() {
    // answer-forum-question: 500 records; logs count lines.
    let mut r = Run::new(acme(), "answer-forum-question", "forum-helper", "alice");
    let q = |limit: Value| json!({"source": "deploy", "query": "*", "limit": limit});
    let (o, _) = r.call("logs.query_logs", q(json!(450)), Some(&lines(450)));
    assert_eq!(o, Outcome::Allow);
    assert_eq!(r.u.records, 450);
    let (o, why) = r.call("logs.query_logs", q(json!(51)), None);
    assert_eq!(o, Outcome::Deny, "{why}");
    assert!(why.contains("50 of its budget of 500"), "{why}");
    assert!(why.contains("51"), "{why}");
    // No limit: the catalog's default page of 20 fits.
    let (o, why) = r.call(
        "logs.query_logs",
        json!({"source": "deploy", "query": "*"}),
        None,
    );
    assert_eq!(o, Outcome::Allow, "{why}");
    let (o, why) = r.call("logs.query_logs", q(json!(50)), Some(&lines(50)));
    assert_eq!(o, Outcome::Allow, "{why}");
    // Nothing left: even one record is refused, before and without a limit.
    let (o, _) = r.call("logs.query_logs", q(json!(1)), None);
    assert_eq!(o, Outcome::Deny);
    let (o, _) = r.call(
        "logs.query_logs",
        json!({"source": "deploy", "query": "*"}),
        None,
    );
    assert_eq!(o, Outcome::Deny);
}

/// Acme with a people search whose filter is a JSON document, a key-value string or a search
/// box, and a mission that may not read salaries or SSNs.
fn hr_engine() -> Engine {
    let mut catalog = std::fs::read_to_string(acme_dir().join("catalog.toml")).unwrap();
    catalog.push_str(
        r#"
[tools."hr.find"]
effect = "read"
required = ["q"]
optional = ["where", "kv", "page_size", "max_results"]
resource = { type = "Dataset", id = "hr.employees" }
default_labels = ["internal"]
records = "json-array"
count_arg = ["page_size", "max_results"]
query = [
  { arg = "where", syntax = "json" },
  { arg = "kv", syntax = "key-value" },
  { arg = "q", syntax = "search" },
]
"#,
    );
    let mut missions = std::fs::read_to_string(acme_dir().join("missions.toml")).unwrap();
    missions.push_str(
        r#"
["people-lookup"]
tools = ["hr.find", "forum.send_dm"]
lifetime = "1h"
records = 100
deny_fields = ["salary", "ssn"]
"#,
    );
    let main = acme_text().replace(
        "ceiling = [\"hr.search_employees\", \"forum.send_dm\"]",
        "ceiling = [\"hr.search_employees\", \"hr.find\", \"forum.send_dm\"]",
    );
    Engine::new(
        load_with(
            &main,
            &[("catalog.toml", &catalog), ("missions.toml", &missions)],
        )
        .unwrap(),
    )
}

#[test]
fn a_deny_list_refuses_its_fields_in_every_syntax_and_passes_the_rest() {
    let mut r = Run::new(hr_engine(), "people-lookup", "hr-assistant", "frank");
    let refused = [
        json!({"q": "bob", "where": {"salary": {"$gt": 1}}}),
        json!({"q": "bob", "where": "{\"$or\": [{\"team\": \"x\"}, {\"SSN\": {\"$exists\": true}}]}"}),
        json!({"q": "bob", "where": {"$expr": {"$gt": ["$salary", 100]}}}),
        json!({"q": "bob", "where": {"comp": {"salary": 1}}}),
        json!({"q": "bob", "where": {"$where": "this.team == 'x'"}}),
        json!({"q": "bob", "kv": "team=Payments&salary>=1"}),
        json!({"q": "bob", "kv": "sal%61ry=1"}),
        json!({"q": "salary:>200000"}),
        json!({"q": "bob OR -\"ssn\":1*"}),
        json!({"q": "salary : >1"}),
        json!({"q": "_exists_:salary"}),
        json!({"q": "team:\"unclosed"}),
        json!({"q": "bob", "where": "not json at all"}),
    ];
    for args in refused {
        let (o, why) = r.call("hr.find", args.clone(), None);
        assert_eq!(o, Outcome::Deny, "{args}: {why}");
    }
    let passed = [
        json!({"q": "bob", "page_size": 10}),
        json!({"q": "team:Payments title:engineer", "max_results": "10"}),
        json!({"q": "\"salary:>1\"", "page_size": 10}),
        json!({"q": "bob", "where": {"team": "Payments", "title": {"$regex": "Eng"}}, "page_size": 10}),
        json!({"q": "bob", "kv": "team=Payments;title=Engineer", "page_size": 10}),
        json!({"q": "bob", "page_size": 100}),
    ];
    for args in passed {
        let (o, why) = r.call("hr.find", args.clone(), None);
        assert_eq!(o, Outcome::Allow, "{args}: {why}");
    }
    // Without a count and without a declared default, the tool may return any number.
    let (o, _) = r.call("hr.find", json!({"q": "bob"}), None);
    assert_eq!(o, Outcome::Deny);
    let (o, _) = r.call("hr.find", json!({"q": "bob", "max_results": 101}), None);
    assert_eq!(o, Outcome::Deny);
    let (o, _) = r.call(
        "hr.find",
        json!({"q": "bob", "page_size": 5, "max_results": "5000"}),
        None,
    );
    assert_eq!(o, Outcome::Deny);
}

#[test]
fn a_missing_count_without_a_declared_default_is_unbounded() {
    let mut catalog = std::fs::read_to_string(acme_dir().join("catalog.toml")).unwrap();
    catalog = catalog.replace(
        "count_arg = \"limit\"\ncount_default = 20\n",
        "count_arg = \"limit\"\n",
    );
    let e = Engine::new(load_with(&acme_text(), &[("catalog.toml", &catalog)]).unwrap());
    let mut r = Run::new(e, "answer-forum-question", "forum-helper", "alice");
    let (o, why) = r.call(
        "logs.query_logs",
        json!({"source": "deploy", "query": "*"}),
        None,
    );
    assert_eq!(o, Outcome::Deny, "{why}");
    assert!(why.contains("unbounded"), "{why}");
    let (o, why) = r.call(
        "logs.query_logs",
        json!({"source": "deploy", "query": "*", "limit": 5}),
        None,
    );
    assert_eq!(o, Outcome::Allow, "{why}");
}

#[test]
fn catalog_and_mission_mistakes_are_reported() {
    let mut catalog = std::fs::read_to_string(acme_dir().join("catalog.toml")).unwrap();
    catalog.push_str(
        "\n[tools.\"hr.x\"]\neffect = \"read\"\nresource = { type = \"Dataset\", id = \"x\" }\ncount_default = 5\n\
         \n[tools.\"hr.y\"]\neffect = \"read\"\nresource = { type = \"Dataset\", id = \"y\" }\nquery = { arg = \"f\", syntax = \"graphql\" }\n",
    );
    let err = load_with(&acme_text(), &[("catalog.toml", &catalog)])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("count_default needs count_arg"), "{err}");
    assert!(err.contains("graphql"), "{err}");
}

#[test]
fn public_text_keeps_its_label_except_for_secrets() {
    // The person named the page's host, so its addresses are what they asked for; the test is
    // about labels.
    let mut r = Run::for_purpose(
        acme(),
        "triage",
        "exec-assistant",
        "alice",
        "Send bob the contacts on vendor.example's contact page",
    );
    let page = "Support: support@vendor.example, +1 415 555 0142\nSales: sales@vendor.example, +1 415 555 0188\nSecurity: security@vendor.example";
    r.call(
        "web.fetch",
        json!({"url": "https://vendor.example/contact"}),
        Some(page),
    );
    assert!(!r.s.taint.contains_key("pii"), "{:?}", r.s.taint.keys());
    let (o, why) = r.call(
        "mail.send_email",
        json!({"to": "bob@acme.example", "subject": "Vendor", "body": "Support: support@vendor.example, sales@vendor.example, security@vendor.example"}),
        None,
    );
    assert_eq!(o, Outcome::Allow, "{why}");
    // A key on a public page is still a secret.
    let mut r = Run::new(acme(), "triage", "exec-assistant", "alice");
    r.call(
        "web.fetch",
        json!({"url": "https://vendor.example/contact"}),
        Some("leaked: AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    );
    assert!(r.s.taint.contains_key("secret"), "{:?}", r.s.taint.keys());
    // Contacts read from an internal file stay personal data.
    let mut r = Run::new(acme(), "triage", "exec-assistant", "alice");
    r.call(
        "files.read_file",
        json!({"path": "docs/oncall.md"}),
        Some(page),
    );
    assert!(r.s.taint.contains_key("pii"), "{:?}", r.s.taint.keys());
}
