//! Record budgets checked before the call: a read that asks for more records than the mission
//! has left is refused before it runs.
//!
//! The catalog names the argument that says how many records a tool returns (`count_arg =
//! "limit"`, or a list of them: `["limit", "page_size"]`) and, optionally, how many it returns
//! when the argument is left out (`count_default = 20`). The records a call asks for are:
//!
//! - the largest count argument given, read as a whole number (a JSON number, or a string holding
//!   one: `"100000"`; a fraction is rounded up);
//! - with none given, `count_default`;
//! - **unbounded** when none is given and the catalog declares no default, or when a count is not
//!   a positive number Warden can read (`0`, `-1`, `"all"`, `1e400`, an object): many APIs read
//!   those as "no limit", so Warden does too.
//!
//! Under a mission with a `records` budget, a call whose asked count is over what is left
//! (budget minus records already returned) is refused, naming the budget, what is left and what
//! was asked. Records are still charged after the call, from what the output holds.

use serde::Deserialize;
use serde_json::Value;

/// How a tool's catalog entry says how many records a call asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountSpec {
    /// Arguments that bound the records returned (the largest given counts).
    pub args: Vec<String>,
    /// Records returned when no count argument is given (`None`: without bound).
    pub default: Option<u64>,
}

/// One argument name, or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum CountArgs {
    /// One argument.
    One(String),
    /// Several; the largest given counts.
    Many(Vec<String>),
}

impl CountArgs {
    pub(crate) fn into_vec(self) -> Vec<String> {
        match self {
            CountArgs::One(a) => vec![a],
            CountArgs::Many(v) => v,
        }
    }
}

/// How many records a call asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// At most this many, from the named argument (`None`: the catalog's default).
    AtMost(u64, Option<String>),
    /// Without bound, and why.
    Unbounded(String),
}

/// Read one count value: a positive whole number, rounded up; anything else is unbounded.
pub fn read_count(v: &Value) -> Option<u64> {
    let n = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    // f64 holds every u64 count a budget could compare with up to 2^53 exactly; larger ones are
    // unbounded for any budget anyway.
    if !n.is_finite() || !(1.0..=9.0e15).contains(&n) {
        return None;
    }
    Some(n.ceil() as u64)
}

/// The records a call asks for.
pub fn asked(spec: &CountSpec, args: &Value) -> Asked {
    let mut best: Option<(u64, &str)> = None;
    for a in &spec.args {
        let Some(v) = args.get(a).filter(|v| !v.is_null()) else {
            continue;
        };
        match read_count(v) {
            Some(n) => {
                if best.is_none_or(|(b, _)| n > b) {
                    best = Some((n, a));
                }
            }
            None => {
                return Asked::Unbounded(format!(
                    "`{a}` = {} is not a positive number of records, which the upstream may read as no limit",
                    crate::engine::excerpt(&v.to_string())
                ))
            }
        }
    }
    match (best, spec.default) {
        (Some((n, a)), _) => Asked::AtMost(n, Some(a.to_string())),
        (None, Some(d)) => Asked::AtMost(d, None),
        (None, None) => Asked::Unbounded(format!(
            "no {} is given and the tool returns any number without one",
            spec.args
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(" or ")
        )),
    }
}

