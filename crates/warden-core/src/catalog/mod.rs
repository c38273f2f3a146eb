//! The tool catalog: for each upstream tool, what it does and how to read its arguments.
//!
//! A call to a tool the catalog does not know is denied. For a known tool the catalog says its
//! [`Effect`], how to find the resource and the audience in its arguments, which labels the data
//! it touches carries, whether its output is trusted, and whether it acts under a person's name.

use std::collections::{BTreeMap, BTreeSet};

use globset::{GlobBuilder, GlobMatcher};
use serde::Deserialize;
use serde_json::Value;

use crate::args::{ArgType, RawArgType};
use crate::directory::{Audience, Directory};
pub use crate::entity::RESOURCE_TYPES;
use crate::entity::{CHANNEL_LABEL_PREFIX, PUBLIC};
use crate::error::{locate_toml, Issues};
use crate::model::Effect;

mod fields;
mod labels;
mod urls;

pub(crate) use fields::push_strings;
pub use fields::{take_fields, take_fields_unless, FieldPath, FieldStep};

pub(crate) use urls::has_scheme;
pub use urls::{find_urls, parse_url, url_host, url_payload_text, url_payload_tokens, MAX_URLS};

/// The integrity label carried by content that people outside the principal could have written.
pub const UNTRUSTED: &str = "untrusted";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    #[serde(default)]
    servers: BTreeMap<String, RawServer>,
    #[serde(default)]
    tools: BTreeMap<String, RawTool>,
}

/// What the catalog says about an upstream server as a whole.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    /// The server's store does not tell names apart by case (`A.txt` is `a.txt`).
    #[serde(default)]
    case_insensitive: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTool {
    effect: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    required: Vec<String>,
    #[serde(default)]
    optional: Vec<String>,
    #[serde(default)]
    lists: Vec<String>,
    #[serde(default)]
    types: BTreeMap<String, RawArgType>,
    resource: RawResource,
    #[serde(default)]
    audience: Option<OneOrMany<RawAudience>>,
    #[serde(default)]
    labels: Vec<RawLabelRule>,
    #[serde(default)]
    default_labels: Vec<String>,
    #[serde(default)]
    output: Option<String>,
    #[serde(default)]
    untrusted_fields: Vec<String>,
    /// Whose writing in `untrusted_fields` is trusted (see [`Authors`]).
    #[serde(default)]
    authors: Option<RawAuthors>,
    /// The field of each output record naming whom it is about (see `crate::own`).
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    acts_as: Option<String>,
    #[serde(default)]
    directs: Vec<String>,
    #[serde(default)]
    records: Option<String>,
    /// Arguments that bound how many records a call returns (see `crate::budget`).
    #[serde(default)]
    count_arg: Option<crate::budget::CountArgs>,
    /// Records returned when no count argument is given.
    #[serde(default)]
    count_default: Option<u64>,
    /// Query arguments and their syntax (see `crate::query`).
    #[serde(default)]
    query: Option<OneOrMany<crate::query::RawQuery>>,
    /// The private version of this call an approver can choose instead (see [`Private`]).
    #[serde(default)]
    private: Option<Private>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResource {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    arg: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
}

/// One table, or an array of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudience {
    kind: String,
    #[serde(default)]
    arg: Option<String>,
    #[serde(default)]
    group: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLabelRule {
    arg: String,
    #[serde(default)]
    equals: Vec<String>,
    #[serde(default)]
    glob: Vec<String>,
    #[serde(default)]
    contains_any: Vec<String>,
    #[serde(default)]
    channel_readers: bool,
    #[serde(default)]
    add: Vec<String>,
}

/// How a tool's output is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Integrity {
    /// Written only by the organisation's systems.
    Trusted,
    /// Anyone outside the principal could have written it.
    Untrusted,
}

/// How to count the records a read returns (for record budgets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordCount {
    /// Do not count.
    None,
    /// One record per non-empty line of text output.
    Lines,
    /// Length of a JSON array (or of the first array field of a JSON object).
    JsonArray,
}

/// Where the audience of a call is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudienceRule {
    /// The readers of the channel named by an argument.
    Channel(String),
    /// The one user named by an argument.
    User(String),
    /// Email recipients named by an argument (a string or a list).
    Email(String),
    /// A fixed group.
    FixedGroup(String),
    /// The host of the URL named by an argument: outside the organisation unless it is in one
    /// of its domains. Data in the URL leaves with the request.
    Url(String),
    /// The group named by an argument.
    GroupArg(String),
}

