//! `hr.search_employees`: search the HR directory, one page at a time.
//!
//! A page holds at most `limit` matching employees (50 by default). When more match, the
//! answer gives a `next_cursor` (in its structured content, and on its first line) to pass as
//! `cursor` for the next page; `offset` skips that many matching employees instead.

use rmcp::model::JsonObject;
use serde_json::{json, Value};

use crate::state::State;
use crate::tools::{list, required, Output, DEFAULT_EMPLOYEE_LIMIT, EMPLOYEE_FIELDS};

/// A positive or non-negative count given as a number or a numeric string.
fn count(args: &JsonObject, key: &str, min: u64) -> Result<Option<u64>, String> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        {
            Some(n) if n >= min => Ok(Some(n)),
            _ if min == 0 => Err(format!("`{key}` must be a non-negative integer")),
            _ => Err(format!("`{key}` must be a positive integer")),
        },
    }
}

/// Where the page starts: `cursor` (a previous page's `next_cursor`) or `offset`.
fn start(args: &JsonObject) -> Result<u64, String> {
    let offset = count(args, "offset", 0)?;
    let cursor = match args.get("cursor") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(
            s.trim()
                .parse::<u64>()
                .map_err(|_| format!("`cursor` `{s}` is not a cursor this server gave"))?,
        ),
        Some(_) => return Err("`cursor` must be a string".into()),
    };
    match (cursor, offset) {
        (Some(_), Some(_)) => Err("give `cursor` or `offset`, not both".into()),
        (c, o) => Ok(c.or(o).unwrap_or(0)),
    }
}

/// Search `hr.employees`.
pub(crate) fn search_employees(state: &mut State, args: &JsonObject) -> Result<Output, String> {
    let query = match args.get("query") {
        None | Some(Value::Null) => String::new(),
        Some(_) => required(args, "query")?,
    };
    let mut fields: Vec<&'static str> = Vec::new();
    for field in list(args, "fields")? {
        let field = field.to_ascii_lowercase();
        let known = EMPLOYEE_FIELDS
            .iter()
            .find(|f| **f == field)
            .ok_or_else(|| {
                format!(
                    "unknown field `{field}` (fields: {})",
                    EMPLOYEE_FIELDS.join(", ")
                )
            })?;
        if !fields.contains(known) {
            fields.push(known);
        }
    }
    let filter = match args.get("filter") {
        None | Some(Value::Null) => None,
        Some(_) => Some(crate::filter::Filter::parse(&required(args, "filter")?)?),
    };
    let limit = count(args, "limit", 1)?.unwrap_or(DEFAULT_EMPLOYEE_LIMIT);
    let skip = start(args)?;
    let needle = query.trim().to_ascii_lowercase();
    let all = needle.is_empty() || needle == "*";
    let mut rows = Vec::new();
    let mut lines = Vec::new();
    let mut matched = 0u64;
    let mut more = false;
    for e in &state.employees {
        let hit = all
            || [&e.name, &e.team, &e.title]
                .iter()
                .any(|v| v.to_ascii_lowercase().contains(&needle));
        if !hit {
            continue;
        }
        if let Some(f) = &filter {
            if !f.matches(e)? {
                continue;
            }
        }
        matched += 1;
        if matched <= skip {
            continue;
        }
        if rows.len() as u64 >= limit {
            more = true;
            break;
        }
        let mut row = serde_json::Map::new();
        let mut parts = Vec::new();
        for field in &fields {
            let value: Value = match *field {
                "name" => e.name.clone().into(),
                "title" => e.title.clone().into(),
                "team" => e.team.clone().into(),
                "email" => e.email.clone().into(),
                "phone" => e.phone.clone().into(),
                "salary" => e.salary.into(),
                "ssn" => e.ssn.clone().into(),
                _ => e.home_address.clone().into(),
            };
            let shown = match &value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            parts.push(format!("{field}: {shown}"));
            row.insert((*field).to_string(), value);
        }
        lines.push(parts.join(" | "));
        rows.push(Value::Object(row));
    }
    let next = more.then(|| (skip + rows.len() as u64).to_string());
    let paging = match (&next, skip) {
        (None, 0) => String::new(),
        (None, _) => format!("; from record {}, the last page", skip + 1),
        (Some(n), _) => format!("; from record {}; next cursor: {n}", skip + 1),
    };
    let mut text = format!(
        "{} employee{} match \"{query}\" (fields: {}{paging}):\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        fields.join(", ")
    );
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    Ok(Output::with(
        text,
        // `employees` first: a catalog that counts records as a JSON array counts the first
        // array of an object, and `fields` is one too.
        json!({
            "employees": rows,
            "query": query,
            "fields": fields,
            "count": rows.len(),
            "offset": skip,
            "next_cursor": next,
        }),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args(v: Value) -> JsonObject {
        match v {
            Value::Object(m) => m,
            _ => JsonObject::new(),
        }
    }

    #[test]
    fn pages_through_a_generated_directory_without_gaps_or_repeats() {
        let mut state = State::seeded();
        state.employees = crate::seed::hr::with_generated(5_000);
        assert_eq!(state.employees.len(), 5_000);
        let mut seen = std::collections::BTreeSet::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut a = json!({"query": "*", "fields": ["email"], "limit": 400});
            if let Some(c) = &cursor {
                a["cursor"] = json!(c);
            }
            let out = search_employees(&mut state, &args(a)).unwrap();
            let s = out.structured.unwrap();
            for e in s["employees"].as_array().unwrap() {
                assert!(seen.insert(e["email"].as_str().unwrap().to_string()));
            }
            pages += 1;
            match s["next_cursor"].as_str() {
                Some(c) => {
                    assert!(out.text.contains(&format!("next cursor: {c}")));
                    cursor = Some(c.to_string());
                }
                None => break,
            }
        }
        assert_eq!(seen.len(), 5_000);
        assert_eq!(pages, 13);
    }

    #[test]
    fn offset_and_cursor_agree_and_bad_ones_are_refused() {
        let mut state = State::seeded();
        let a = |v| search_employees(&mut State::seeded(), &args(v)).map(|o| o.structured);
        let by_offset = a(json!({"query": "*", "fields": "name", "limit": 5, "offset": 20}));
        let by_cursor = a(json!({"query": "*", "fields": "name", "limit": 5, "cursor": "20"}));
        assert_eq!(
            by_offset.unwrap().unwrap()["employees"],
            by_cursor.unwrap().unwrap()["employees"]
        );
        for bad in [
            json!({"query": "*", "fields": "name", "cursor": "x"}),
            json!({"query": "*", "fields": "name", "offset": -1}),
            json!({"query": "*", "fields": "name", "offset": 1, "cursor": "1"}),
        ] {
            assert!(search_employees(&mut state, &args(bad)).is_err());
        }
        // Without paging, the first line is as it always was.
        let out = search_employees(
            &mut state,
            &args(json!({"query": "Alice", "fields": "name"})),
        )
        .unwrap();
        assert!(out
            .text
            .starts_with("1 employee match \"Alice\" (fields: name):\n"));
    }
}
