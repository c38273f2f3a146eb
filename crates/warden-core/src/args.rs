//! Typed arguments: what the catalog says each argument of a tool is, the Cedar type that
//! follows, and the Cedar value a call's JSON argument becomes.
//!
//! A catalog entry types its arguments with `types = { amount = "long", tags = "set<string>",
//! opts = { depth = "long" } }`. A string names a type — `string`, `long`, `decimal`, `bool`,
//! or `set<…>` of one of those — and a table is a record of typed fields. Policies read the
//! typed arguments as `context.args.<name>`; arguments without a type are not in
//! `context.args` (the catalog still checks them as before).
//!
//! Each value is checked against its type (a value of another JSON type is refused: the call
//! is denied), then converted. A value Cedar cannot hold — a string over
//! [`MAX_STRING_BYTES`], a set over [`MAX_SET_ITEMS`] items, an integer outside the 64-bit
//! range, a decimal with more than four fractional digits or outside Cedar's range — is not
//! dropped: it is left out of `context.args` and summarised in `context.arg_summaries.<name>`
//! as `{ length, digest }` (the length in bytes of its JSON text and the SHA-256 of that
//! text). The engine denies a call whose summarised argument a policy reads, unless the
//! policies also read `context.arg_summaries` and so decide for themselves.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use cedar_policy_core::ast::{Literal, Name, PartialValue, Value as CValue};
use cedar_policy_core::extensions::Extensions;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use smol_str::SmolStr;

use crate::catalog::{ResolveError, ToolSpec};
use crate::policy::ContextUse;

/// Strings longer than this (in bytes) are summarised rather than put in `context.args`.
pub const MAX_STRING_BYTES: usize = 1024;
/// Sets with more items than this are summarised rather than put in `context.args`.
pub const MAX_SET_ITEMS: usize = 256;
/// How deep records may nest in a catalog's `types`.
pub const MAX_RECORD_DEPTH: usize = 4;

/// A scalar argument type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    /// A JSON string, a Cedar `String`.
    String,
    /// A JSON integer, a Cedar `Long`.
    Long,
    /// A JSON number, a Cedar `decimal` (four fractional digits).
    Decimal,
    /// A JSON boolean, a Cedar `Bool`.
    Bool,
}

impl Scalar {
    fn parse(s: &str) -> Option<Scalar> {
        match s {
            "string" => Some(Scalar::String),
            "long" => Some(Scalar::Long),
            "decimal" => Some(Scalar::Decimal),
            "bool" => Some(Scalar::Bool),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scalar::String => "string",
            Scalar::Long => "long",
            Scalar::Decimal => "decimal",
            Scalar::Bool => "bool",
        }
    }

    fn want(self) -> &'static str {
        match self {
            Scalar::String => "a string",
            Scalar::Long => "an integer",
            Scalar::Decimal => "a number",
            Scalar::Bool => "true or false",
        }
    }

    fn schema_json(self) -> Value {
        match self {
            Scalar::String => json!({ "type": "String" }),
            Scalar::Long => json!({ "type": "Long" }),
            Scalar::Decimal => json!({ "type": "Extension", "name": "decimal" }),
            Scalar::Bool => json!({ "type": "Boolean" }),
        }
    }

    fn schema_text(self) -> &'static str {
        match self {
            Scalar::String => "String",
            Scalar::Long => "Long",
            Scalar::Decimal => "decimal",
            Scalar::Bool => "Bool",
        }
    }
}

/// The declared type of an argument (or of a field of a record argument).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgType {
    /// One value.
    Scalar(Scalar),
    /// A JSON array of scalars, a Cedar set. For an argument the catalog declares a list
    /// (`lists`), one string of comma-separated items is a set too.
    Set(Scalar),
    /// A JSON object, a Cedar record of these fields (each optional; other keys are left out).
    Record(BTreeMap<String, ArgType>),
}

/// An argument type as written in a catalog: a type name or a table of fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawArgType {
    /// `"long"`, `"set<string>"` …
    Name(String),
    /// A record's fields.
    Record(BTreeMap<String, RawArgType>),
}

impl ArgType {
    /// Read a catalog's type; the error says what is accepted.
    pub(crate) fn parse(raw: &RawArgType) -> Result<ArgType, String> {
        Self::parse_at(raw, 0)
    }

