#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

const WHO: Who<'static> = Who {
    session: "s1",
    mission: "m1",
    agent: "roster-bot",
    principal: "alice",
};

fn labels(l: &[&str]) -> BTreeSet<String> {
    l.iter().map(|s| s.to_string()).collect()
}

fn call<'a>(
    tool: &'a str,
    outcome: Outcome,
    now_ms: i64,
    resource: Option<&'a str>,
    l: &'a BTreeSet<String>,
    exposed: u64,
) -> DecisionSeen<'a> {
    DecisionSeen {
        who: WHO,
        tool,
        outcome,
        resource,
        resource_labels: l,
        exposed,
        now_ms,
    }
}

fn quiet() -> BreakerSettings {
    // Everything off but what a test turns on.
    let mut s = BreakerSettings::default();
    s.call_rate.max_calls = u64::MAX;
    s.denied_ratio.min_calls = u64::MAX;
    s.sensitive_resources.max_distinct = u64::MAX;
    s.returned.max_records = 0;
    s.returned.max_bytes = 0;
    s.exposure.max_attempts = u64::MAX;
    s.new_tools.learn_calls = u64::MAX;
    s
}

fn none() -> BTreeSet<String> {
    BTreeSet::new()
}

#[test]
fn call_rate_trips_over_the_limit_and_not_at_it() {
    let mut s = quiet();
    s.call_rate.max_calls = 10;
    s.call_rate.window_secs = 60;
    let mut a = Anomalies::new(s, &none());
    let l = none();
    for i in 0..10 {
        let trips = a.decided(&call("hr.search", Outcome::Allow, i * 1000, None, &l, 0));
        assert!(trips.is_empty(), "call {i}: {trips:?}");
    }
    let trips = a.decided(&call("hr.search", Outcome::Allow, 10_000, None, &l, 0));
    assert_eq!(trips.len(), 1);
    assert_eq!(trips[0].scope_key, "mission:m1");
    assert_eq!(trips[0].detector, Detector::CallRate);
    assert_eq!(
        trips[0].reason,
        "mission `m1` made 11 calls in 1 minute; the limit is 10"
    );
}

#[test]
fn call_rate_forgets_calls_older_than_the_window() {
    let l = none();
    // Ten calls a minute for ten minutes: a window counts at most ten, plus one bucket of
    // older calls.
    let mut s = quiet();
    s.call_rate.max_calls = 12;
    s.call_rate.window_secs = 60;
    let mut a = Anomalies::new(s, &none());
    for i in 0..100i64 {
        let trips = a.decided(&call("t.t", Outcome::Allow, i * 6_000 + 7, None, &l, 0));
        assert!(trips.is_empty(), "call {i}: {trips:?}");
    }
}

#[test]
fn the_widest_scope_over_its_limit_is_the_one_that_trips() {
    let mut s = quiet();
    s.call_rate.max_calls = 2;
    s.call_rate.scopes = vec![Scope::Session, Scope::Agent, Scope::Global];
    let mut a = Anomalies::new(s, &none());
    let l = none();
    a.decided(&call("t.t", Outcome::Allow, 0, None, &l, 0));
    a.decided(&call("t.t", Outcome::Allow, 1, None, &l, 0));
    let trips = a.decided(&call("t.t", Outcome::Allow, 2, None, &l, 0));
    assert_eq!(trips.len(), 1);
    assert_eq!(trips[0].scope_key, "global");
    assert!(trips[0]
        .reason
        .starts_with("Warden as a whole made 3 calls"));
}

#[test]
fn denied_ratio_needs_its_minimum_of_calls() {
    let mut s = quiet();
    s.denied_ratio.min_calls = 10;
    s.denied_ratio.max_ratio = 0.5;
    let mut a = Anomalies::new(s, &none());
    let l = none();
    // Nine denials in a row: under the minimum, nothing trips.
    for i in 0..9 {
        assert!(a
            .decided(&call("t.t", Outcome::Deny, i, None, &l, 0))
            .is_empty());
    }
    let trips = a.decided(&call("t.t", Outcome::Deny, 9, None, &l, 0));
    assert_eq!(trips.len(), 1);
    assert_eq!(trips[0].detector, Detector::DeniedRatio);
    assert_eq!(
        trips[0].reason,
        "mission `m1` had 10 of its last 10 calls denied in 10 minutes (100 %); the limit is 50 % once 10 calls are made"
    );
}

#[test]
fn denied_ratio_at_the_limit_does_not_trip() {
    let mut s = quiet();
    s.denied_ratio.min_calls = 10;
    s.denied_ratio.max_ratio = 0.5;
    let mut a = Anomalies::new(s, &none());
    let l = none();
    for i in 0..100 {
        let o = if i % 2 == 1 {
            Outcome::Deny
        } else {
            Outcome::Allow
        };
        assert!(a.decided(&call("t.t", o, i, None, &l, 0)).is_empty());
    }
}