impl AudienceRule {
    /// The argument the audience is read from, if any.
    pub fn arg(&self) -> Option<&str> {
        match self {
            AudienceRule::Channel(x)
            | AudienceRule::User(x)
            | AudienceRule::Email(x)
            | AudienceRule::Url(x)
            | AudienceRule::GroupArg(x) => Some(x),
            AudienceRule::FixedGroup(_) => None,
        }
    }
}

#[derive(Debug, Clone)]
enum Match {
    Equals(Vec<String>),
    Glob(Vec<GlobMatcher>),
    ContainsAny(Vec<String>),
    Any,
}

#[derive(Debug, Clone)]
struct LabelRule {
    arg: String,
    matcher: Match,
    channel_readers: bool,
    add: Vec<String>,
}

/// What the catalog knows about one tool.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    /// `server.tool`.
    pub name: String,
    /// The upstream server name.
    pub server: String,
    /// The tool name on the upstream server.
    pub tool: String,
    /// What the tool does.
    pub effect: Effect,
    /// A human description.
    pub description: Option<String>,
    /// Arguments that must be present.
    pub required: Vec<String>,
    resource_type: String,
    resource_arg: Option<String>,
    resource_id: Option<String>,
    resource_prefix: String,
    /// Where the audience is found, for calls that reach people: every rule adds its readers
    /// (`to`, `cc` and `bcc` of one message, say).
    pub audience: Vec<AudienceRule>,
    labels: Vec<LabelRule>,
    default_labels: Vec<String>,
    /// Integrity of the tool's output.
    pub output: Integrity,
    /// The fields of an otherwise trusted JSON output that anyone could have written
    /// (`untrusted_fields`; see [`FieldPath`]).
    pub untrusted_fields: Vec<FieldPath>,
    /// The records whose `untrusted_fields` are trusted after all, by who wrote them
    /// (`authors`).
    pub authors: Option<Authors>,
    /// The field of each output record that names the person the record is about (a user id
    /// or an address the directory knows): a read whose records all name one person brings in
    /// that person's own data (`subject`; see [`crate::own`]).
    pub subject: Option<String>,
    /// The argument that names the person the call acts as.
    pub acts_as: Option<String>,
    /// Arguments that direct the action (recipients, URLs, paths …).
    pub directs: Vec<String>,
    /// How to count records in the output.
    pub records: RecordCount,
    /// How many records a call asks for, checked against the mission's budget before it runs.
    pub count: Option<crate::budget::CountSpec>,
    /// Query arguments, checked against the mission's fields before the call runs.
    pub queries: Vec<crate::query::QuerySpec>,
    /// The private version of the call, offered to approvers when it is held.
    pub private: Option<Private>,
    /// Every argument the tool takes: `required`, `optional`, and those its rules read.
    declared: BTreeSet<String>,
    /// Arguments that are lists: an array, or one string of comma-separated items.
    pub(crate) lists: BTreeSet<String>,
    /// Whether the server's store tells names apart by case.
    fold: crate::canon::Fold,
    /// Declared argument types: the arguments policies read as `context.args`.
    pub(crate) types: BTreeMap<String, ArgType>,
}

/// A call resolved through the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The resource's Cedar entity type.
    pub resource_type: String,
    /// The resource's id.
    pub resource_id: String,
    /// Labels of the data the call touches.
    pub labels: BTreeSet<String>,
    /// Who the call reaches, for calls with an audience.
    pub audience: Option<Audience>,
    /// The person the call acts as, if any.
    pub acts_as: Option<String>,
    /// `(argument, value)` pairs that direct the action.
    pub directing: Vec<(String, String)>,
}