    fn parse_at(raw: &RawArgType, depth: usize) -> Result<ArgType, String> {
        match raw {
            RawArgType::Name(s) => {
                let s = s.trim();
                if let Some(t) = Scalar::parse(s) {
                    return Ok(ArgType::Scalar(t));
                }
                let inner = s
                    .strip_prefix("set<")
                    .and_then(|x| x.strip_suffix('>'))
                    .map(str::trim);
                match inner.and_then(Scalar::parse) {
                    Some(t) => Ok(ArgType::Set(t)),
                    None => Err(format!(
                        "unknown argument type `{s}`; use string, long, decimal, bool, set<…> of one of those, or a table of fields for a record"
                    )),
                }
            }
            RawArgType::Record(fields) => {
                if depth >= MAX_RECORD_DEPTH {
                    return Err(format!(
                        "records nest at most {MAX_RECORD_DEPTH} deep in argument types"
                    ));
                }
                let mut out = BTreeMap::new();
                for (k, v) in fields {
                    out.insert(k.clone(), Self::parse_at(v, depth + 1)?);
                }
                Ok(ArgType::Record(out))
            }
        }
    }

    /// The type as a catalog writes it (records as `{ field = type, … }`).
    pub fn catalog_text(&self) -> String {
        match self {
            ArgType::Scalar(s) => format!("\"{}\"", s.name()),
            ArgType::Set(s) => format!("\"set<{}>\"", s.name()),
            ArgType::Record(fields) => {
                let inner: Vec<String> = fields
                    .iter()
                    .map(|(k, t)| format!("{} = {}", toml_key(k), t.catalog_text()))
                    .collect();
                format!("{{ {} }}", inner.join(", "))
            }
        }
    }

    /// The Cedar type in Cedar's JSON schema format.
    pub fn schema_json(&self) -> Value {
        match self {
            ArgType::Scalar(s) => s.schema_json(),
            ArgType::Set(s) => json!({ "type": "Set", "element": s.schema_json() }),
            ArgType::Record(fields) => record_json(fields.iter().map(|(k, t)| (k, t, false))),
        }
    }

    /// The Cedar type in Cedar schema text.
    pub fn schema_text(&self) -> String {
        match self {
            ArgType::Scalar(s) => s.schema_text().to_string(),
            ArgType::Set(s) => format!("Set<{}>", s.schema_text()),
            ArgType::Record(fields) => {
                record_text(fields.iter().map(|(k, t)| (k, t.schema_text(), false)))
            }
        }
    }
}

/// The type a JSON Schema (an MCP tool's `inputSchema` property) suggests: `string` → string,
/// `integer` → long, `number` → decimal, `boolean` → bool, an `array` of those → a set, an
/// `object` with `properties` → a record; `None` for anything else (left untyped).
pub fn from_json_schema(schema: &Value) -> Option<ArgType> {
    from_json_schema_at(schema, 0)
}

fn from_json_schema_at(schema: &Value, depth: usize) -> Option<ArgType> {
    let scalar = |s: &Value| -> Option<Scalar> {
        match json_type(s)? {
            "string" => Some(Scalar::String),
            "integer" => Some(Scalar::Long),
            "number" => Some(Scalar::Decimal),
            "boolean" => Some(Scalar::Bool),
            _ => None,
        }
    };
    match json_type(schema)? {
        "array" => schema.get("items").and_then(scalar).map(ArgType::Set),
        "object" if depth < MAX_RECORD_DEPTH => {
            let props = schema.get("properties")?.as_object()?;
            let fields: BTreeMap<String, ArgType> = props
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), from_json_schema_at(v, depth + 1)?)))
                .collect();
            (!fields.is_empty()).then_some(ArgType::Record(fields))
        }
        _ => scalar(schema).map(ArgType::Scalar),
    }
}

/// A JSON Schema's one `type` (`["string", "null"]` counts as `string`).
fn json_type(schema: &Value) -> Option<&str> {
    match schema.get("type")? {
        Value::String(t) => Some(t),
        Value::Array(ts) => {
            let mut it = ts.iter().filter_map(Value::as_str).filter(|t| *t != "null");
            let t = it.next()?;
            it.next().is_none().then_some(t)
        }
        _ => None,
    }
}

