use super::*;
use proptest::prelude::*;
use serde_json::json;

fn names(syntax: QuerySyntax, v: Value) -> Vec<String> {
    fields_of(syntax, &v)
        .unwrap_or_else(|e| vec![vec![format!("ERR {e}")]])
        .into_iter()
        .map(|r| r.join("."))
        .collect()
}

fn roster() -> FieldScope {
    FieldScope::new(
        Some(&["name".into(), "title".into(), "team".into(), "email".into()]),
        &[],
    )
}

fn no_salary() -> FieldScope {
    FieldScope::new(None, &["salary".into(), "ssn".into()])
}

fn spec(syntax: QuerySyntax) -> Vec<QuerySpec> {
    vec![QuerySpec {
        arg: "filter".into(),
        syntax,
    }]
}

fn passes(scope: &FieldScope, syntax: QuerySyntax, filter: Value) -> bool {
    scope
        .check(
            "hr.search_employees",
            &spec(syntax),
            &json!({ "filter": filter }),
        )
        .is_ok()
}

#[test]
fn sql_names_every_identifier() {
    use QuerySyntax::SqlWhere as S;
    assert_eq!(names(S, json!("department = 'eng'")), ["department"]);
    assert_eq!(
        names(S, json!("team = 'x' OR e.salary > 1")),
        ["team", "e.salary"]
    );
    assert_eq!(names(S, json!("\"salary\" > 1")), ["salary"]);
    assert_eq!(names(S, json!("`salary` > 1")), ["salary"]);
    assert_eq!(names(S, json!("LOWER(salary) LIKE '%1'")), ["salary"]);
    assert_eq!(names(S, json!("name = 'salary'")), ["name"]);
}

#[test]
fn sql_that_reaches_beyond_its_table_or_does_not_parse_is_an_error() {
    use QuerySyntax::SqlWhere as S;
    for bad in [
        "team IN (SELECT team FROM employees WHERE salary > 1)",
        "EXISTS (SELECT 1 FROM employees)",
        "team = 'x'; DROP TABLE employees",
        "team = 'x' UNION SELECT salary FROM employees",
        "team = ",
        "((((",
    ] {
        assert!(fields_of(S, &json!(bad)).is_err(), "{bad}");
    }
    let deep = format!("{}1{}", "(".repeat(500), ")".repeat(500));
    assert!(fields_of(S, &json!(deep)).is_err());
    assert_eq!(
        fields_of(S, &json!("a".repeat(MAX_QUERY_CHARS + 1))),
        Err(QueryError::TooLong)
    );
}

#[test]
fn json_names_keys_at_every_depth_and_dollar_paths() {
    use QuerySyntax::Json as J;
    assert_eq!(names(J, json!({"salary": {"$gt": 1}})), ["salary"]);
    assert_eq!(
        names(J, json!({"$or": [{"team": "x"}, {"comp.salary": 1}]})),
        ["team", "comp.salary"]
    );
    assert_eq!(
        names(J, json!({"comp": {"salary": 1}})),
        ["comp", "comp.salary"]
    );
    assert_eq!(
        names(J, json!({"$expr": {"$gt": ["$salary", 1]}})),
        ["salary"]
    );
    assert_eq!(names(J, json!("{\"salary\": 1}")), ["salary"]);
    assert!(fields_of(J, &json!({"$where": "this.salary > 1"})).is_err());
    assert!(fields_of(J, &json!("not json")).is_err());
    let mut deep = json!(1);
    for _ in 0..200 {
        deep = json!({ "$and": [deep] });
    }
    assert_eq!(fields_of(J, &deep), Err(QueryError::TooDeep));
}

