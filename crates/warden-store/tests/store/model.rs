//! One model, three backends: random operation sequences compared step by step.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{json, Value};
use warden_store::{
    merge_sources, open, verify, AuditInput, Budget, Exhausted, GrantFilter, GrantRecord,
    MissionState, Store, StoreError, VerifyOptions,
};

use crate::support::{input, PgSchema, SqliteFile};

#[derive(Clone, Debug)]
enum Op {
    Append(Vec<usize>),
    Absorb(u8, Vec<(u8, u8)>),
    Spend(u8, u8, u64, u64),
    Revoke(u8, u8),
    Breaker(u8, u8),
    Data(u8, u8, u8),
    /// Swap a data entry if its version is the one given.
    Swap(u8, u8, u8, u64),
    Load(u8),
    Range(u64, u32),
    /// Append events to a mission's journal.
    Journal(u8, Vec<u8>),
    /// Read a mission's journal after a number, at most so many.
    JournalSince(u8, u64, u32),
    /// Drop a mission's journal up to a number.
    JournalPrune(u8, u64),
    /// Record a grant of a mission to an agent (refused when the mission has one).
    PutGrant(u8, u8),
    /// Read a mission's grant.
    Grant(u8),
    /// List the grants, of one agent or all, at most so many.
    Grants(Option<u8>, u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        prop::collection::vec(0usize..100, 1..4).prop_map(Op::Append),
        (0u8..3, prop::collection::vec((0u8..4, 0u8..5), 0..4)).prop_map(|(m, l)| Op::Absorb(m, l)),
        (0u8..3, 0u8..2, 0u64..5, 0u64..12).prop_map(|(m, b, a, l)| Op::Spend(m, b, a, l)),
        (0u8..4, 0u8..3).prop_map(|(m, r)| Op::Revoke(m, r)),
        (0u8..3, 0u8..4).prop_map(|(k, s)| Op::Breaker(k, s)),
        (0u8..3, 0u8..2, 0u8..4).prop_map(|(m, k, v)| Op::Data(m, k, v)),
        (0u8..3, 0u8..2, 0u8..4, 0u64..4).prop_map(|(m, k, v, e)| Op::Swap(m, k, v, e)),
        (0u8..3).prop_map(Op::Load),
        (0u64..30, 0u32..10).prop_map(|(f, l)| Op::Range(f, l)),
        (0u8..3, prop::collection::vec(0u8..10, 1..4)).prop_map(|(m, e)| Op::Journal(m, e)),
        (0u8..3, 0u64..12, 0u32..6).prop_map(|(m, a, l)| Op::JournalSince(m, a, l)),
        (0u8..3, 0u64..12).prop_map(|(m, u)| Op::JournalPrune(m, u)),
        (0u8..4, 0u8..3).prop_map(|(m, a)| Op::PutGrant(m, a)),
        (0u8..4).prop_map(Op::Grant),
        (prop::option::of(0u8..3), 0u32..4).prop_map(|(a, l)| Op::Grants(a, l)),
    ]
}

fn mission(m: u8) -> String {
    format!("m{m}")
}

fn source(s: u8) -> Value {
    json!({"tool": format!("t{s}"), "n": s})
}

/// The model: plain maps.
#[derive(Default)]
struct Model {
    records: Vec<AuditInput>,
    missions: BTreeMap<String, MissionState>,
    revoked: BTreeMap<String, String>,
    breakers: BTreeMap<String, Value>,
    /// Per mission: the last number given out, and the events kept.
    journals: BTreeMap<String, (u64, BTreeMap<u64, Value>)>,
    grants: BTreeMap<String, GrantRecord>,
}

/// A grant of mission `m` to agent `a`; its time depends on the agent only, so grants tie.
fn grant(m: u8, a: u8) -> GrantRecord {
    GrantRecord {
        mission_id: mission(m),
        template: "t".into(),
        agent: format!("a{a}"),
        principal: "bob".into(),
        purpose: "p".into(),
        granted_by: "alice".into(),
        auth: "local".into(),
        granted_at_ms: i64::from(a) * 10,
        expires_at_ms: 1_000,
        narrowing: (a == 1).then(|| json!({"tools": ["x/y"], "a": a})),
        token_digest: format!("{m}{a}"),
        parent: (a == 2).then(|| "m0".to_string()),
    }
}

fn event(e: u8) -> Value {
    json!({"event": e, "text": format!("output {e}")})
}

/// What an operation answered, comparable across backends.
#[derive(Debug, PartialEq)]
enum Answer {
    Seqs(Vec<u64>),
    Swapped(Option<u64>),
    Spend(Result<u64, Exhausted>),
    Mission(MissionState),
    Range(Vec<(u64, Value)>),
    Last(u64),
    Granted(bool),
    Grant(Option<Box<GrantRecord>>),
    Grants(Vec<String>),
    Done,
}

