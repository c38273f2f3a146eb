//! Query arguments: the fields a filter or search reads, checked before the call.
//!
//! A tool's catalog entry can say that an argument is a query in one of four syntaxes
//! (`query = { arg = "filter", syntax = "sql-where" }`):
//!
//! - `sql-where`: an SQL boolean expression, as after `WHERE` (`team = 'eng' AND title LIKE
//!   '%lead%'`), parsed by `sqlparser` with its generic dialect. Double-quoted and back-quoted
//!   names are identifiers; `e.salary` names `salary` (of `e`). Subqueries are refused: they read
//!   beyond the fields of the one table the tool searches.
//! - `json`: a MongoDB-style filter document (`{"team": "eng", "salary": {"$gt": 1}}`), as a JSON
//!   object or a string holding one. Every key that is not an operator (`$…`) is a field, at any
//!   depth; a string value `"$salary"` names a field too (aggregation expressions); operators
//!   that run code (`$where`, `$function`, `$accumulator`) are refused.
//! - `key-value`: `field=value` or `field:value` pairs separated by `&`, `;`, `,` or new lines
//!   (form-encoded keys are decoded); `salary>=1` and `salary[gt]=1` name `salary`.
//! - `search`: a search box (Lucene, GitHub, Gmail style): bare words search the tool's own
//!   default fields; `field:value` terms name a field; quoted phrases are words;
//!   `_exists_:salary` names `salary`.
//!
//! A mission template says which fields its queries may read (`fields`, an allow-list) or may
//! not (`deny_fields`). Names are compared after NFKC and lower-casing. A reference is allowed
//! when its last component is allowed and none of its components is denied. A query that does
//! not parse in its declared syntax, or is longer than [`MAX_QUERY_CHARS`], is refused when the
//! mission scopes fields: what Warden cannot read, it does not pass.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use serde::Deserialize;
use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

/// The longest query, in characters, Warden parses; a longer one is refused under a field scope.
pub const MAX_QUERY_CHARS: usize = 8192;
/// The deepest nesting of a query Warden follows (JSON levels, SQL expression depth).
pub const MAX_QUERY_DEPTH: usize = 48;
/// The most field references collected from one query.
const MAX_REFS: usize = 512;

/// The syntax of a query argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuerySyntax {
    /// An SQL boolean expression (the part after `WHERE`).
    SqlWhere,
    /// A MongoDB-style JSON filter document.
    Json,
    /// `field=value` pairs.
    KeyValue,
    /// A search box: words and `field:value` terms.
    Search,
}

impl QuerySyntax {
    /// The catalog name.
    pub fn as_str(self) -> &'static str {
        match self {
            QuerySyntax::SqlWhere => "sql-where",
            QuerySyntax::Json => "json",
            QuerySyntax::KeyValue => "key-value",
            QuerySyntax::Search => "search",
        }
    }
}

/// A query argument as written in the catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQuery {
    arg: String,
    syntax: String,
}

impl RawQuery {
    /// The query argument, or what is wrong with it.
    pub(crate) fn check(self) -> Result<QuerySpec, String> {
        let syntax = match self.syntax.as_str() {
            "sql-where" => QuerySyntax::SqlWhere,
            "json" => QuerySyntax::Json,
            "key-value" => QuerySyntax::KeyValue,
            "search" => QuerySyntax::Search,
            o => {
                return Err(format!(
                    "query syntax must be sql-where, json, key-value or search, not `{o}`"
                ))
            }
        };
        Ok(QuerySpec {
            arg: self.arg,
            syntax,
        })
    }
}

/// A query argument of a tool, as the catalog declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuerySpec {
    /// The argument that holds the query.
    pub arg: String,
    /// Its syntax.
    pub syntax: QuerySyntax,
}

/// Why a query's fields could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The query is longer than Warden parses.
    #[error("it is longer than {MAX_QUERY_CHARS} characters")]
    TooLong,
    /// The query nests deeper than Warden follows.
    #[error("it nests deeper than {MAX_QUERY_DEPTH} levels")]
    TooDeep,
    /// The query names more fields than Warden collects.
    #[error("it names more than {MAX_REFS} fields")]
    TooMany,
    /// The query does not parse in its declared syntax.
    #[error("it is not a valid {syntax} query: {why}")]
    Syntax {
        /// The declared syntax.
        syntax: &'static str,
        /// What the parser said (bounded).
        why: String,
    },
    /// The query reads beyond its own fields (a subquery, code).
    #[error("it {0}")]
    Reaches(String),
}