/// A TOML key: bare when it can be.
pub(crate) fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        toml::Value::String(k.to_string()).to_string()
    }
}

/// A Cedar JSON-schema record of `(name, type, required)` attributes.
pub(crate) fn record_json<'a>(
    attrs: impl IntoIterator<Item = (&'a String, &'a ArgType, bool)>,
) -> Value {
    let mut m = Map::new();
    for (k, t, required) in attrs {
        let mut ty = t.schema_json();
        if let Value::Object(o) = &mut ty {
            o.insert("required".into(), Value::Bool(required));
        }
        m.insert(k.clone(), ty);
    }
    json!({ "type": "Record", "attributes": m })
}

/// A Cedar schema-text record of `(name, type text, required)` attributes; names are quoted.
pub(crate) fn record_text<'a>(
    attrs: impl IntoIterator<Item = (&'a String, String, bool)>,
) -> String {
    let inner: Vec<String> = attrs
        .into_iter()
        .map(|(k, t, required)| {
            let q = serde_json::Value::String(k.clone()).to_string();
            format!("{q}{}: {t}", if required { "" } else { "?" })
        })
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// Read a catalog entry's `types`: the types, and a message for each one that is wrong.
pub(crate) fn parse_types(
    raw: &BTreeMap<String, RawArgType>,
) -> (BTreeMap<String, ArgType>, Vec<String>) {
    let mut types = BTreeMap::new();
    let mut problems = Vec::new();
    for (arg, r) in raw {
        match ArgType::parse(r) {
            Ok(ty) => {
                types.insert(arg.clone(), ty);
            }
            Err(e) => problems.push(format!("argument `{arg}`: {e}")),
        }
    }
    (types, problems)
}

impl ToolSpec {
    /// The typed arguments (`types`): what policies read as `context.args`.
    pub fn arg_types(&self) -> &BTreeMap<String, ArgType> {
        &self.types
    }

    /// True when argument `arg` is required.
    pub fn requires(&self, arg: &str) -> bool {
        self.required.iter().any(|r| r == arg)
    }

    fn mismatch(&self, m: Mismatch) -> ResolveError {
        ResolveError::ArgType {
            tool: self.name.clone(),
            at: crate::engine::excerpt(&m.at),
            want: m.want,
        }
    }

    /// Check a call's arguments against their declared types.
    pub(crate) fn check_arg_types(&self, args: &Map<String, Value>) -> Result<(), ResolveError> {
        check(&self.types, args, |a| self.lists.contains(a)).map_err(|m| self.mismatch(m))
    }

    /// The call's typed arguments as `context.args` and `context.arg_summaries`.
    pub fn typed_args(&self, args: &Value) -> Result<ArgValues, ResolveError> {
        let empty = Map::new();
        let map = args.as_object().unwrap_or(&empty);
        values(&self.types, map, |a| self.lists.contains(a)).map_err(|m| self.mismatch(m))
    }
}

/// A value of the wrong JSON type for its declared type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Where in the argument (`amount`, `opts.depth`, `tags[2]`).
    pub at: String,
    /// What it must be.
    pub want: &'static str,
}

/// A value Cedar cannot hold, summarised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The argument.
    pub arg: String,
    /// Length in bytes of the value's JSON text.
    pub length: usize,
    /// `sha256:` and the hex SHA-256 of that text.
    pub digest: String,
    /// Why it is summarised.
    pub why: String,
}

/// A call's typed arguments as Cedar values: `context.args` and `context.arg_summaries`.
#[derive(Debug, Clone)]
pub struct ArgValues {
    /// The `args` record.
    pub args: CValue,
    /// The `arg_summaries` record.
    pub summaries: CValue,
    /// The arguments summarised, in name order.
    pub summarised: Vec<Summary>,
}

enum Conv {
    Value(CValue),
    Unrepresentable(String),
}

/// Check a call's arguments against their declared types (a value of `null` counts as absent).
pub fn check(
    types: &BTreeMap<String, ArgType>,
    args: &Map<String, Value>,
    is_list: impl Fn(&str) -> bool,
) -> Result<(), Mismatch> {
    for (name, ty) in types {
        if let Some(v) = args.get(name).filter(|v| !v.is_null()) {
            convert(ty, v, name, is_list(name), false)?;
        }
    }
    Ok(())
}