impl Model {
    fn apply(&mut self, op: &Op) -> Answer {
        match op {
            Op::Append(items) => {
                let first = self.records.len() as u64 + 1;
                self.records.extend(items.iter().map(|i| input(*i)));
                Answer::Seqs((first..first + items.len() as u64).collect())
            }
            Op::Absorb(m, labels) => {
                let state = self.missions.entry(mission(*m)).or_default();
                for (label, src) in labels {
                    let entry = state.taint.entry(format!("l{label}")).or_default();
                    *entry = merge_sources(entry, &[source(*src)]);
                }
                Answer::Done
            }
            Op::Spend(m, b, amount, limit) => {
                let state = self.missions.entry(mission(*m)).or_default();
                let name = format!("b{b}");
                let spent = state.budgets.get(&name).map(|b| b.spent).unwrap_or(0);
                if spent + amount <= *limit {
                    state.budgets.insert(
                        name,
                        Budget {
                            spent: spent + amount,
                            limit: *limit,
                        },
                    );
                    Answer::Spend(Ok(limit - spent - amount))
                } else {
                    Answer::Spend(Err(Exhausted {
                        budget: name,
                        spent,
                        requested: *amount,
                        limit: *limit,
                    }))
                }
            }
            Op::Revoke(m, r) => {
                self.revoked
                    .entry(mission(*m))
                    .or_insert_with(|| format!("reason {r}"));
                Answer::Done
            }
            Op::Breaker(k, s) => {
                self.breakers.insert(format!("k{k}"), json!({"state": s}));
                Answer::Done
            }
            Op::Data(m, k, v) => {
                let state = self.missions.entry(mission(*m)).or_default();
                let key = format!("c{k}");
                state.data.insert(key.clone(), json!({"count": v}));
                *state.versions.entry(key).or_insert(0) += 1;
                Answer::Done
            }
            Op::Swap(m, k, v, expected) => {
                let state = self.missions.entry(mission(*m)).or_default();
                let key = format!("c{k}");
                let version = state.versions.get(&key).copied().unwrap_or(0);
                if version != *expected {
                    return Answer::Swapped(None);
                }
                state.data.insert(key.clone(), json!({"count": v}));
                state.versions.insert(key, version + 1);
                Answer::Swapped(Some(version + 1))
            }
            Op::Load(m) => {
                Answer::Mission(self.missions.get(&mission(*m)).cloned().unwrap_or_default())
            }
            Op::Range(from, limit) => Answer::Range(
                self.records
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (i as u64 + 1, r.body.clone()))
                    .filter(|(seq, _)| seq >= from)
                    .take(*limit as usize)
                    .collect(),
            ),
            Op::Journal(m, events) => {
                let (last, kept) = self.journals.entry(mission(*m)).or_default();
                for e in events {
                    *last += 1;
                    kept.insert(*last, event(*e));
                }
                Answer::Last(*last)
            }
            Op::JournalSince(m, after, limit) => Answer::Range(
                self.journals
                    .get(&mission(*m))
                    .map(|(_, kept)| {
                        kept.range(after + 1..)
                            .take(*limit as usize)
                            .map(|(s, v)| (*s, v.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            Op::JournalPrune(m, upto) => {
                if let Some((_, kept)) = self.journals.get_mut(&mission(*m)) {
                    kept.retain(|s, _| s > upto);
                }
                Answer::Done
            }
            Op::PutGrant(m, a) => {
                let taken = self.grants.contains_key(&mission(*m));
                if !taken {
                    self.grants.insert(mission(*m), grant(*m, *a));
                }
                Answer::Granted(!taken)
            }
            Op::Grant(m) => Answer::Grant(self.grants.get(&mission(*m)).cloned().map(Box::new)),
            Op::Grants(agent, limit) => {
                let mut listed: Vec<&GrantRecord> = self
                    .grants
                    .values()
                    .filter(|g| agent.is_none_or(|a| g.agent == format!("a{a}")))
                    .collect();
                listed.sort_by_key(|g| std::cmp::Reverse((g.granted_at_ms, g.mission_id.clone())));
                if *limit > 0 {
                    listed.truncate(*limit as usize);
                }
                Answer::Grants(listed.iter().map(|g| g.mission_id.clone()).collect())
            }
        }
    }
}

async fn run(store: &dyn Store, op: &Op) -> Answer {
    match op {
        Op::Append(items) => Answer::Seqs(
            store
                .append(items.iter().map(|i| input(*i)).collect())
                .await
                .unwrap()
                .iter()
                .map(|m| m.seq)
                .collect(),
        ),
        Op::Absorb(m, labels) => {
            // One absorb per label pair, as separate calls would arrive.
            for (label, src) in labels {
                let taint = [(format!("l{label}"), vec![source(*src)])].into();
                store.absorb(&mission(*m), &taint).await.unwrap();
            }
            Answer::Done
        }
        Op::Spend(m, b, amount, limit) => Answer::Spend(
            store
                .spend(&mission(*m), &format!("b{b}"), *amount, *limit)
                .await
                .unwrap(),
        ),
        Op::Revoke(m, r) => {
            store
                .revoke(&mission(*m), &format!("reason {r}"))
                .await
                .unwrap();
            Answer::Done
        }
        Op::Breaker(k, s) => {
            store
                .set_breaker(&format!("k{k}"), &json!({"state": s}))
                .await
                .unwrap();
            Answer::Done
        }
        Op::Data(m, k, v) => {
            store
                .put_mission_data(&mission(*m), &format!("c{k}"), &json!({"count": v}))
                .await
                .unwrap();
            Answer::Done
        }
        Op::Swap(m, k, v, expected) => Answer::Swapped(
            store
                .swap_mission_data(
                    &mission(*m),
                    &format!("c{k}"),
                    &json!({"count": v}),
                    *expected,
                )
                .await
                .unwrap(),
        ),
        Op::Load(m) => Answer::Mission(store.load_mission(&mission(*m)).await.unwrap()),
        Op::Range(from, limit) => Answer::Range(
            store
                .audit_range(*from, *limit)
                .await
                .unwrap()
                .into_iter()
                .map(|r| (r.seq, r.body))
                .collect(),
        ),
        Op::Journal(m, events) => Answer::Last(
            store
                .journal_append(
                    &mission(*m),
                    &events.iter().map(|e| event(*e)).collect::<Vec<_>>(),
                )
                .await
                .unwrap(),
        ),
        Op::JournalSince(m, after, limit) => Answer::Range(
            store
                .journal_since(&mission(*m), *after, *limit)
                .await
                .unwrap(),
        ),
        Op::JournalPrune(m, upto) => {
            store.journal_prune(&mission(*m), *upto).await.unwrap();
            Answer::Done
        }
        Op::PutGrant(m, a) => match store.put_grant(&grant(*m, *a)).await {
            Ok(()) => Answer::Granted(true),
            Err(StoreError::Conflict(_)) => Answer::Granted(false),
            Err(other) => panic!("put_grant: {other:?}"),
        },
        Op::Grant(m) => Answer::Grant(store.grant(&mission(*m)).await.unwrap().map(Box::new)),
        Op::Grants(agent, limit) => Answer::Grants(
            store
                .grants(&GrantFilter {
                    agent: agent.map(|a| format!("a{a}")),
                    limit: *limit,
                    ..GrantFilter::default()
                })
                .await
                .unwrap()
                .into_iter()
                .map(|g| g.mission_id)
                .collect(),
        ),
    }
}

async fn check_end(store: &dyn Store, model: &Model, name: &str) {
    let revoked: BTreeMap<String, String> = store
        .revocations()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.mission_id, r.reason))
        .collect();
    assert_eq!(revoked, model.revoked, "{name}: revocations");
    for m in 0..4 {
        assert_eq!(
            store
                .is_revoked(&mission(m))
                .await
                .unwrap()
                .map(|r| r.reason),
            model.revoked.get(&mission(m)).cloned(),
            "{name}: is_revoked"
        );
    }
    assert_eq!(
        store.breakers().await.unwrap(),
        model.breakers,
        "{name}: breakers"
    );
    assert_eq!(
        store.audit_tail_seq().await.unwrap(),
        model.records.len() as u64,
        "{name}: tail"
    );
    let records = store.audit_range(1, 10_000).await.unwrap();
    for (record, sent) in records.iter().zip(&model.records) {
        assert_eq!(
            (&record.kind, &record.columns, &record.body, record.at_ms),
            (&sent.kind, &sent.columns, &sent.body, sent.at_ms),
            "{name}: record {}",
            record.seq
        );
    }
    let report = verify(store, VerifyOptions::default()).await.unwrap();
    assert!(report.ok(), "{name}: {:?}", report.faults);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn backends_agree_with_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let file = SqliteFile::new();
            let schema = PgSchema::new().await;
            let stores: Vec<(&str, Arc<dyn Store>)> = vec![
                ("memory", open("memory:").await.unwrap()),
                ("sqlite", open(&file.url).await.unwrap()),
                ("postgres", open(&schema.url).await.unwrap()),
            ];
            let mut model = Model::default();
            for (step, op) in ops.iter().enumerate() {
                let expected = model.apply(op);
                for (name, store) in &stores {
                    let answer = run(store.as_ref(), op).await;
                    assert_eq!(answer, expected, "{name}, step {step}: {op:?}");
                }
            }
            for (name, store) in &stores {
                check_end(store.as_ref(), &model, name).await;
            }
            drop(stores);
            drop(schema);
        });
    }
}