/// Why a call could not be resolved. Every variant denies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The catalog does not know the tool.
    #[error("unknown tool `{0}`: the catalog does not describe it, so it is denied")]
    UnknownTool(String),
    /// Arguments are not a JSON object.
    #[error("the arguments of `{0}` must be a JSON object")]
    NotAnObject(String),
    /// A required argument is missing.
    #[error("`{tool}` needs the argument `{arg}`")]
    Missing {
        /// The tool.
        tool: String,
        /// The argument.
        arg: String,
    },
    /// An argument has the wrong type.
    #[error("argument `{arg}` of `{tool}` must be {want}")]
    BadType {
        /// The tool.
        tool: String,
        /// The argument.
        arg: String,
        /// What it must be.
        want: &'static str,
    },
    /// Arguments the catalog entry does not declare.
    #[error("`{tool}` was given {args}, which its catalog entry does not declare (it takes {declared}): an argument Warden does not know could change who reads or who speaks")]
    Undeclared {
        /// The tool.
        tool: String,
        /// The undeclared arguments, quoted (bounded excerpts).
        args: String,
        /// What it takes.
        declared: String,
    },
    /// An argument's value is not of its declared type.
    #[error("argument `{at}` of `{tool}` must be {want} (its declared type)")]
    ArgType {
        /// The tool.
        tool: String,
        /// Where in the arguments.
        at: String,
        /// What it must be.
        want: &'static str,
    },
    /// The audience names something the directory does not know.
    #[error("`{tool}` would reach {what}, which the directory does not know")]
    UnknownAudience {
        /// The tool.
        tool: String,
        /// The unknown channel, user or group.
        what: String,
    },
}

/// The tool catalog.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tools: BTreeMap<String, ToolSpec>,
}

/// `authors = { field = "sender", group = "staff" }` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthors {
    field: String,
    group: String,
}

/// Whose writing is trusted in the `untrusted_fields` of a record: a record whose `field` (a
/// string member of the object holding the untrusted field) names a directory user in `group`
/// was written by that member, and its fields are read as trusted. A record with no such
/// field, or naming anyone else, stays untrusted. For outputs whose service records who wrote
/// each item (a chat's sender), and groups whose members' words the deployer trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authors {
    /// The member of each record naming its writer (a user id or an address).
    pub field: String,
    /// The directory group whose members' writing is trusted.
    pub group: String,
}

