//! Large policy sets are still validated strictly, every policy with its own errors and line
//! (validation runs once per policy shape; see `warden_core::validation`).

use crate::common::{acme_text, load_with};

fn issues(files: &[(&str, &str)]) -> Vec<String> {
    match load_with(&acme_text(), files) {
        Ok(_) => panic!("the configuration should not load"),
        Err(e) => e.0.iter().map(|i| i.to_string()).collect(),
    }
}

/// Policy `i` of a generated file: three lines from line `3 * i + 1`, seven shapes in all.
fn generated(n: usize, wrong: usize) -> String {
    let mut t = String::new();
    for i in 0..n {
        let attr = if i == wrong { "sesion" } else { "session" };
        t.push_str(&format!(
            "@id(\"p-{i}\")\npermit (principal == User::\"u{i}\", action in Action::\"read\", resource)\nwhen {{ context.{attr}.calls > {} }};\n",
            i % 7
        ));
    }
    t
}

#[test]
fn a_wrong_policy_among_10000_fails_with_its_line() {
    let wrong = 6_543;
    let text = generated(10_000, wrong);
    let got = issues(&[("policies/zz-many.cedar", &text)]);
    let at = format!("policies/zz-many.cedar:{}:", 3 * wrong + 3);
    // Cedar reports the typo once per action the policy applies to: all of them, and only them.
    assert!(
        !got.is_empty()
            && got
                .iter()
                .all(|i| i.starts_with(&at) && i.contains("`p-6543`")),
        "{got:#?}"
    );
}

#[test]
fn policies_of_one_shape_that_fail_each_report_their_own_error() {
    let text = "@id(\"a\")\nforbid (principal == User::\"alice\", action, resource)\nwhen { resource.nope };\n\n@id(\"b\")\nforbid (principal == User::\"bob\", action, resource)\nwhen { resource.nope };\n";
    let got = issues(&[("policies/zz-same.cedar", text)]);
    for (id, line) in [("a", 3), ("b", 7)] {
        assert!(
            got.iter().any(
                |i| i.starts_with(&format!("policies/zz-same.cedar:{line}:"))
                    && i.contains(&format!("policy `{id}`"))
            ),
            "{id}: {got:#?}"
        );
    }
}

#[test]
fn policies_that_differ_only_in_an_action_are_validated_apart() {
    let text = "@id(\"known\")\nforbid (principal, action == Action::\"forum.list_threads\", resource);\n@id(\"unknown\")\nforbid (principal, action == Action::\"forum.no_such_tool\", resource);\n";
    let got = issues(&[("policies/zz-actions.cedar", text)]);
    assert!(
        got.iter().any(|i| i.contains("policy `unknown`")),
        "{got:#?}"
    );
    assert!(
        !got.iter().any(|i| i.contains("policy `known`")),
        "{got:#?}"
    );
}