/// One field a query reads: its components, outermost first (`e.salary` → `["e", "salary"]`).
pub type FieldRef = Vec<String>;

/// Normalise a field name for comparison: NFKC, lower case, surrounding space removed.
pub fn normalise_field(name: &str) -> String {
    name.trim().nfkc().collect::<String>().to_lowercase()
}

/// The fields a query reads.
pub fn fields_of(syntax: QuerySyntax, value: &Value) -> Result<Vec<FieldRef>, QueryError> {
    match (syntax, value) {
        (QuerySyntax::Json, Value::Object(_) | Value::Array(_)) => {
            let mut out = Vec::new();
            json_fields(value, &mut Vec::new(), 0, &mut out)?;
            Ok(out)
        }
        (QuerySyntax::Json, Value::String(s)) => {
            guard_len(s)?;
            let v: Value = serde_json::from_str(s).map_err(|e| QueryError::Syntax {
                syntax: syntax.as_str(),
                why: bounded(&e.to_string()),
            })?;
            if !matches!(v, Value::Object(_) | Value::Array(_)) {
                return Err(QueryError::Syntax {
                    syntax: syntax.as_str(),
                    why: "a filter must be a JSON object".into(),
                });
            }
            fields_of(syntax, &v)
        }
        (_, Value::Null) => Ok(Vec::new()),
        (_, Value::String(s)) => {
            guard_len(s)?;
            match syntax {
                QuerySyntax::SqlWhere => sql_fields(s),
                QuerySyntax::KeyValue => key_value_fields(s),
                QuerySyntax::Search => search_fields(s),
                QuerySyntax::Json => Ok(Vec::new()),
            }
        }
        (_, other) => Err(QueryError::Syntax {
            syntax: syntax.as_str(),
            why: format!("expected a string, got {}", json_kind(other)),
        }),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn guard_len(s: &str) -> Result<(), QueryError> {
    if s.chars().nth(MAX_QUERY_CHARS).is_some() {
        Err(QueryError::TooLong)
    } else {
        Ok(())
    }
}

fn bounded(s: &str) -> String {
    let mut out: String = s.chars().take(120).collect();
    if s.chars().nth(120).is_some() {
        out.push('…');
    }
    out
}

fn push_ref(out: &mut Vec<FieldRef>, r: FieldRef) -> Result<(), QueryError> {
    if out.len() >= MAX_REFS {
        return Err(QueryError::TooMany);
    }
    out.push(r);
    Ok(())
}

/// MongoDB operators that run code: what they read cannot be known from the document.
const CODE_OPERATORS: &[&str] = &["$where", "$function", "$accumulator"];

fn json_fields(
    v: &Value,
    path: &mut Vec<String>,
    depth: usize,
    out: &mut Vec<FieldRef>,
) -> Result<(), QueryError> {
    if depth > MAX_QUERY_DEPTH {
        return Err(QueryError::TooDeep);
    }
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if let Some(op) = k.strip_prefix('$') {
                    let op = format!("${}", normalise_field(op));
                    if CODE_OPERATORS.contains(&op.as_str()) {
                        return Err(QueryError::Reaches(format!(
                            "runs code (`{}`), which could read any field",
                            bounded(k)
                        )));
                    }
                    json_fields(x, path, depth + 1, out)?;
                } else {
                    let parts: Vec<String> = k.split('.').map(str::to_string).collect();
                    let n = parts.len();
                    path.extend(parts);
                    push_ref(out, path.clone())?;
                    json_fields(x, path, depth + 1, out)?;
                    path.truncate(path.len() - n);
                }
            }
            Ok(())
        }
        Value::Array(a) => a
            .iter()
            .try_for_each(|x| json_fields(x, path, depth + 1, out)),
        // `"$salary"` is a field path in an aggregation expression (`$expr`, `$gt: ["$a", 1]`).
        Value::String(s) => match s.strip_prefix('$') {
            Some(f)
                if f.chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_') =>
            {
                push_ref(out, f.split('.').map(str::to_string).collect())
            }
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

struct SqlRefs {
    refs: Vec<FieldRef>,
    problem: Option<QueryError>,
}

impl sqlparser::ast::Visitor for SqlRefs {
    type Break = ();

    fn pre_visit_query(&mut self, _q: &sqlparser::ast::Query) -> ControlFlow<()> {
        self.problem = Some(QueryError::Reaches(
            "holds a subquery, which reads beyond the fields of the table searched".into(),
        ));
        ControlFlow::Break(())
    }

    fn pre_visit_relation(&mut self, r: &sqlparser::ast::ObjectName) -> ControlFlow<()> {
        self.problem = Some(QueryError::Reaches(format!(
            "names the table `{}`",
            bounded(&r.to_string())
        )));
        ControlFlow::Break(())
    }

    fn pre_visit_expr(&mut self, e: &sqlparser::ast::Expr) -> ControlFlow<()> {
        use sqlparser::ast::Expr;
        let r = match e {
            Expr::Identifier(i) => Some(vec![i.value.clone()]),
            Expr::CompoundIdentifier(is) => Some(is.iter().map(|i| i.value.clone()).collect()),
            Expr::Wildcard(_) | Expr::QualifiedWildcard(..) => {
                self.problem = Some(QueryError::Reaches("reads every field (`*`)".into()));
                return ControlFlow::Break(());
            }
            _ => None,
        };
        if let Some(r) = r {
            if let Err(e) = push_ref(&mut self.refs, r) {
                self.problem = Some(e);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }
}

fn sql_fields(s: &str) -> Result<Vec<FieldRef>, QueryError> {
    use sqlparser::ast::Visit;
    use sqlparser::tokenizer::Token;
    let syntax = QuerySyntax::SqlWhere.as_str();
    let err = |why: String| QueryError::Syntax {
        syntax,
        why: bounded(&why),
    };
    let dialect = sqlparser::dialect::GenericDialect {};
    let mut parser = sqlparser::parser::Parser::new(&dialect)
        .with_recursion_limit(MAX_QUERY_DEPTH)
        .try_with_sql(s)
        .map_err(|e| err(e.to_string()))?;
    let expr = parser.parse_expr().map_err(|e| match e {
        sqlparser::parser::ParserError::RecursionLimitExceeded => QueryError::TooDeep,
        e => err(e.to_string()),
    })?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(err(format!(
            "unexpected `{}` after the expression",
            next.token
        )));
    }
    let mut v = SqlRefs {
        refs: Vec::new(),
        problem: None,
    };
    let _ = expr.visit(&mut v);
    match v.problem {
        Some(p) => Err(p),
        None => Ok(v.refs),
    }
}

/// Characters that end a key in `key-value` syntax (`=`, `:`, comparisons, `[` of `a[gt]`).
fn ends_key(c: char) -> bool {
    matches!(c, '=' | ':' | '<' | '>' | '!' | '~' | '[')
}

fn key_value_fields(s: &str) -> Result<Vec<FieldRef>, QueryError> {
    let mut out = Vec::new();
    for pair in s.split(['&', ';', ',', '\n']) {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let Some(at) = pair.find(ends_key) else {
            return Err(QueryError::Syntax {
                syntax: QuerySyntax::KeyValue.as_str(),
                why: format!("`{}` is not `field=value`", bounded(pair)),
            });
        };
        let raw = pair[..at].replace('+', " ");
        // Decoded, the key ends where an operator begins again (`salary%3E=1` is `salary>=1`).
        let decoded = percent_encoding::percent_decode_str(&raw).decode_utf8_lossy();
        let key = decoded
            .split(ends_key)
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        if key.is_empty() {
            return Err(QueryError::Syntax {
                syntax: QuerySyntax::KeyValue.as_str(),
                why: format!("`{}` has no field", bounded(pair)),
            });
        }
        push_ref(&mut out, key.split('.').map(str::to_string).collect())?;
    }
    Ok(out)
}

/// A search term: the field it names (before an unquoted, unescaped `:`), and its value.
struct Term {
    field: Option<String>,
    value: String,
}

/// Split a search string into terms: whitespace and parentheses separate terms outside quotes;
/// a backslash escapes the next character.
fn search_terms(s: &str) -> Result<Vec<Term>, QueryError> {
    let mut terms = Vec::new();
    let mut cur = String::new();
    let mut field: Option<String> = None;
    let mut quoted = false;
    let mut chars = s.chars();
    let flush = |terms: &mut Vec<Term>, cur: &mut String, field: &mut Option<String>| {
        if !cur.is_empty() || field.is_some() {
            terms.push(Term {
                field: field.take(),
                value: std::mem::take(cur),
            });
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '"' => quoted = !quoted,
            c if !quoted && (c.is_whitespace() || c == '(' || c == ')') => {
                flush(&mut terms, &mut cur, &mut field)
            }
            ':' if !quoted && field.is_none() => {
                // `salary : >1` is `salary:>1` to a search parser that skips spaces.
                if cur.is_empty() && terms.last().is_some_and(|t: &Term| t.field.is_none()) {
                    field = terms.pop().map(|t| t.value);
                } else {
                    field = Some(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
        if terms.len() > MAX_REFS * 4 {
            return Err(QueryError::TooMany);
        }
    }
    if quoted {
        return Err(QueryError::Syntax {
            syntax: QuerySyntax::Search.as_str(),
            why: "a quote is not closed".into(),
        });
    }
    flush(&mut terms, &mut cur, &mut field);
    Ok(terms)
}

/// Search fields whose value names a field (`_exists_:salary`, `has:salary`).
const FIELD_VALUED: &[&str] = &["_exists_", "_missing_", "exists", "missing", "has"];

fn search_fields(s: &str) -> Result<Vec<FieldRef>, QueryError> {
    let mut out = Vec::new();
    for t in search_terms(s)? {
        let Some(field) = t.field else { continue };
        let field = field.trim_start_matches(['-', '+', '!', '~']).trim();
        if field.is_empty() {
            continue;
        }
        if FIELD_VALUED.contains(&normalise_field(field).as_str()) {
            let v = t.value.trim_start_matches(['-', '+', '!', '~']).trim();
            if !v.is_empty() {
                push_ref(&mut out, v.split('.').map(str::to_string).collect())?;
            }
            continue;
        }
        push_ref(&mut out, field.split('.').map(str::to_string).collect())?;
    }
    Ok(out)
}

/// Which fields a mission's queries may read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldScope {
    /// Fields its queries may read (normalised); `None`: any not denied.
    pub allow: Option<BTreeSet<String>>,
    /// Fields its queries may not read (normalised).
    pub deny: BTreeSet<String>,
}

impl FieldScope {
    /// A scope from a template's `fields` and `deny_fields`.
    pub fn new(allow: Option<&[String]>, deny: &[String]) -> FieldScope {
        FieldScope {
            allow: allow.map(|a| a.iter().map(|f| normalise_field(f)).collect()),
            deny: deny.iter().map(|f| normalise_field(f)).collect(),
        }
    }

    /// True when the scope limits nothing.
    pub fn is_open(&self) -> bool {
        self.allow.is_none() && self.deny.is_empty()
    }

    /// Whether a reference is inside the scope.
    pub fn permits(&self, r: &[String]) -> bool {
        let parts: Vec<String> = r.iter().map(|p| normalise_field(p)).collect();
        if parts.iter().any(|p| self.deny.contains(p)) {
            return false;
        }
        match (&self.allow, parts.last()) {
            (None, _) => true,
            (Some(a), Some(last)) => a.contains(last),
            (Some(_), None) => false,
        }
    }

    /// Check every query argument of a call. The error is the reason to refuse it.
    pub fn check(&self, tool: &str, queries: &[QuerySpec], args: &Value) -> Result<(), String> {
        if self.is_open() {
            return Ok(());
        }
        for q in queries {
            let Some(v) = args.get(&q.arg) else { continue };
            let refs = fields_of(q.syntax, v).map_err(|e| {
                format!(
                    "the query `{}` of `{tool}` cannot be checked against the mission's fields: {e}",
                    q.arg
                )
            })?;
            let outside: BTreeSet<String> = refs
                .iter()
                .filter(|r| !self.permits(r))
                .map(|r| bounded(&r.join(".")))
                .collect();
            if !outside.is_empty() {
                let allowed = match &self.allow {
                    Some(a) => format!(
                        "it may read {}",
                        a.iter()
                            .map(|f| format!("`{f}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    None => format!(
                        "it may not read {}",
                        self.deny
                            .iter()
                            .map(|f| format!("`{f}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                return Err(format!(
                    "the query `{}` of `{tool}` reads {} outside the mission's fields ({allowed})",
                    q.arg,
                    outside
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "query_tests.rs"]
mod tests;