impl Catalog {
    /// Parse a catalog file. Problems go to `issues`; tools with problems are left out.
    pub fn parse(
        file: &str,
        text: &str,
        known_labels: &BTreeSet<String>,
        issues: &mut Issues,
    ) -> Catalog {
        let raw: RawCatalog = match toml::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                let line = e.span().map(|s| crate::error::line_of(text, s.start));
                issues.push(file, line, e.message().to_string());
                return Catalog::default();
            }
        };
        let mut tools = BTreeMap::new();
        for (name, t) in raw.tools {
            let fold = match name
                .split_once('.')
                .and_then(|(srv, _)| raw.servers.get(srv))
            {
                Some(RawServer {
                    case_insensitive: true,
                }) => crate::canon::Fold::Case,
                _ => crate::canon::Fold::None,
            };
            let before = issues.0.len();
            let mut err = |key: Option<&str>, msg: String| {
                issues.push(
                    file,
                    locate_toml(text, &["tools", &name], key),
                    format!("tool `{name}`: {msg}"),
                );
            };
            let Some((server, tool)) = name.split_once('.') else {
                err(None, "name must be `server.tool`".into());
                continue;
            };
            let effect = Effect::parse(&t.effect);
            if effect.is_none() {
                err(
                    Some("effect"),
                    format!(
                        "unknown effect `{}`; use one of read, write, publish, delete, execute, egress, admin",
                        t.effect
                    ),
                );
            }
            if !RESOURCE_TYPES.contains(&t.resource.ty.as_str()) {
                err(
                    Some("resource"),
                    format!(
                        "unknown resource type `{}`; use one of {}",
                        t.resource.ty,
                        RESOURCE_TYPES.join(", ")
                    ),
                );
            }
            if t.resource.arg.is_none() == t.resource.id.is_none() {
                err(
                    Some("resource"),
                    "resource needs exactly one of `arg` or `id`".into(),
                );
            }
            let mut audience = Vec::new();
            for a in t.audience.map(OneOrMany::into_vec).unwrap_or_default() {
                let r = match (a.kind.as_str(), a.arg, a.group) {
                    ("channel", Some(x), None) => Some(AudienceRule::Channel(x)),
                    ("user", Some(x), None) => Some(AudienceRule::User(x)),
                    ("email", Some(x), None) => Some(AudienceRule::Email(x)),
                    ("group", None, Some(g)) => Some(AudienceRule::FixedGroup(g)),
                    ("group", Some(x), None) => Some(AudienceRule::GroupArg(x)),
                    ("url", Some(x), None) => Some(AudienceRule::Url(x)),
                    _ => None,
                };
                match r {
                    Some(r) => audience.push(r),
                    None => err(
                        Some("audience"),
                        format!(
                            "audience kind `{}` needs `arg` (channel, user, email, group, url) or `group` (group)",
                            a.kind
                        ),
                    ),
                }
            }
            let output = match t.output.as_deref() {
                None | Some("trusted") => Integrity::Trusted,
                Some("untrusted") => Integrity::Untrusted,
                Some(o) => {
                    err(
                        Some("output"),
                        format!("output must be `trusted` or `untrusted`, not `{o}`"),
                    );
                    Integrity::Trusted
                }
            };
            let mut untrusted_fields = Vec::new();
            for f in &t.untrusted_fields {
                match FieldPath::parse(f) {
                    Ok(p) => untrusted_fields.push(p),
                    Err(e) => err(Some("untrusted_fields"), e),
                }
            }
            if output == Integrity::Untrusted && !untrusted_fields.is_empty() {
                err(
                    Some("untrusted_fields"),
                    "`untrusted_fields` names the untrusted parts of a trusted output; this output is untrusted as a whole".into(),
                );
            }
            let authors = match &t.authors {
                None => None,
                Some(a) if untrusted_fields.is_empty() => {
                    err(
                        Some("authors"),
                        format!(
                            "`authors` says whose writing in `untrusted_fields` is trusted; this tool names no untrusted fields (group `{}`)",
                            a.group
                        ),
                    );
                    None
                }
                Some(a) if a.field.trim().is_empty() || a.group.trim().is_empty() => {
                    err(
                        Some("authors"),
                        "`authors` needs a `field` (the record's writer) and a `group` (whose members' writing is trusted)".into(),
                    );
                    None
                }
                Some(a) => Some(Authors {
                    field: a.field.clone(),
                    group: a.group.clone(),
                }),
            };
            let records = match t.records.as_deref() {
                None | Some("none") => RecordCount::None,
                Some("lines") => RecordCount::Lines,
                Some("json-array") => RecordCount::JsonArray,
                Some(o) => {
                    err(
                        Some("records"),
                        format!("records must be `none`, `lines` or `json-array`, not `{o}`"),
                    );
                    RecordCount::None
                }
            };
            let mut labels = Vec::new();
            for r in &t.labels {
                for l in &r.add {
                    if !known_labels.contains(l) {
                        err(
                            Some("labels"),
                            format!("label rule adds unknown label `{l}`"),
                        );
                    }
                }
                let n = [
                    !r.equals.is_empty(),
                    !r.glob.is_empty(),
                    !r.contains_any.is_empty(),
                ]
                .iter()
                .filter(|b| **b)
                .count();
                if n > 1 {
                    err(
                        Some("labels"),
                        "a label rule takes one of `equals`, `glob`, `contains_any`".into(),
                    );
                }
                // In a store that ignores case, values are matched lowercased.
                let folded = |xs: &[String]| -> Vec<String> {
                    match fold {
                        crate::canon::Fold::Case => xs.iter().map(|x| x.to_lowercase()).collect(),
                        crate::canon::Fold::None => xs.to_vec(),
                    }
                };
                let matcher = if !r.equals.is_empty() {
                    Match::Equals(folded(&r.equals))
                } else if !r.contains_any.is_empty() {
                    Match::ContainsAny(folded(&r.contains_any))
                } else if !r.glob.is_empty() {
                    let mut gs = Vec::new();
                    for g in &r.glob {
                        match GlobBuilder::new(g)
                            .case_insensitive(fold == crate::canon::Fold::Case)
                            .build()
                        {
                            Ok(g) => gs.push(g.compile_matcher()),
                            Err(e) => err(Some("labels"), format!("invalid glob `{g}`: {e}")),
                        }
                    }
                    Match::Glob(gs)
                } else {
                    Match::Any
                };
                labels.push(LabelRule {
                    arg: r.arg.clone(),
                    matcher,
                    channel_readers: r.channel_readers,
                    add: r.add.clone(),
                });
            }
            let (types, problems) = crate::args::parse_types(&t.types);
            problems.into_iter().for_each(|p| err(Some("types"), p));
            for l in &t.default_labels {
                if !known_labels.contains(l) {
                    err(Some("default_labels"), format!("unknown label `{l}`"));
                }
            }
            if t.count_default.is_some() && t.count_arg.is_none() {
                err(
                    Some("count_default"),
                    "count_default needs count_arg (the argument it is the default of)".into(),
                );
            }
            let count = t.count_arg.map(|a| crate::budget::CountSpec {
                args: a.into_vec(),
                default: t.count_default,
            });
            let mut queries = Vec::new();
            for q in t.query.map(OneOrMany::into_vec).unwrap_or_default() {
                match q.check() {
                    Ok(q) => queries.push(q),
                    Err(e) => err(Some("query"), e),
                }
            }
            if issues.0.len() > before {
                continue;
            }
            let Some(effect) = effect else { continue };
            let mut declared: BTreeSet<String> = t
                .required
                .iter()
                .chain(&t.optional)
                .chain(&t.lists)
                .chain(t.types.keys())
                .cloned()
                .collect();
            declared.extend(t.resource.arg.iter().cloned());
            declared.extend(t.acts_as.iter().cloned());
            declared.extend(t.directs.iter().cloned());
            declared.extend(count.iter().flat_map(|c| c.args.iter().cloned()));
            declared.extend(queries.iter().map(|q| q.arg.clone()));
            declared.extend(labels.iter().map(|r| r.arg.clone()));
            declared.extend(
                audience
                    .iter()
                    .filter_map(AudienceRule::arg)
                    .map(str::to_string),
            );
            tools.insert(
                name.clone(),
                ToolSpec {
                    name: name.clone(),
                    server: server.to_string(),
                    tool: tool.to_string(),
                    effect,
                    description: t.description,
                    required: t.required,
                    resource_type: t.resource.ty,
                    resource_arg: t.resource.arg,
                    resource_id: t.resource.id,
                    resource_prefix: t.resource.prefix.unwrap_or_default(),
                    audience,
                    labels,
                    default_labels: t.default_labels,
                    output,
                    untrusted_fields,
                    authors,
                    subject: t.subject.clone().filter(|f| !f.trim().is_empty()),
                    acts_as: t.acts_as,
                    directs: t.directs,
                    records,
                    count,
                    queries,
                    private: t.private,
                    declared,
                    lists: t.lists.into_iter().collect(),
                    fold,
                    types,
                },
            );
        }
        Catalog { tools }
    }

    /// Look up a tool by `server.tool`.
    pub fn get(&self, name: &str) -> Option<&ToolSpec> {
        self.tools.get(name)
    }

    /// Every tool.
    pub fn tools(&self) -> impl Iterator<Item = &ToolSpec> {
        self.tools.values()
    }

    /// Server names in the catalog.
    pub fn servers(&self) -> BTreeSet<&str> {
        self.tools.values().map(|t| t.server.as_str()).collect()
    }
}

