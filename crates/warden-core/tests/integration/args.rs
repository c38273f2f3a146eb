//! Arguments in policy: typed arguments read as `context.args` (longs, decimals, sets, records),
//! wrong types refused, values Cedar cannot hold summarised, and policies that read an
//! argument a tool does not have refused at load.

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{json, Value};
use warden_core::mission::MissionUsage;
use warden_core::session::SessionState;
use warden_core::{Breakers, Call, Engine, Outcome};

use crate::common::{acme_dir, acme_text, load_with, NOW};

/// A read tool with typed arguments, added to Acme.
const TOOL: &str = r#"
[tools."forum.order"]
effect = "read"
required = ["amount"]
optional = ["price", "tags", "opts", "note", "urgent"]
types = { amount = "long", price = "decimal", tags = "set<string>", note = "string", urgent = "bool", opts = { depth = "long", mode = "string" } }
resource = { type = "Resource", id = "orders" }
"#;

/// Policies that read each kind of argument.
const POLICIES: &str = r#"
@id("orders-under-1000")
forbid (principal, action == Action::"forum.order", resource)
when { context.args.amount >= 1000 };

@id("price-at-most-99.99")
forbid (principal, action == Action::"forum.order", resource)
when { context.args has price && context.args.price.greaterThan(decimal("99.99")) };

@id("no-blocked-tag")
forbid (principal, action == Action::"forum.order", resource)
when { context.args has tags && context.args.tags.contains("blocked") };

@id("no-admin-mode")
forbid (principal, action == Action::"forum.order", resource)
when { context.args has opts && context.args.opts has mode && context.args.opts.mode == "admin" };

@id("no-urgent")
forbid (principal, action == Action::"forum.order", resource)
when { context.args has urgent && context.args.urgent };

@id("no-secret-notes")
forbid (principal, action == Action::"forum.order", resource)
when { context.args has note && context.args.note like "*secret*" };

@id("reads-amount-on-a-group")
forbid (principal, action in Action::"read", resource)
when { context.args has amount && context.args.amount == 123456 };
"#;

fn catalog() -> String {
    let mut catalog = std::fs::read_to_string(acme_dir().join("catalog.toml")).unwrap();
    catalog.push_str(TOOL);
    catalog
}

fn engine_with(extra: &str) -> Engine {
    let catalog = catalog();
    Engine::new(
        load_with(
            &acme_text(),
            &[
                ("catalog.toml", &catalog),
                ("policies/zz-args.cedar", POLICIES),
                ("policies/zz-extra.cedar", extra),
            ],
        )
        .unwrap(),
    )
}

fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| engine_with(""))
}

fn decide(e: &Engine, args: Value) -> (Outcome, String) {
    let m = e
        .grant(
            "m",
            "answer-forum-question",
            "forum-helper",
            "alice",
            "orders",
            NOW,
        )
        .unwrap();
    let d = e.decide(
        Call::new("forum", "order", args),
        &m,
        &SessionState::new("s", "m"),
        &MissionUsage::default(),
        &Breakers::default(),
        NOW,
    );
    let why = format!("{} {:?}", d.decision.summary(), d.decision.policies);
    (d.decision.decision, why)
}

#[test]
fn a_long_argument_is_compared_in_policy() {
    let (o, why) = decide(engine(), json!({"amount": 999}));
    assert_eq!(o, Outcome::Allow, "{why}");
    let (o, why) = decide(engine(), json!({"amount": 1000}));
    assert_eq!(o, Outcome::Deny, "{why}");
    assert!(why.contains("orders-under-1000"), "{why}");
}

#[test]
fn a_decimal_argument_is_compared_as_a_decimal() {
    for (price, want) in [
        (json!(99.99), Outcome::Allow),
        (json!(99), Outcome::Allow),
        (json!(100.5), Outcome::Deny),
        (json!(-3.25), Outcome::Allow),
    ] {
        let (o, why) = decide(engine(), json!({"amount": 1, "price": price}));
        assert_eq!(o, want, "{price}: {why}");
    }
}

#[test]
fn a_set_argument_is_tested_for_membership() {
    let (o, why) = decide(engine(), json!({"amount": 1, "tags": ["a", "b"]}));
    assert_eq!(o, Outcome::Allow, "{why}");
    let (o, why) = decide(engine(), json!({"amount": 1, "tags": ["a", "blocked"]}));
    assert_eq!(o, Outcome::Deny, "{why}");
    assert!(why.contains("no-blocked-tag"), "{why}");
}

#[test]
fn a_nested_object_is_a_record() {
    let (o, why) = decide(
        engine(),
        json!({"amount": 1, "opts": {"depth": 2, "mode": "user", "other": [1]}}),
    );
    assert_eq!(o, Outcome::Allow, "{why}");
    let (o, why) = decide(engine(), json!({"amount": 1, "opts": {"mode": "admin"}}));
    assert_eq!(o, Outcome::Deny, "{why}");
    assert!(why.contains("no-admin-mode"), "{why}");
    let (o, why) = decide(engine(), json!({"amount": 1, "urgent": true}));
    assert_eq!(o, Outcome::Deny, "{why}");
}

#[test]
fn a_value_of_the_wrong_type_is_refused() {
    for (args, at, want) in [
        (json!({"amount": "5"}), "amount", "an integer"),
        (json!({"amount": 1.5}), "amount", "an integer"),
        (json!({"amount": 1, "tags": "a"}), "tags", "an array"),
        (
            json!({"amount": 1, "tags": ["a", 2]}),
            "tags[1]",
            "a string",
        ),
        (
            json!({"amount": 1, "opts": {"depth": "deep"}}),
            "opts.depth",
            "an integer",
        ),
        (json!({"amount": 1, "price": "9.99"}), "price", "a number"),
        (
            json!({"amount": 1, "urgent": "yes"}),
            "urgent",
            "true or false",
        ),
    ] {
        let (o, why) = decide(engine(), args.clone());
        assert_eq!(o, Outcome::Deny, "{args}: {why}");
        assert!(
            why.contains(&format!("argument `{at}` of `forum.order` must be {want}")),
            "{args}: {why}"
        );
    }
}