#[test]
fn key_value_and_search_name_their_fields() {
    use QuerySyntax::{KeyValue as K, Search as Q};
    assert_eq!(names(K, json!("team=eng&title=lead")), ["team", "title"]);
    assert_eq!(names(K, json!("sal%61ry>=1")), ["salary"]);
    assert_eq!(names(K, json!("salary[gt]=1")), ["salary"]);
    assert_eq!(names(K, json!("salary%3E=1")), ["salary"]);
    assert_eq!(names(K, json!("salary%5Bgt%5D=1")), ["salary"]);
    assert!(fields_of(K, &json!("salary")).is_err());
    assert_eq!(names(Q, json!("bob team:eng")), ["team"]);
    assert_eq!(names(Q, json!("salary:>1")), ["salary"]);
    assert_eq!(names(Q, json!("-\"salary\":[1 TO *]")), ["salary"]);
    assert_eq!(names(Q, json!("salary : >1")), ["salary"]);
    assert_eq!(names(Q, json!("_exists_:salary")), ["salary"]);
    assert_eq!(names(Q, json!("(team:a OR salary:>1)")), ["team", "salary"]);
    assert!(names(Q, json!("\"salary:>1\" bob")).is_empty());
    assert!(names(Q, json!("salary\\:>1")).is_empty());
    assert!(fields_of(Q, &json!("team:\"open")).is_err());
}

#[test]
fn a_scope_refuses_fields_outside_it_and_passes_those_inside() {
    use QuerySyntax::*;
    for (syntax, bad) in [
        (SqlWhere, json!("salary > 200000")),
        (SqlWhere, json!("SALARY > 1")),
        (SqlWhere, json!("\"Salary\" > 1")),
        (SqlWhere, json!("e.salary > 1")),
        (SqlWhere, json!("team = 'x' OR salary > 1")),
        (SqlWhere, json!("NOT (salary < 1)")),
        (SqlWhere, json!("ｓａｌａｒｙ > 1")),
        (Json, json!({"salary": {"$gt": 1}})),
        (
            Json,
            json!({"$and": [{"team": "x"}, {"$or": [{"SSN": {"$exists": true}}]}]}),
        ),
        (KeyValue, json!("team=x&salary>100")),
        (Search, json!("salary:>1")),
        (Search, json!("bob OR ssn:1*")),
    ] {
        assert!(!passes(&roster(), syntax, bad.clone()), "roster {bad}");
        assert!(!passes(&no_salary(), syntax, bad.clone()), "deny {bad}");
    }
    for (syntax, good) in [
        (SqlWhere, json!("team = 'Payments'")),
        (SqlWhere, json!("e.team = 'x' AND title LIKE '%lead%'")),
        (Json, json!({"team": "Payments"})),
        (
            Json,
            json!({"$or": [{"team": "a"}, {"title": {"$regex": "lead"}}]}),
        ),
        (KeyValue, json!("team=Payments")),
        (Search, json!("bob team:Payments")),
        (Search, json!("salary")),
    ] {
        assert!(passes(&roster(), syntax, good.clone()), "roster {good}");
        assert!(passes(&no_salary(), syntax, good.clone()), "deny {good}");
    }
    // An open scope checks nothing; a scoped one refuses what it cannot parse.
    assert!(passes(&FieldScope::default(), SqlWhere, json!("((")));
    assert!(!passes(&roster(), SqlWhere, json!("((")));
    assert!(!passes(&roster(), SqlWhere, json!(5)));
}

proptest! {
    #[test]
    fn arbitrary_queries_never_panic(s in ".{0,200}") {
        for syntax in [QuerySyntax::SqlWhere, QuerySyntax::Json, QuerySyntax::KeyValue, QuerySyntax::Search] {
            let _ = fields_of(syntax, &json!(s.clone()));
        }
    }

    #[test]
    fn salary_anywhere_in_an_or_is_refused(
        pre in "[a-z]{1,8}", val in "[a-zA-Z0-9 ]{0,10}", upper in any::<bool>(), quote in any::<bool>()
    ) {
        prop_assume!(pre != "salary");
        let col = if upper { "SALARY" } else { "salary" };
        let col = if quote { format!("\"{col}\"") } else { col.to_string() };
        let q = format!("{pre} = '{val}' OR {col} > 1");
        prop_assert!(!passes(&no_salary(), QuerySyntax::SqlWhere, json!(q)));
    }
}
