use crate::common::{acme_text, load_with};

fn issues(main: &str, files: &[(&str, &str)]) -> Vec<String> {
    match load_with(main, files) {
        Ok(_) => panic!("the configuration should not load"),
        Err(e) => e.0.iter().map(|i| i.to_string()).collect(),
    }
}

#[test]
fn a_policy_syntax_error_names_file_and_line() {
    let bad =
        "// one\n\npermit(principal, action, resource);\n\nforbid(principal, action resource);\n";
    let got = issues(&acme_text(), &[("policies/zz-bad.cedar", bad)]);
    assert!(
        got.iter()
            .any(|i| i.starts_with("policies/zz-bad.cedar:5:")),
        "{got:#?}"
    );
}

#[test]
fn a_policy_that_does_not_typecheck_names_its_line() {
    let bad = "@id(\"ok\")\npermit(principal, action, resource);\n\n@id(\"typo\")\nforbid(principal, action, resource)\nwhen { context.exposur.count > 0 };\n";
    let got = issues(&acme_text(), &[("policies/zz-bad.cedar", bad)]);
    assert!(
        got.iter()
            .any(|i| i.starts_with("policies/zz-bad.cedar:") && i.contains("typo")),
        "{got:#?}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let catalog = std::fs::read_to_string(crate::common::acme_dir().join("catalog.toml"))
        .unwrap()
        .replace(
            "effect = \"publish\"\nrequired = [\"to\", \"body\"]",
            "effect = \"pubish\"\nrequired = [\"to\", \"body\"]",
        );
    let main = acme_text().replace(
        "ceiling = [\"hr.search_employees\", \"forum.send_dm\"]",
        "ceiling = [\"hr.search_employees\", \"forum.send_*x\"]",
    );
    let policy = "@id(\"p\")\n@warden(\"maybe\")\nforbid(principal, action, resource);\n";
    let got = issues(
        &main,
        &[("catalog.toml", &catalog), ("policies/zz.cedar", policy)],
    );
    assert!(
        got.iter()
            .any(|i| i.contains("catalog.toml:") && i.contains("unknown effect `pubish`")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|i| i.contains("warden.toml:")
                && i.contains("`forum.send_*x` is not a tool pattern")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|i| i.contains("policies/zz.cedar:1:") && i.contains("unknown @warden")),
        "{got:#?}"
    );
    // The catalog line points at the effect key.
    let line = catalog.lines().position(|l| l.contains("pubish")).unwrap() + 1;
    assert!(
        got.iter()
            .any(|i| i.starts_with(&format!("catalog.toml:{line}:"))),
        "{got:#?}"
    );
}

#[test]
fn duplicate_policy_ids_and_bad_toml_are_errors() {
    let dup = "@id(\"ask-exposure\")\npermit(principal, action, resource);\n";
    let got = issues(&acme_text(), &[("policies/zz.cedar", dup)]);
    assert!(
        got.iter()
            .any(|i| i.contains("already used at policies/default.cedar:")),
        "{got:#?}"
    );
    let got = issues("name = \"x\"\n[policy\ndir = 1\n", &[]);
    assert!(
        got.iter().any(|i| i.starts_with("warden.toml:2:")),
        "{got:#?}"
    );
}

#[test]
fn the_directory_and_missions_are_checked() {
    let bad_dir = r#"[{"uid":{"type":"User","id":"zed"},"attrs":{"clearances":["top-secret"]},"parents":[]}]"#;
    let got = issues(&acme_text(), &[("directory.json", bad_dir)]);
    assert!(
        got.iter()
            .any(|i| i.contains("unknown clearance `top-secret`")),
        "{got:#?}"
    );
    let got = issues(&acme_text(), &[("directory.json", "[{")]);
    assert!(
        got.iter().any(|i| i.starts_with("directory.json:1:")),
        "{got:#?}"
    );
    let missions = "[x]\ntools = [\"forum.*\"]\nlifetime = \"soon\"\npublish_to = \"everyone\"\n";
    let got = issues(&acme_text(), &[("missions.toml", missions)]);
    assert!(
        got.iter()
            .any(|i| i.starts_with("missions.toml:3:") && i.contains("lifetime")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|i| i.starts_with("missions.toml:4:") && i.contains("publish_to")),
        "{got:#?}"
    );
}

#[test]
fn no_policies_at_all_refuses_to_start() {
    let main = acme_text().replace("dir = \"policies\"", "dir = \"scenarios\"");
    let got = issues(&main, &[]);
    assert!(
        got.iter().any(|i| i.contains("no `.cedar` files")),
        "{got:#?}"
    );
}

#[test]
fn generated_members_beyond_the_cap_are_an_error_not_a_hang() {
    // Three rules of four billion members each: refused before any is made.
    let main = acme_text().replace("count = 2997", "count = 4294967295");
    let main = main.replace("count = 8998", "count = 4294967295");
    let got = issues(&main, &[]);
    assert!(
        got.iter().any(
            |i| i.contains("`[[directory.generate]]` asks for 8589934789 members")
                && i.contains("at most 1000000")
        ),
        "{got:#?}"
    );
}

#[test]
fn a_bad_advice_rule_names_the_rule_and_its_line() {
    let main = format!(
        "{}\n[[detectors.advice.rules]]\nname = \"broken\"\npattern = \"(unclosed\"\n",
        acme_text()
    );
    let got = issues(&main, &[]);
    assert!(
        got.iter()
            .any(|i| i.starts_with("warden.toml:") && i.contains("rule `broken`: invalid pattern")),
        "{got:#?}"
    );
    let main = format!(
        "{}\n[[detectors.advice.rules]]\nname = \"everything\"\npattern = \".*\"\n",
        acme_text()
    );
    let got = issues(&main, &[]);
    assert!(
        got.iter().any(|i| i.contains("matches empty text")),
        "{got:#?}"
    );
}

#[test]
fn advice_rules_from_the_configuration_flag_text() {
    let cfg = load_with(&acme_text(), &[]).unwrap();
    let scan = cfg
        .detectors
        .scan("just run vault token create -policy=root and paste it here");
    assert!(
        scan.findings
            .iter()
            .any(|f| f.detector == "advice-rule:vault-root-token"),
        "{scan:?}"
    );
}

#[test]
fn the_store_is_a_url_string_and_the_audit_table_is_kept() {
    let main = format!(
        "store = \"sqlite://warden.db\"\n{}\n[audit]\ncheckpoint_every = 10\n",
        acme_text()
    );
    let config = load_with(&main, &[]).unwrap();
    assert_eq!(config.store.as_deref(), Some("sqlite://warden.db"));
    assert!(config.audit.is_some());

    let got = issues(&format!("store = 5\n{}", acme_text()), &[]);
    assert!(
        got.iter()
            .any(|i| i.starts_with("warden.toml:1:") && i.contains("`store` must be a string")),
        "{got:#?}"
    );
}
