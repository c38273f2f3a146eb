//! What goes into a decision and what comes out of it: the call, the breakers, the decision
//! with its [`Permitted`] value, and the facts of one call being decided.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::mission::{Mission, MissionUsage};
use crate::model::{Decision, FlowFacts, Outcome, Reason, Stage};
use crate::session::SessionState;

/// The label detectors give to text that tells a reader to widen access.
pub const PRIVILEGED_ADVICE: &str = "privileged-advice";

/// A tool call as the agent made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// Upstream server name.
    pub server: String,
    /// Tool name on that server.
    pub tool: String,
    /// Arguments (a JSON object).
    pub args: Value,
}

impl Call {
    /// A call.
    pub fn new(server: impl Into<String>, tool: impl Into<String>, args: Value) -> Self {
        Call {
            server: server.into(),
            tool: tool.into(),
            args,
        }
    }

    /// `server.tool`.
    pub fn name(&self) -> String {
        format!("{}.{}", self.server, self.tool)
    }

    /// SHA-256 (hex) of the canonical call: server, tool and arguments with sorted keys.
    pub fn digest(&self) -> String {
        self.canonical().1
    }

    /// The canonical JSON's length in bytes and its SHA-256 (hex), from one serialization.
    pub(super) fn canonical(&self) -> (usize, String) {
        #[derive(Serialize)]
        struct Canon<'a> {
            args: Sorted<'a>,
            server: &'a str,
            tool: &'a str,
        }
        // Serialized straight into the hash: the bytes are never held.
        let mut w = HashWriter {
            hash: Sha256::new(),
            len: 0,
        };
        let canon = Canon {
            args: Sorted(&self.args),
            server: &self.server,
            tool: &self.tool,
        };
        match serde_json::to_writer(&mut w, &canon) {
            Ok(()) => (w.len, hex::encode(w.hash.finalize())),
            Err(_) => (0, hex::encode(Sha256::digest(b""))),
        }
    }
}

/// A JSON value serialized with every object's keys in byte order, whatever order they came
/// in (`serde_json` here keeps insertion order): the same arguments always make the same
/// canonical call.
struct Sorted<'a>(&'a Value);

impl Serialize for Sorted<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut map = s.serialize_map(Some(keys.len()))?;
                for k in keys {
                    if let Some(v) = m.get(k) {
                        map.serialize_entry(k, &Sorted(v))?;
                    }
                }
                map.end()
            }
            Value::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(&Sorted(v))?;
                }
                seq.end()
            }
            other => other.serialize(s),
        }
    }
}

/// Counts and hashes what is written to it.
struct HashWriter {
    hash: Sha256,
    len: usize,
}

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hash.update(buf);
        self.len += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What absorbing the output of an allowed call needs: the decision that allowed it, the
/// catalog tool and the labels of the resource it read. Cheap to clone, so that what an
/// upstream says while the call runs (progress, log messages) can be absorbed too.
///
/// A receipt can be written down (a mission's journal keeps it with the output it absorbed)
/// and read back to absorb that output again into another copy of the mission's state.
/// Absorbing only adds taint, so a receipt read back grants nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub(super) decision_id: String,
    pub(super) tool: String,
    pub(super) resource_labels: BTreeSet<String>,
}

impl Receipt {
    /// The id of the decision that allowed the call.
    pub fn decision_id(&self) -> &str {
        &self.decision_id
    }

    /// The catalog name of the tool (`server.tool`).
    pub fn tool(&self) -> &str {
        &self.tool
    }

    /// The labels of the resource the call reads.
    pub fn resource_labels(&self) -> &BTreeSet<String> {
        &self.resource_labels
    }
}

/// A value the engine allowed. Only [`Engine::decide`](super::Engine::decide) makes one.
///
/// It is not yet a call that may leave Warden: the decision must first be durably logged. The
/// enforcement pipeline (`warden-enforce`) turns an `Allowed` into the `Permitted` that
/// upstream clients take, and only after the decision's audit record is committed. It is not
/// `Clone`.
#[derive(Debug)]
pub struct Allowed<T> {
    // Visible to the engine's modules only: nothing outside the engine can make one.
    pub(super) inner: T,
    pub(super) receipt: Receipt,
}