#[test]
fn distinct_sensitive_resources_are_counted_once_each() {
    let mut s = quiet();
    s.sensitive_resources.max_distinct = 3;
    let mut a = Anomalies::new(s, &labels(&["hr-restricted"]));
    let hr = labels(&["hr-restricted"]);
    let public = labels(&["public"]);
    let names = ["e1", "e2", "e3"];
    for (i, r) in names.iter().enumerate() {
        // Each read twice, and public resources in between: still three.
        for j in 0..2 {
            let t = (i * 10 + j) as i64;
            assert!(a
                .decided(&call("hr.get", Outcome::Allow, t, Some(r), &hr, 0))
                .is_empty());
        }
        assert!(a
            .decided(&call(
                "wiki.get",
                Outcome::Allow,
                100,
                Some("p"),
                &public,
                0
            ))
            .is_empty());
    }
    let trips = a.decided(&call("hr.get", Outcome::Allow, 200, Some("e4"), &hr, 0));
    assert_eq!(trips.len(), 1);
    assert_eq!(trips[0].detector, Detector::SensitiveResources);
    assert_eq!(
        trips[0].reason,
        "mission `m1` touched 4 distinct sensitive resources in 1 hour; the limit is 3"
    );
}

#[test]
fn records_returned_trip_with_the_numbers() {
    let mut s = quiet();
    s.returned.max_records = 500;
    let mut a = Anomalies::new(s, &none());
    let out = |n: i64| OutputSeen {
        who: WHO,
        records: 100,
        bytes: 1_000,
        records_budget: Some(10_000),
        now_ms: n * 1_000,
    };
    for i in 0..5 {
        assert!(a.returned(&out(i)).is_empty(), "page {i}");
    }
    let trips = a.returned(&out(5));
    assert_eq!(trips.len(), 1);
    assert_eq!(trips[0].detector, Detector::Records);
    assert_eq!(
        trips[0].reason,
        "mission `m1` returned 600 records in 10 minutes; the limit is 500"
    );
}

#[test]
fn records_against_the_missions_budget_and_bytes() {
    let mut s = quiet();
    s.returned.budget_fraction = 0.5;
    s.returned.max_bytes = 4_000;
    let mut a = Anomalies::new(s, &none());
    let out = |records: u64, bytes: u64| OutputSeen {
        who: WHO,
        records,
        bytes,
        records_budget: Some(1_000),
        now_ms: 5,
    };
    assert!(a.returned(&out(500, 4_000)).is_empty());
    let trips = a.returned(&out(1, 1));
    assert_eq!(trips.len(), 2);
    assert_eq!(
        trips[0].reason,
        "mission `m1` returned 501 records in 10 minutes, more than 50 % of its budget of 1,000 records"
    );
    assert_eq!(
        trips[1].reason,
        "mission `m1` returned 4,001 bytes in 10 minutes; the limit is 4,000"
    );
}

#[test]
fn exposure_attempts_count_only_holds_and_denials_that_expose() {
    let mut s = quiet();
    s.exposure.max_attempts = 2;
    let mut a = Anomalies::new(s, &none());
    let l = none();
    // Allowed calls and denials without exposure do not count.
    for i in 0..10 {
        assert!(a
            .decided(&call("forum.post", Outcome::Allow, i, None, &l, 3_000))
            .is_empty());
        assert!(a
            .decided(&call("forum.post", Outcome::Deny, i, None, &l, 0))
            .is_empty());
    }
    assert!(a
        .decided(&call("forum.post", Outcome::Ask, 20, None, &l, 2_999))
        .is_empty());
    assert!(a
        .decided(&call("forum.post", Outcome::Deny, 21, None, &l, 1))
        .is_empty());
    let trips = a.decided(&call("forum.post", Outcome::Ask, 22, None, &l, 5));
    assert_eq!(trips.len(), 1);
    assert_eq!(trips[0].detector, Detector::Exposure);
    assert!(trips[0].reason.contains("made 3 calls in 1 hour"));
}

#[test]
fn new_tools_count_only_after_learning() {
    let mut s = quiet();
    s.new_tools.learn_calls = 4;
    s.new_tools.max_new = 1;
    let mut a = Anomalies::new(s, &none());
    let l = none();
    // Learning: anything goes.
    for (i, t) in ["a.x", "a.y", "a.x", "a.z"].iter().enumerate() {
        assert!(a
            .decided(&call(t, Outcome::Allow, i as i64, None, &l, 0))
            .is_empty());
    }
    // Known tools and one new one: fine.
    for t in ["a.x", "a.y", "b.new", "a.z", "b.new"] {
        assert!(a
            .decided(&call(t, Outcome::Allow, 10, None, &l, 0))
            .is_empty());
    }
    let trips = a.decided(&call("c.other", Outcome::Allow, 11, None, &l, 0));
    assert_eq!(trips.len(), 1);
    assert_eq!(trips[0].scope_key, "agent:roster-bot");
    assert_eq!(
        trips[0].reason,
        "agent `roster-bot` used 2 tools in 1 hour that agent `roster-bot` did not use in its first 4 calls (the latest: `c.other`); the limit is 1"
    );
}