/// Check a call's asked records against what the mission has left. The error is the reason.
pub fn check(
    tool: &str,
    spec: &CountSpec,
    args: &Value,
    budget: u64,
    used: u64,
    mission: &str,
) -> Result<(), String> {
    let left = budget.saturating_sub(used);
    match asked(spec, args) {
        Asked::AtMost(n, _) if n <= left => Ok(()),
        Asked::AtMost(n, arg) => Err(format!(
            "`{tool}` asks for up to {n} records ({}), but the mission `{mission}` has {left} of its budget of {budget} records left",
            match arg {
                Some(a) => format!("`{a}` = {n}"),
                None => format!("its default page when no {} is given", spec.args.join(" or ")),
            }
        )),
        Asked::Unbounded(why) => Err(format!(
            "`{tool}` asks for an unbounded number of records ({why}), but the mission `{mission}` has {left} of its budget of {budget} records left"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn spec(default: Option<u64>) -> CountSpec {
        CountSpec {
            args: vec!["limit".into(), "page_size".into()],
            default,
        }
    }

    #[test]
    fn counts_are_read_from_numbers_and_strings() {
        assert_eq!(read_count(&json!(5)), Some(5));
        assert_eq!(read_count(&json!("100000")), Some(100_000));
        assert_eq!(read_count(&json!(" 7 ")), Some(7));
        assert_eq!(read_count(&json!(2.5)), Some(3));
        assert_eq!(read_count(&json!("1e5")), Some(100_000));
        for bad in [
            json!(0),
            json!(-1),
            json!("-5"),
            json!("all"),
            json!(1e300),
            json!("NaN"),
            json!("inf"),
            json!([5]),
            json!({"n": 5}),
            json!(true),
            json!(""),
            json!(u64::MAX),
        ] {
            assert_eq!(read_count(&bad), None, "{bad}");
        }
    }

    #[test]
    fn a_call_over_what_is_left_is_refused_with_the_numbers() {
        let e = check(
            "hr.search_employees",
            &spec(Some(50)),
            &json!({"limit": 100000}),
            500,
            0,
            "m1",
        )
        .err()
        .unwrap_or_default();
        assert!(e.contains("100000"), "{e}");
        assert!(e.contains("500 of its budget of 500"), "{e}");
        assert!(e.contains("`limit`"), "{e}");
        // What was already read counts.
        assert!(check("t", &spec(Some(50)), &json!({"limit": 60}), 500, 450, "m").is_err());
        assert!(check("t", &spec(Some(50)), &json!({"limit": 50}), 500, 450, "m").is_ok());
    }

    #[test]
    fn the_largest_count_argument_counts() {
        let s = spec(Some(10));
        assert_eq!(
            asked(&s, &json!({"limit": 5, "page_size": 900})),
            Asked::AtMost(900, Some("page_size".into()))
        );
        assert!(matches!(
            asked(&s, &json!({"limit": 5, "page_size": -1})),
            Asked::Unbounded(_)
        ));
    }

    #[test]
    fn a_missing_count_uses_the_declared_default_or_is_unbounded() {
        assert_eq!(asked(&spec(Some(20)), &json!({})), Asked::AtMost(20, None));
        assert_eq!(
            asked(&spec(Some(20)), &json!({"limit": null})),
            Asked::AtMost(20, None)
        );
        assert!(matches!(
            asked(&spec(None), &json!({})),
            Asked::Unbounded(_)
        ));
        assert!(check("t", &spec(None), &json!({}), 500, 0, "m").is_err());
        assert!(check("t", &spec(Some(600)), &json!({}), 500, 0, "m").is_err());
        assert!(check("t", &spec(Some(20)), &json!({}), 500, 0, "m").is_ok());
    }

    proptest! {
        #[test]
        fn never_passes_more_than_is_left(
            n in proptest::num::i64::ANY,
            as_string in any::<bool>(),
            budget in 0u64..10_000,
            used in 0u64..20_000,
        ) {
            let v = if as_string { json!(n.to_string()) } else { json!(n) };
            let ok = check("t", &spec(None), &json!({"limit": v}), budget, used, "m").is_ok();
            let left = budget.saturating_sub(used) as i64;
            prop_assert_eq!(ok, n >= 1 && n <= left);
        }

        #[test]
        fn arbitrary_text_never_passes_over_budget(s in ".{0,40}") {
            if check("t", &spec(None), &json!({"limit": s.clone()}), 10, 0, "m").is_ok() {
                let n: f64 = s.trim().parse().unwrap_or(f64::NAN);
                prop_assert!(n.is_finite() && n.ceil() <= 10.0 && n.ceil() >= 1.0, "{s}");
            }
        }
    }
}