/// The string values of an argument: a string, the strings of an array, or a scalar's text. A
/// string is split on commas only when `list` (the catalog declares the argument a list).
pub fn arg_values(v: &Value, list: bool) -> Vec<String> {
    match v {
        Value::String(s) => {
            if list && s.contains(',') {
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            } else {
                vec![s.clone()]
            }
        }
        Value::Array(a) => a.iter().flat_map(|x| arg_values(x, list)).collect(),
        Value::Number(n) => vec![n.to_string()],
        Value::Bool(b) => vec![b.to_string()],
        _ => Vec::new(),
    }
}

fn arg_string(
    spec: &ToolSpec,
    args: &serde_json::Map<String, Value>,
    arg: &str,
) -> Result<String, ResolveError> {
    match args.get(arg) {
        None | Some(Value::Null) => Err(ResolveError::Missing {
            tool: spec.name.clone(),
            arg: arg.to_string(),
        }),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v @ Value::Array(_)) => {
            let vs = spec.values(arg, v);
            if vs.is_empty() {
                Err(ResolveError::BadType {
                    tool: spec.name.clone(),
                    arg: arg.to_string(),
                    want: "a string or a list of strings",
                })
            } else {
                Ok(vs.join(","))
            }
        }
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(ResolveError::BadType {
            tool: spec.name.clone(),
            arg: arg.to_string(),
            want: "a string",
        }),
    }
}

impl ToolSpec {
    /// Whether the store of the tool's server tells names apart by case (`[servers.NAME]
    /// case_insensitive` in the catalog).
    pub fn fold(&self) -> crate::canon::Fold {
        self.fold
    }

