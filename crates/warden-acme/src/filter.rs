//! The `filter` of `hr.search_employees`: an SQL boolean expression over an employee's fields,
//! as after `WHERE` (`team = 'Payments' AND title LIKE '%Engineer%'`), parsed by `sqlparser`.
//! It supports comparisons, `AND`/`OR`/`NOT`, `LIKE`/`ILIKE`, `IN (…)`, `BETWEEN` and
//! `IS [NOT] NULL`; anything else is an error, as a strict upstream would report it.

use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value as SqlValue};

use crate::state::Employee;

/// A parsed filter.
pub(crate) struct Filter(Expr);

/// A value while evaluating.
#[derive(Debug, Clone, PartialEq)]
enum V {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

impl Filter {
    /// Parse a filter; the error is the upstream's message.
    pub(crate) fn parse(text: &str) -> Result<Filter, String> {
        let dialect = sqlparser::dialect::GenericDialect {};
        let mut p = sqlparser::parser::Parser::new(&dialect)
            .with_recursion_limit(48)
            .try_with_sql(text)
            .map_err(|e| format!("invalid filter: {e}"))?;
        let expr = p.parse_expr().map_err(|e| format!("invalid filter: {e}"))?;
        if p.peek_token().token != sqlparser::tokenizer::Token::EOF {
            return Err("invalid filter: text after the expression".into());
        }
        Ok(Filter(expr))
    }

    /// Whether an employee matches.
    pub(crate) fn matches(&self, e: &Employee) -> Result<bool, String> {
        Ok(eval(&self.0, e)? == V::Bool(true))
    }
}

fn field(name: &str, e: &Employee) -> Result<V, String> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "name" => V::Str(e.name.clone()),
        "title" => V::Str(e.title.clone()),
        "team" => V::Str(e.team.clone()),
        "email" => V::Str(e.email.clone()),
        "phone" => V::Str(e.phone.clone()),
        "salary" => V::Num(e.salary as f64),
        "ssn" => V::Str(e.ssn.clone()),
        "home_address" => V::Str(e.home_address.clone()),
        other => return Err(format!("unknown field `{other}` in filter")),
    })
}

fn like(s: &str, pat: &str, fold: bool) -> bool {
    let (s, pat): (Vec<char>, Vec<char>) = if fold {
        (
            s.to_lowercase().chars().collect(),
            pat.to_lowercase().chars().collect(),
        )
    } else {
        (s.chars().collect(), pat.chars().collect())
    };
    // Iterative wildcard match: `%` any run, `_` one character.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while i < s.len() {
        if j < pat.len() && (pat[j] == '_' || pat[j] == s[i]) {
            i += 1;
            j += 1;
        } else if j < pat.len() && pat[j] == '%' {
            star = Some(j);
            mark = i;
            j += 1;
        } else if let Some(st) = star {
            j = st + 1;
            mark += 1;
            i = mark;
        } else {
            return false;
        }
    }
    pat[j..].iter().all(|c| *c == '%')
}