#[test]
fn reset_starts_the_count_again() {
    let mut s = quiet();
    s.call_rate.max_calls = 1;
    let mut a = Anomalies::new(s, &none());
    let l = none();
    a.decided(&call("t.t", Outcome::Allow, 0, None, &l, 0));
    assert_eq!(
        a.decided(&call("t.t", Outcome::Allow, 1, None, &l, 0))
            .len(),
        1
    );
    a.reset("mission:m1");
    assert!(a
        .decided(&call("t.t", Outcome::Allow, 2, None, &l, 0))
        .is_empty());
}

#[test]
fn disabled_detectors_never_trip() {
    let mut s = quiet();
    s.enabled = false;
    s.call_rate.max_calls = 0;
    let mut a = Anomalies::new(s, &none());
    let l = none();
    assert!(a
        .decided(&call("t.t", Outcome::Deny, 0, None, &l, 10))
        .is_empty());
    assert_eq!(a.tracked(), 0);
}

#[test]
fn keys_are_bounded_and_idle_ones_forgotten() {
    let mut s = quiet();
    s.max_keys = 8;
    s.idle_secs = 60;
    s.call_rate.scopes = vec![Scope::Session];
    let mut a = Anomalies::new(s, &none());
    let l = none();
    for i in 0..100 {
        let session = format!("s{i}");
        let who = Who {
            session: &session,
            ..WHO
        };
        let d = DecisionSeen {
            who,
            ..call("t.t", Outcome::Allow, i, None, &l, 0)
        };
        a.decided(&d);
        assert!(a.tracked() <= 8);
    }
    // Much later, the idle keys are gone.
    a.decided(&call("t.t", Outcome::Allow, 10_000_000, None, &l, 0));
    // The session and the mission that denied_ratio counts.
    assert_eq!(a.tracked(), 2);
}

#[test]
fn settings_problems_are_reported() {
    let mut s = BreakerSettings {
        resetters: vec!["security".into(), "nobody".into()],
        ..BreakerSettings::default()
    };
    s.denied_ratio.max_ratio = 1.5;
    s.call_rate.window_secs = 0;
    let p = s.problems(&|g| g == "security");
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(BreakerSettings::default().problems(&|_| false).is_empty());
}

#[test]
fn settings_read_from_toml_with_defaults_and_unknown_keys_refused() {
    let s: BreakerSettings = toml::from_str(
        "resetters = ['security']\n[returned]\nmax_records = 100\nscopes = ['mission', 'agent']\n",
    )
    .unwrap();
    assert_eq!(s.returned.max_records, 100);
    assert_eq!(s.returned.scopes, vec![Scope::Mission, Scope::Agent]);
    assert_eq!(s.call_rate, CallRate::default());
    assert!(toml::from_str::<BreakerSettings>("[returned]\nmax_recs = 1\n").is_err());
    assert!(toml::from_str::<BreakerSettings>("[call_rate]\nscopes = ['planet']\n").is_err());
}

#[test]
fn numbers_and_spans_read_well() {
    assert_eq!(thousands(0), "0");
    assert_eq!(thousands(999), "999");
    assert_eq!(thousands(1_000), "1,000");
    assert_eq!(thousands(1_234_567), "1,234,567");
    assert_eq!(span(600), "10 minutes");
    assert_eq!(span(3_600), "1 hour");
    assert_eq!(span(90), "90 seconds");
    assert_eq!(span(86_400 * 2), "2 days");
}

proptest! {
    /// Under its limit in every window, the call rate never trips, whatever the spacing.
    #[test]
    fn call_rate_under_the_limit_never_trips(gaps in proptest::collection::vec(0i64..20_000, 1..200)) {
        let mut s = quiet();
        s.call_rate.window_secs = 60;
        // Calls at least `min_gap` apart make at most 60 000 / min_gap + 1 in a window, and
        // one bucket (6 s) of older calls may count too.
        let min_gap = 1_000i64;
        s.call_rate.max_calls = (66_000 / min_gap + 1) as u64;
        let mut a = Anomalies::new(s, &none());
        let l = none();
        let mut t = 0i64;
        for g in gaps {
            t += g.max(min_gap);
            prop_assert!(a.decided(&call("t.t", Outcome::Allow, t, None, &l, 0)).is_empty());
        }
    }

    /// The records count never misses what was returned in the window: a total over the
    /// limit within one window always trips.
    #[test]
    fn records_over_the_limit_in_a_window_always_trip(pages in proptest::collection::vec(1u64..200, 1..50)) {
        let mut s = quiet();
        s.returned.max_records = 500;
        let mut a = Anomalies::new(s, &none());
        let mut total = 0u64;
        let mut tripped = false;
        for (i, n) in pages.iter().enumerate() {
            total += n;
            let trips = a.returned(&OutputSeen { who: WHO, records: *n, bytes: 0, records_budget: None, now_ms: i as i64 * 1_000 });
            tripped |= !trips.is_empty();
            if total > 500 {
                prop_assert!(tripped);
            } else {
                prop_assert!(!tripped);
            }
        }
    }
}