/// Build `context.args` and `context.arg_summaries` from a call's arguments.
pub fn values(
    types: &BTreeMap<String, ArgType>,
    args: &Map<String, Value>,
    is_list: impl Fn(&str) -> bool,
) -> Result<ArgValues, Mismatch> {
    let mut out = Vec::new();
    let mut sums = Vec::new();
    let mut summarised = Vec::new();
    for (name, ty) in types {
        let Some(v) = args.get(name).filter(|v| !v.is_null()) else {
            continue;
        };
        match convert(ty, v, name, is_list(name), true)? {
            Conv::Value(c) => out.push((SmolStr::from(name.as_str()), c)),
            Conv::Unrepresentable(why) => {
                let (length, digest) = summary_of(v);
                sums.push((
                    SmolStr::from(name.as_str()),
                    CValue::record(
                        [
                            ("length", long(i64::try_from(length).unwrap_or(i64::MAX))),
                            ("digest", CValue::from(Literal::from(digest.as_str()))),
                        ],
                        None,
                    ),
                ));
                summarised.push(Summary {
                    arg: name.clone(),
                    length,
                    digest,
                    why,
                });
            }
        }
    }
    Ok(ArgValues {
        args: CValue::record(out, None),
        summaries: CValue::record(sums, None),
        summarised,
    })
}

/// Why a call is denied when policies read an argument that had to be summarised: `None` when
/// no policy reads a summarised argument, or when the policies read `context.arg_summaries`
/// and so decide for themselves.
pub fn refuse_summarised(spec: &ToolSpec, v: &ArgValues, used: &ContextUse) -> Option<String> {
    if v.summarised.is_empty() || used.wants("arg_summaries") {
        return None;
    }
    let s = v
        .summarised
        .iter()
        .find(|s| used.wants_sub("args", &s.arg))?;
    Some(format!(
        "argument `{}` of `{}` cannot be given to policies ({}); policies read it, so the call is denied (its summary: length {}, digest {}); a policy that reads `context.arg_summaries` can decide such calls instead",
        s.arg, spec.name, s.why, s.length, s.digest
    ))
}