fn cmp(a: &V, b: &V) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (V::Num(x), V::Num(y)) => x.partial_cmp(y),
        (V::Str(x), V::Str(y)) => Some(x.cmp(y)),
        (V::Num(x), V::Str(y)) => y.trim().parse::<f64>().ok().and_then(|y| x.partial_cmp(&y)),
        (V::Str(x), V::Num(y)) => x.trim().parse::<f64>().ok().and_then(|x| x.partial_cmp(y)),
        (V::Bool(x), V::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn truth(v: &V) -> Option<bool> {
    match v {
        V::Bool(b) => Some(*b),
        _ => None,
    }
}

fn eval(x: &Expr, e: &Employee) -> Result<V, String> {
    use std::cmp::Ordering::*;
    Ok(match x {
        Expr::Identifier(i) => field(&i.value, e)?,
        Expr::CompoundIdentifier(is) => match is.last() {
            Some(i) => field(&i.value, e)?,
            None => V::Null,
        },
        Expr::Nested(inner) => eval(inner, e)?,
        Expr::Value(v) => match &v.value {
            SqlValue::Number(n, _) => V::Num(n.parse().map_err(|_| format!("bad number {n}"))?),
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => V::Str(s.clone()),
            SqlValue::Boolean(b) => V::Bool(*b),
            SqlValue::Null => V::Null,
            other => return Err(format!("unsupported value `{other}` in filter")),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => match truth(&eval(expr, e)?) {
            Some(b) => V::Bool(!b),
            None => V::Null,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match eval(expr, e)? {
            V::Num(n) => V::Num(-n),
            _ => V::Null,
        },
        Expr::BinaryOp { left, op, right } => {
            let (l, r) = (eval(left, e)?, eval(right, e)?);
            match op {
                BinaryOperator::And => match (truth(&l), truth(&r)) {
                    (Some(false), _) | (_, Some(false)) => V::Bool(false),
                    (Some(true), Some(true)) => V::Bool(true),
                    _ => V::Null,
                },
                BinaryOperator::Or => match (truth(&l), truth(&r)) {
                    (Some(true), _) | (_, Some(true)) => V::Bool(true),
                    (Some(false), Some(false)) => V::Bool(false),
                    _ => V::Null,
                },
                op => {
                    let Some(o) = cmp(&l, &r) else {
                        return Ok(V::Null);
                    };
                    V::Bool(match op {
                        BinaryOperator::Eq => o == Equal,
                        BinaryOperator::NotEq => o != Equal,
                        BinaryOperator::Lt => o == Less,
                        BinaryOperator::LtEq => o != Greater,
                        BinaryOperator::Gt => o == Greater,
                        BinaryOperator::GtEq => o != Less,
                        other => return Err(format!("unsupported operator `{other}` in filter")),
                    })
                }
            }
        }
        Expr::Like {
            negated,
            expr,
            pattern,
            ..
        }
        | Expr::ILike {
            negated,
            expr,
            pattern,
            ..
        } => {
            let fold = matches!(x, Expr::ILike { .. });
            match (eval(expr, e)?, eval(pattern, e)?) {
                (V::Str(s), V::Str(p)) => V::Bool(like(&s, &p, fold) != *negated),
                (V::Num(n), V::Str(p)) => V::Bool(like(&n.to_string(), &p, fold) != *negated),
                _ => V::Null,
            }
        }
        Expr::InList {
            expr,
            list,
            negated,
        } => {
            let v = eval(expr, e)?;
            let mut hit = false;
            for item in list {
                if cmp(&v, &eval(item, e)?) == Some(Equal) {
                    hit = true;
                }
            }
            V::Bool(hit != *negated)
        }
        Expr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let v = eval(expr, e)?;
            let (lo, hi) = (eval(low, e)?, eval(high, e)?);
            match (cmp(&v, &lo), cmp(&v, &hi)) {
                (Some(a), Some(b)) => V::Bool((a != Less && b != Greater) != *negated),
                _ => V::Null,
            }
        }
        Expr::IsNull(inner) => V::Bool(eval(inner, e)? == V::Null),
        Expr::IsNotNull(inner) => V::Bool(eval(inner, e)? != V::Null),
        other => return Err(format!("unsupported filter expression `{other}`")),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn who(filter: &str) -> Vec<String> {
        let f = Filter::parse(filter).unwrap();
        crate::seed::hr::seed()
            .iter()
            .filter(|e| f.matches(e).unwrap())
            .map(|e| e.user.clone())
            .collect()
    }

    #[test]
    fn filters_select_the_seeded_people() {
        assert_eq!(who("team = 'Payments' AND salary > 200000"), ["frank"]);
        assert_eq!(
            who("name IN ('Bob Martinez', 'Alice Chen')"),
            ["alice", "bob"]
        );
        assert_eq!(who("title LIKE '%Chief%'"), ["harriet.lane"]);
        assert_eq!(
            who("e.team = 'Security' AND NOT title ILIKE '%senior%'"),
            ["omar.haddad"]
        );
        assert_eq!(who("salary BETWEEN 390000 AND 400000"), ["harriet.lane"]);
        assert!(who("team = 'Nobody'").is_empty());
    }

    #[test]
    fn unknown_fields_and_unparseable_filters_are_errors() {
        assert!(Filter::parse("team = ").is_err());
        assert!(Filter::parse("team = 'x'; DROP TABLE t").is_err());
        let f = Filter::parse("bonus > 1").unwrap();
        let e = &crate::seed::hr::seed()[0];
        assert!(f.matches(e).is_err());
    }
}