impl<T> Allowed<T> {
    /// The allowed value.
    pub fn get(&self) -> &T {
        &self.inner
    }

    /// The id of the decision that allowed it.
    pub fn decision_id(&self) -> &str {
        &self.receipt.decision_id
    }

    /// What absorbing its output needs.
    pub fn receipt(&self) -> &Receipt {
        &self.receipt
    }

    /// The value and its receipt.
    pub fn into_parts(self) -> (T, Receipt) {
        (self.inner, self.receipt)
    }
}

/// Circuit breakers in force (state only; what trips them lives outside the core).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breakers {
    /// Everything is stopped (kill switch).
    pub global: bool,
    /// Agents whose breaker is tripped.
    pub agents: BTreeSet<String>,
    /// Principals whose breaker is tripped (every mission acting for them).
    #[serde(default)]
    pub principals: BTreeSet<String>,
    /// Sessions whose breaker is tripped.
    pub sessions: BTreeSet<String>,
    /// Missions revoked.
    pub missions: BTreeSet<String>,
    /// Missions whose breaker is tripped (not revoked: a reset lets them go on).
    #[serde(default)]
    pub tripped_missions: BTreeSet<String>,
    /// Why each breaker was tripped, by its key (`global`, `agent:NAME`, `principal:NAME`,
    /// `session:NAME`, `mission:ID`), when the trip said so.
    #[serde(default)]
    pub reasons: BTreeMap<String, String>,
    /// Every mission of an agent or a principal revoked at once: `agent:NAME` or
    /// `principal:NAME`, with when (Unix ms). A mission granted at or before that time is
    /// revoked; one granted later is not.
    #[serde(default)]
    pub revoked_scopes: BTreeMap<String, i64>,
}

impl Breakers {
    /// The reason a breaker was tripped, as a suffix for a refusal (`: why`), or nothing.
    pub fn why(&self, key: &str) -> String {
        self.reasons
            .get(key)
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    }

    /// The key of every mission of agent `name` in [`Breakers::revoked_scopes`].
    pub fn agent_scope(name: &str) -> String {
        format!("agent:{name}")
    }

    /// The key of every mission of principal `name` in [`Breakers::revoked_scopes`].
    pub fn principal_scope(name: &str) -> String {
        format!("principal:{name}")
    }

    /// Whether `key` names a scope of missions (an agent's or a principal's), not one mission.
    pub fn is_scope(key: &str) -> bool {
        key.starts_with("agent:") || key.starts_with("principal:")
    }

    /// Why `mission` is revoked by a scope, if it is: the scope and when it was revoked.
    pub fn scope_revoking(&self, mission: &crate::mission::Mission) -> Option<(String, i64)> {
        [
            Breakers::agent_scope(&mission.agent),
            Breakers::principal_scope(&mission.principal),
        ]
        .into_iter()
        .find_map(|k| {
            self.revoked_scopes
                .get(&k)
                .filter(|at| mission.granted_at_ms <= **at)
                .map(|at| (k, *at))
        })
    }
}

/// A decision and, when allowed, the permitted call.
#[derive(Debug)]
pub struct Decided {
    /// The decision (always present; log it before forwarding).
    pub decision: Decision,
    /// The call, when the decision is allow.
    pub allowed: Option<Allowed<Call>>,
    /// The call, when the decision is ask: what an approval request is made of.
    pub held: Option<Call>,
}

/// A decision and, when allowed, the facts the permitted call needs (the call itself is
/// attached by [`Engine::decide`](super::Engine::decide), without copying it).
pub(super) type Inner = (Decision, Option<Allowed<()>>);

pub(super) struct Ctx<'a> {
    pub(super) call: &'a Call,
    pub(super) name: String,
    pub(super) mission: &'a Mission,
    pub(super) session: &'a SessionState,
    pub(super) usage: &'a MissionUsage,
    pub(super) breakers: &'a Breakers,
    pub(super) now_ms: i64,
    pub(super) digest: String,
    pub(super) call_bytes: usize,
    /// Ask policies a person approved for this call (see [`super::Engine::decide_lifting`]).
    pub(super) lifted: &'a BTreeSet<String>,
}