    /// The string values of argument `arg` with value `v`: split on commas only when the
    /// catalog declares it a list (`lists`).
    pub fn values(&self, arg: &str, v: &Value) -> Vec<String> {
        arg_values(v, self.lists.contains(arg))
    }

    /// Whether the tool takes argument `arg` (see [`ToolSpec::declared_args`]).
    pub fn declares(&self, arg: &str) -> bool {
        self.declared.contains(arg)
    }

    /// Every argument the tool takes: `required`, `optional`, and those its rules read.
    pub fn declared_args(&self) -> impl Iterator<Item = &str> {
        self.declared.iter().map(String::as_str)
    }

    /// Resolve a call's arguments: resource, labels, audience, act-as, directing arguments.
    pub fn resolve(&self, args: &Value, dir: &Directory) -> Result<Resolved, ResolveError> {
        let Value::Object(map) = args else {
            return Err(ResolveError::NotAnObject(self.name.clone()));
        };
        // A call is what the catalog says it is: an argument it does not declare is refused.
        // Protocol requests (`server.resources/read` …) carry what Warden builds from them.
        if !self.tool.contains('/') && map.keys().any(|k| !self.declared.contains(k)) {
            let quote = |k: &String| format!("`{}`", crate::engine::excerpt(k));
            let args: Vec<String> = map
                .keys()
                .filter(|k| !self.declared.contains(*k))
                .take(8)
                .map(quote)
                .collect();
            return Err(ResolveError::Undeclared {
                tool: self.name.clone(),
                args: args.join(", "),
                declared: self
                    .declared
                    .iter()
                    .map(quote)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        for r in &self.required {
            if map.get(r).is_none_or(Value::is_null) {
                return Err(ResolveError::Missing {
                    tool: self.name.clone(),
                    arg: r.clone(),
                });
            }
        }
        self.check_arg_types(map)?;
        let resource_id = match (&self.resource_arg, &self.resource_id) {
            (Some(a), _) => format!("{}{}", self.resource_prefix, arg_string(self, map, a)?),
            (None, Some(id)) => id.clone(),
            (None, None) => String::new(),
        };
        // Labels are earned by the canonical forms of the values (what the upstream reads, see
        // `crate::canon`), and also by the values as written: every rule they hit, and the
        // defaults when they hit none and carry percent-escapes (an upstream that does not
        // decode them reads another name).
        let (raw, raw_matched) = self.labels_of(map, false);
        let labels = if self.has_other_spellings(map) {
            let (mut labels, _) = self.labels_of(map, true);
            if raw_matched || self.has_escapes(map) {
                labels.extend(raw);
            }
            labels
        } else {
            raw
        };
        let audience = if self.audience.is_empty() {
            None
        } else {
            let mut all = Audience::default();
            for rule in &self.audience {
                let a = self.audience_of(rule, map, dir)?;
                all.channels.extend(a.channels);
                all.groups.extend(a.groups);
                all.users.extend(a.users);
                all.external.extend(a.external);
                all.unknown.extend(a.unknown);
            }
            Some(all)
        };
        let acts_as = match &self.acts_as {
            Some(a) => match map.get(a) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.is_empty() => None,
                Some(_) => Some(arg_string(self, map, a)?),
            },
            None => None,
        };
        let directing = self
            .directs
            .iter()
            .filter_map(|a| map.get(a).map(|v| (a, v)))
            .flat_map(|(a, v)| self.values(a, v).into_iter().map(move |x| (a.clone(), x)))
            .collect();
        // Writing to a place publishes to its readers (write-down): everyone cleared for its
        // labels, the readers of the channels it belongs to, and anyone at all when it is public.
        let audience = if self.effect == Effect::Write {
            let mut a = audience.unwrap_or_default();
            a.place = Some(labels.iter().cloned().collect());
            a.channels.extend(
                labels
                    .iter()
                    .filter_map(|l| l.strip_prefix(CHANNEL_LABEL_PREFIX))
                    .map(str::to_string),
            );
            if labels.contains(PUBLIC) {
                a.external.push(format!(
                    "the public, who read {}",
                    crate::engine::excerpt(&resource_id)
                ));
            }
            Some(a)
        } else {
            audience
        };
        Ok(Resolved {
            resource_type: self.resource_type.clone(),
            resource_id,
            labels,
            audience,
            acts_as,
            directing,
        })
    }

    fn audience_of(
        &self,
        rule: &AudienceRule,
        map: &serde_json::Map<String, Value>,
        dir: &Directory,
    ) -> Result<Audience, ResolveError> {
        let mut a = Audience::default();
        let unknown = |what: String| ResolveError::UnknownAudience {
            tool: self.name.clone(),
            what,
        };
        // An optional audience argument left out (or empty) adds no one; a required one is
        // checked before this.
        if let Some(arg) = rule.arg() {
            let absent = match map.get(arg) {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.trim().is_empty(),
                Some(Value::Array(v)) => v.is_empty(),
                Some(_) => false,
            };
            if absent && !self.required.iter().any(|r| r == arg) {
                return Ok(a);
            }
        }
        match rule {
            AudienceRule::Channel(arg) => {
                let ch = arg_string(self, map, arg)?;
                if !dir.has_channel(&ch) {
                    return Err(unknown(format!(
                        "channel `{}`",
                        crate::engine::excerpt(&ch)
                    )));
                }
                a.channels.push(ch);
            }
            AudienceRule::User(arg) => {
                let u = arg_string(self, map, arg)?;
                // A person the directory does not know is an outside reader (cleared for
                // `public` only): the policy decides, as for any outsider.
                if dir.user(&u).is_some() {
                    a.users.push(u);
                } else if let Some(id) = dir.user_by_email(&u) {
                    a.users.push(id.to_string());
                } else {
                    a.unknown.push(u);
                }
            }
            AudienceRule::Email(arg) => {
                let v = map.get(arg).ok_or_else(|| ResolveError::Missing {
                    tool: self.name.clone(),
                    arg: arg.clone(),
                })?;
                let addrs = self.values(arg, v);
                if addrs.is_empty() {
                    return Err(ResolveError::BadType {
                        tool: self.name.clone(),
                        arg: arg.clone(),
                        want: "an address or a list of addresses",
                    });
                }
                for addr in addrs {
                    if let Some(id) = dir.user_by_email(&addr) {
                        a.users.push(id.to_string());
                    } else if dir.is_internal_address(&addr) {
                        a.unknown.push(addr);
                    } else {
                        a.external.push(addr);
                    }
                }
            }
            AudienceRule::FixedGroup(g) => a.groups.push(g.clone()),
            AudienceRule::Url(arg) => {
                let url = arg_string(self, map, arg)?;
                let host = url_host(&url);
                if host.is_empty() {
                    return Err(ResolveError::BadType {
                        tool: self.name.clone(),
                        arg: arg.clone(),
                        want: "an absolute URL",
                    });
                }
                if !dir.is_internal_host(&host) {
                    a.external.push(host);
                }
            }
            AudienceRule::GroupArg(arg) => {
                let g = arg_string(self, map, arg)?;
                if !dir.has_group(&g) {
                    return Err(unknown(format!("group `{}`", crate::engine::excerpt(&g))));
                }
                a.groups.push(g);
            }
        }
        Ok(a)
    }
}

impl ToolSpec {
    /// True for arguments that name people rather than carry content (the audience and the
    /// act-as name). URLs, paths and other directing arguments are scanned like content: data
    /// can leave inside them.
    pub fn is_addressing_arg(&self, arg: &str) -> bool {
        self.acts_as.as_deref() == Some(arg)
            || self.audience.iter().any(|r| match r {
                AudienceRule::Channel(a)
                | AudienceRule::User(a)
                | AudienceRule::Email(a)
                | AudienceRule::GroupArg(a) => a == arg,
                AudienceRule::Url(_) | AudienceRule::FixedGroup(_) => false,
            })
    }

    /// Every label the catalog can attach to this tool's data.
    pub fn possible_labels(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.default_labels.iter().cloned().collect();
        for r in &self.labels {
            out.extend(r.add.iter().cloned());
        }
        out
    }
}

/// The private version of a call that reaches an audience: what an approver can choose, in one
/// action, instead of the call held (`private = { tool = "forum.send_dm", args = { to =
/// "{principal}", body = "{body}" }, text = "…" }`). In `args`, `{principal}` is the person the
/// mission acts for and `{NAME}` the held call's argument `NAME`; anything else is literal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Private {
    /// `server.tool` of the private call.
    pub tool: String,
    /// Its arguments.
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    /// What it does, in words (`{principal}` is filled in).
    #[serde(default)]
    pub text: String,
}