/// The length in bytes and the `sha256:` digest of a value's JSON text, streamed (the text is
/// never held whole).
fn summary_of(v: &Value) -> (usize, String) {
    struct Hashing(Sha256, usize);
    impl std::io::Write for Hashing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            self.1 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut h = Hashing(Sha256::new(), 0);
    // Writing JSON to this writer cannot fail: it accepts every byte.
    let _ = serde_json::to_writer(&mut h, v);
    (h.1, format!("sha256:{}", hex(&h.0.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn long(n: i64) -> CValue {
    CValue::from(Literal::from(n))
}

/// A placeholder for values checked but not built.
fn unit() -> Conv {
    Conv::Value(CValue::from(Literal::from(false)))
}

/// Check `v` against `ty` and, when `build`, convert it.
fn convert(ty: &ArgType, v: &Value, at: &str, list: bool, build: bool) -> Result<Conv, Mismatch> {
    match ty {
        ArgType::Scalar(s) => scalar(*s, v, at, build),
        ArgType::Set(s) => {
            let items: Vec<std::borrow::Cow<'_, Value>> = match v {
                Value::Array(a) => a.iter().map(std::borrow::Cow::Borrowed).collect(),
                // A list argument may be one string of comma-separated items.
                Value::String(_) if list && *s == Scalar::String => {
                    crate::catalog::arg_values(v, true)
                        .into_iter()
                        .map(|x| std::borrow::Cow::Owned(Value::String(x)))
                        .collect()
                }
                _ => {
                    return Err(Mismatch {
                        at: at.to_string(),
                        want: "an array",
                    })
                }
            };
            let mut vals = Vec::new();
            let mut unrepresentable = None;
            if items.len() > MAX_SET_ITEMS {
                unrepresentable = Some(format!(
                    "{} items, over the {MAX_SET_ITEMS} a set may hold",
                    items.len()
                ));
            }
            for (i, x) in items.iter().enumerate() {
                match scalar(
                    *s,
                    x,
                    &format!("{at}[{i}]"),
                    build && unrepresentable.is_none(),
                )? {
                    Conv::Value(c) => vals.push(c),
                    Conv::Unrepresentable(why) => {
                        unrepresentable.get_or_insert(why);
                    }
                }
            }
            Ok(match unrepresentable {
                Some(why) => Conv::Unrepresentable(why),
                None if build => Conv::Value(CValue::set(vals, None)),
                None => unit(),
            })
        }
        ArgType::Record(fields) => {
            let Value::Object(m) = v else {
                return Err(Mismatch {
                    at: at.to_string(),
                    want: "an object",
                });
            };
            let mut out = Vec::new();
            let mut unrepresentable = None;
            for (k, t) in fields {
                let Some(x) = m.get(k).filter(|x| !x.is_null()) else {
                    continue;
                };
                let sub = format!("{at}.{k}");
                match convert(t, x, &sub, false, build && unrepresentable.is_none())? {
                    Conv::Value(c) => out.push((SmolStr::from(k.as_str()), c)),
                    Conv::Unrepresentable(why) => {
                        unrepresentable.get_or_insert(format!("`{sub}`: {why}"));
                    }
                }
            }
            Ok(match unrepresentable {
                Some(why) => Conv::Unrepresentable(why),
                None if build => Conv::Value(CValue::record(out, None)),
                None => unit(),
            })
        }
    }
}

fn scalar(s: Scalar, v: &Value, at: &str, build: bool) -> Result<Conv, Mismatch> {
    let mismatch = || Mismatch {
        at: at.to_string(),
        want: s.want(),
    };
    match (s, v) {
        (Scalar::String, Value::String(x)) => Ok(if x.len() > MAX_STRING_BYTES {
            Conv::Unrepresentable(format!(
                "{} bytes, over the {MAX_STRING_BYTES} a policy is given",
                x.len()
            ))
        } else if build {
            Conv::Value(CValue::from(Literal::from(x.as_str())))
        } else {
            unit()
        }),
        (Scalar::Bool, Value::Bool(b)) => Ok(Conv::Value(CValue::from(Literal::from(*b)))),
        (Scalar::Long, Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                return Ok(Conv::Value(long(i)));
            }
            if n.is_u64() {
                return Ok(Conv::Unrepresentable(format!(
                    "{n} is outside the 64-bit range"
                )));
            }
            match n.as_f64() {
                Some(f) if f.fract() == 0.0 => {
                    if f.abs() < 9_007_199_254_740_992.0 {
                        Ok(Conv::Value(long(f as i64)))
                    } else {
                        Ok(Conv::Unrepresentable(format!(
                            "{n} is too large to be read exactly as an integer"
                        )))
                    }
                }
                _ => Err(mismatch()),
            }
        }
        (Scalar::Decimal, Value::Number(n)) => {
            let text = if let Some(i) = n.as_i64() {
                format!("{i}.0")
            } else if let Some(u) = n.as_u64() {
                format!("{u}.0")
            } else {
                match n.as_f64() {
                    // Rust prints the shortest text that reads back as the same number, without
                    // an exponent.
                    Some(f) if f.fract() == 0.0 => format!("{f}.0"),
                    Some(f) => format!("{f}"),
                    None => return Err(mismatch()),
                }
            };
            Ok(match decimal(&text) {
                Some(c) => Conv::Value(c),
                None => Conv::Unrepresentable(format!(
                    "{n} is not a Cedar decimal (at most four fractional digits, magnitude under 922337203685477)"
                )),
            })
        }
        _ => Err(mismatch()),
    }
}

/// Cedar's `decimal(text)`, or `None` when `text` is not one.
fn decimal(text: &str) -> Option<CValue> {
    static FUNC: OnceLock<Option<Name>> = OnceLock::new();
    let name = FUNC
        .get_or_init(|| Name::parse_unqualified_name("decimal").ok())
        .as_ref()?;
    let f = Extensions::all_available().func(name).ok()?;
    match f.call(&[CValue::from(Literal::from(text))]).ok()? {
        PartialValue::Value(v) => Some(v),
        PartialValue::Residual(_) => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ty(s: &str) -> Result<ArgType, String> {
        ArgType::parse(&RawArgType::Name(s.into()))
    }

    #[test]
    fn type_names_are_read_and_written_back() {
        assert_eq!(ty("long"), Ok(ArgType::Scalar(Scalar::Long)));
        assert_eq!(ty(" set< decimal > "), Ok(ArgType::Set(Scalar::Decimal)));
        assert!(ty("set<set<string>>")
            .unwrap_err()
            .contains("unknown argument type"));
        assert!(ty("integer").is_err());
        let raw: RawArgType = toml::from_str::<BTreeMap<String, RawArgType>>(
            "t = { a = \"bool\", \"b c\" = { d = \"set<long>\" } }",
        )
        .unwrap()
        .remove("t")
        .unwrap();
        let t = ArgType::parse(&raw).unwrap();
        assert_eq!(
            t.catalog_text(),
            "{ a = \"bool\", \"b c\" = { d = \"set<long>\" } }"
        );
        assert_eq!(
            t.schema_text(),
            "{\"a\"?: Bool, \"b c\"?: {\"d\"?: Set<Long>}}"
        );
    }

    #[test]
    fn records_nest_at_most_four_deep() {
        let mut raw = RawArgType::Name("long".into());
        for _ in 0..=MAX_RECORD_DEPTH {
            raw = RawArgType::Record([("x".to_string(), raw)].into_iter().collect());
        }
        assert!(ArgType::parse(&raw).unwrap_err().contains("nest at most"));
    }

    fn one(t: ArgType, v: Value) -> Result<ArgValues, Mismatch> {
        let types = [("a".to_string(), t)].into_iter().collect();
        let args = [("a".to_string(), v)].into_iter().collect();
        values(&types, &args, |_| false)
    }

    #[test]
    fn decimals_keep_four_fractional_digits_and_no_more() {
        let d = ArgType::Scalar(Scalar::Decimal);
        for ok in [
            json!(1),
            json!(-2.5),
            json!(0.0001),
            json!(922337203685477_i64),
        ] {
            let v = one(d.clone(), ok.clone()).unwrap();
            assert!(v.summarised.is_empty(), "{ok}");
        }
        for summarised in [json!(0.00001), json!(1e20), json!(u64::MAX)] {
            let v = one(d.clone(), summarised.clone()).unwrap();
            assert_eq!(v.summarised.len(), 1, "{summarised}");
        }
    }

    #[test]
    fn a_summary_is_the_length_and_digest_of_the_json_text() {
        let v = one(ArgType::Scalar(Scalar::String), json!("x".repeat(2000))).unwrap();
        let s = &v.summarised[0];
        assert_eq!(s.length, 2002);
        assert!(s.digest.starts_with("sha256:") && s.digest.len() == 7 + 64);
        assert!(s.why.contains("2000 bytes"), "{}", s.why);
        assert!(
            one(ArgType::Scalar(Scalar::String), json!("x".repeat(1024)))
                .unwrap()
                .summarised
                .is_empty()
        );
    }

    #[test]
    fn the_streamed_summary_is_that_of_the_json_text() {
        let v = json!({"a": ["x\"y", 1.5, null], "b": "é"});
        let text = v.to_string();
        let want = format!("sha256:{}", hex(&Sha256::digest(text.as_bytes())));
        assert_eq!(summary_of(&v), (text.len(), want));
    }

    #[test]
    fn a_list_argument_may_be_one_comma_separated_string() {
        let types = [("to".to_string(), ArgType::Set(Scalar::String))]
            .into_iter()
            .collect();
        let args = [("to".to_string(), json!("a@x, b@x"))]
            .into_iter()
            .collect();
        assert!(values(&types, &args, |_| true).is_ok());
        let err = values(&types, &args, |_| false).unwrap_err();
        assert_eq!((err.at.as_str(), err.want), ("to", "an array"));
    }

    #[test]
    fn json_schema_types_become_argument_types() {
        let t = |v: Value| from_json_schema(&v);
        assert_eq!(
            t(json!({"type": "integer"})),
            Some(ArgType::Scalar(Scalar::Long))
        );
        assert_eq!(
            t(json!({"type": "array", "items": {"type": "boolean"}})),
            Some(ArgType::Set(Scalar::Bool))
        );
        assert_eq!(t(json!({"type": ["number", "string"]})), None);
        assert_eq!(t(json!({"type": "object"})), None);
        assert_eq!(t(json!({})), None);
    }
}