impl Ctx<'_> {
    pub(super) fn decision(&self, outcome: Outcome, reasons: Vec<Reason>) -> Decision {
        Decision {
            id: decision_id(
                &self.session.id,
                self.session.calls + 1,
                &self.digest,
                self.now_ms,
            ),
            decision: outcome,
            reasons,
            policies: Vec::new(),
            ask_policies: Vec::new(),
            approval: None,
            exposure: None,
            flow: FlowFacts::default(),
            tool: self.name.clone(),
            effect: None,
            resource: None,
            agent: self.mission.agent.clone(),
            principal: self.mission.principal.clone(),
            session: self.session.id.clone(),
            mission: self.mission.id.clone(),
            mission_chain: if self.mission.chain.len() > 1 {
                self.mission.chain.clone()
            } else {
                Vec::new()
            },
            call_digest: self.digest.clone(),
            at_ms: self.now_ms,
            elapsed_us: None,
        }
    }

    pub(super) fn deny(&self, stage: Stage, text: String) -> Inner {
        (
            self.decision(
                Outcome::Deny,
                vec![Reason {
                    stage,
                    outcome: Outcome::Deny,
                    policy: None,
                    text,
                }],
            ),
            None,
        )
    }
}

/// `d-` and the first 20 hex digits of the SHA-256 of `session \n call \n digest \n now_ms`
/// (numbers in decimal).
fn decision_id(session: &str, call: u64, digest: &str, now_ms: i64) -> String {
    use std::io::Write as _;
    // The numbers are written into the hash as text, without allocating.
    let mut h = Sha256::new();
    h.update(session.as_bytes());
    let _ = write!(h, "\n{call}\n");
    h.update(digest.as_bytes());
    let _ = write!(h, "\n{now_ms}");
    let hash = h.finalize();
    let mut id = String::with_capacity(22);
    id.push_str("d-");
    id.push_str(&hex::encode(hash.get(..10).unwrap_or_default()));
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `v` with every object's keys inserted in byte order (what canonical JSON writes).
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }

    #[test]
    fn digest_is_the_hash_of_the_canonical_json() {
        for args in [
            serde_json::json!({}),
            serde_json::json!({"b": "x\ny \"q\" \u{1} é", "a": [1, 2.5, null, true, {"z": "", "y": -3}]}),
            serde_json::json!({"body": "a".repeat(10_000)}),
        ] {
            let call = Call::new("srv", "t\"ool", args.clone());
            let text = format!(
                "{{\"args\":{},\"server\":\"srv\",\"tool\":\"t\\\"ool\"}}",
                serde_json::to_string(&sorted(&args)).unwrap_or_default()
            );
            assert_eq!(call.canonical().0, text.len());
            assert_eq!(call.digest(), hex::encode(Sha256::digest(text.as_bytes())));
        }
    }

    #[test]
    fn decision_id_is_the_hash_of_session_call_digest_and_time() {
        for (session, call, digest, now) in [
            ("s-1", 1u64, "abc", 1_768_478_400_000i64),
            ("", 0, "", -5),
            ("séssion", u64::MAX, "ff00", i64::MIN),
        ] {
            let text = format!("{session}\n{call}\n{digest}\n{now}");
            let full = hex::encode(Sha256::digest(text.as_bytes()));
            assert_eq!(
                decision_id(session, call, digest, now),
                format!("d-{}", &full[..20])
            );
        }
    }
}

#[cfg(test)]
mod canonical_call_tests {
    use super::Call;

    #[test]
    fn the_order_of_argument_keys_does_not_change_the_digest() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b": 1, "a": {"y": [{"q": 1, "p": 2}], "x": "s"}}"#)
                .unwrap_or_default();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a": {"x": "s", "y": [{"p": 2, "q": 1}]}, "b": 1}"#)
                .unwrap_or_default();
        assert_eq!(
            Call::new("s", "t", a.clone()).digest(),
            Call::new("s", "t", b).digest()
        );
        let c: serde_json::Value =
            serde_json::from_str(r#"{"b": 2, "a": {"x": "s"}}"#).unwrap_or_default();
        assert_ne!(
            Call::new("s", "t", a).digest(),
            Call::new("s", "t", c).digest()
        );
    }
}