#[test]
fn a_value_cedar_cannot_hold_is_summarised_and_a_policy_reading_it_denies() {
    let long_note = "x".repeat(2000);
    for (args, arg) in [
        (json!({"amount": 1, "note": long_note}), "note"),
        (json!({"amount": 1, "price": 0.00001}), "price"),
        (json!({"amount": 1e30}), "amount"),
        (json!({"amount": u64::MAX}), "amount"),
        (json!({"amount": 1, "tags": vec!["a"; 300]}), "tags"),
    ] {
        let (o, why) = decide(engine(), args.clone());
        assert_eq!(o, Outcome::Deny, "{arg}: {why}");
        assert!(
            why.contains(&format!(
                "argument `{arg}` of `forum.order` cannot be given to policies"
            )),
            "{arg}: {why}"
        );
        assert!(why.contains("digest sha256:"), "{why}");
    }
}

#[test]
fn policies_that_read_summaries_decide_for_themselves() {
    let e = engine_with(
        r#"@id("notes-under-10k")
forbid (principal, action == Action::"forum.order", resource)
when { context.arg_summaries has note && context.arg_summaries.note.length > 10000 };"#,
    );
    let (o, why) = decide(&e, json!({"amount": 1, "note": "x".repeat(2000)}));
    assert_eq!(o, Outcome::Allow, "{why}");
    let (o, why) = decide(&e, json!({"amount": 1, "note": "x".repeat(20_000)}));
    assert_eq!(o, Outcome::Deny, "{why}");
    assert!(why.contains("notes-under-10k"), "{why}");
    // A short note is in `context.args` and read as usual.
    let (o, why) = decide(&e, json!({"amount": 1, "note": "top secret"}));
    assert_eq!(o, Outcome::Deny, "{why}");
    assert!(why.contains("no-secret-notes"), "{why}");
}

#[test]
fn a_policy_reading_an_argument_the_tool_lacks_is_refused_at_load() {
    let catalog = catalog();
    let bad = "@id(\"ok\")\npermit(principal, action, resource);\n\n@id(\"reads-nope\")\nforbid (principal, action == Action::\"forum.order\", resource)\nwhen { context.args.nope == 1 };\n";
    let got = load_errors(&catalog, bad);
    assert!(
        got.iter().any(|i| i.starts_with("policies/zz-bad.cedar:")
            && i.contains("reads-nope")
            && i.contains("nope")),
        "{got:#?}"
    );
    // On an effect group, every member is checked: reading `amount` unguarded fails, because
    // other read tools have no `amount`.
    let group = "@id(\"group-amount\")\nforbid (principal, action in Action::\"read\", resource)\nwhen { context.args.amount > 5 };\n";
    let got = load_errors(&catalog, group);
    assert!(got.iter().any(|i| i.contains("group-amount")), "{got:#?}");
}

/// The errors loading Acme with `catalog` and one more policy file `policy` reports.
fn load_errors(catalog: &str, policy: &str) -> Vec<String> {
    let Err(err) = load_with(
        &acme_text(),
        &[("catalog.toml", catalog), ("policies/zz-bad.cedar", policy)],
    ) else {
        panic!("the configuration loads: {policy}");
    };
    err.0.iter().map(|i| i.to_string()).collect()
}

#[test]
fn a_catalog_type_that_is_unknown_is_reported() {
    let catalog = catalog().replace("price = \"decimal\"", "price = \"float\"");
    let Err(err) = load_with(&acme_text(), &[("catalog.toml", &catalog)]) else {
        panic!("an unknown type does not load");
    };
    let got: Vec<String> = err.0.iter().map(|i| i.to_string()).collect();
    assert!(
        got.iter()
            .any(|i| i.contains("argument `price`: unknown argument type `float`")),
        "{got:#?}"
    );
}

#[test]
fn the_policy_context_carries_typed_arguments() {
    let e = engine();
    let m = e
        .grant(
            "m",
            "answer-forum-question",
            "forum-helper",
            "alice",
            "o",
            NOW,
        )
        .unwrap();
    let (_, ctx) = e
        .policy_context(
            &Call::new(
                "forum",
                "order",
                json!({"amount": 7, "price": 1.5, "note": "y".repeat(2000)}),
            ),
            &m,
            &SessionState::new("s", "m"),
            &MissionUsage::default(),
            NOW,
        )
        .unwrap();
    let text = format!("{ctx:?}");
    assert!(text.contains("amount"), "{text}");
    assert!(text.contains("arg_summaries"), "{text}");
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        (0i64..2000).prop_map(|n| json!(n)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    /// Whatever JSON an argument holds, deciding never panics, and `amount` is allowed only
    /// when it is an integer under 1000.
    #[test]
    fn any_argument_value_never_panics_and_never_slips_past_a_policy(
        amount in any_json(),
        price in any_json(),
        opts in any_json(),
    ) {
        let (o, why) = decide(engine(), json!({"amount": amount, "price": price, "opts": opts}));
        if o == Outcome::Allow {
            let n = amount.as_i64().or_else(|| amount.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64));
            prop_assert!(n.is_some_and(|n| n < 1000), "{amount}: {why}");
        }
    }
}
