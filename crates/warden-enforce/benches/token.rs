//! What a mission token adds to a decision, side by side in one run:
//! - `decide, no token`: `Engine::decide` of one call for a mission already in hand;
//! - `verify, cached`: `Verifier::verify` of a token verified before (digest, cache lookup,
//!   expiry and agent checks);
//! - `verify + decide, cached`: the two together, as the gateway does per call;
//! - `verify, first time`: signatures, every block read and rebuilt through
//!   `Engine::attenuate`, the token's Datalog checks (a grant and one narrowing block).
//!
//! Run with `cargo bench -p warden-enforce --bench token`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use warden_core::mission::MissionUsage;
use warden_core::narrow::Narrowing;
use warden_core::session::SessionState;
use warden_core::{Breakers, Call, Config, Engine, Sources};
use warden_enforce::token::{attenuate, mint, Grant, RootKey, Verifier};

const NOW: i64 = 1_765_000_000_000;

struct Files(PathBuf);

impl Sources for Files {
    fn read(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(self.0.join(path)).map_err(|e| e.to_string())
    }
    fn list(&self, dir: &str, ext: &str) -> Result<Vec<String>, String> {
        let mut out: Vec<String> = std::fs::read_dir(self.0.join(dir))
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(ext))
            .map(|n| format!("{dir}/{n}"))
            .collect();
        out.sort();
        Ok(out)
    }
}

fn acme() -> Arc<Engine> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/acme");
    let text = std::fs::read_to_string(dir.join("warden.toml")).unwrap();
    Arc::new(Engine::new(
        Config::load("warden.toml", &text, &Files(dir)).unwrap(),
    ))
}

fn bench(c: &mut Criterion) {
    let engine = acme();
    let key = RootKey::generate();
    let verifier = Verifier::new(key.public(), engine.clone());
    let token = mint(
        &key,
        &Grant {
            mission: "m-bench".into(),
            template: "answer-forum-question".into(),
            agent: "forum-helper".into(),
            principal: "alice".into(),
            purpose: "Help me answer Bob's question in T-1042".into(),
            granted_at_ms: NOW,
            expires_at_ms: NOW + 3_600_000,
            auth: "local".into(),
            narrowing: None,
        },
    )
    .unwrap();
    let token = attenuate(
        &token,
        &Narrowing {
            tools: Some(vec!["forum.*".into()]),
            ..Narrowing::default()
        },
    )
    .unwrap();
    let mission = verifier
        .verify(&token, "forum-helper", NOW + 1)
        .unwrap()
        .mission;
    let session = SessionState::new("s", &mission.id);
    let usage = MissionUsage::default();
    let breakers = Breakers::default();
    let call = || {
        Call::new(
            "forum",
            "read_thread",
            json!({"channel": "eng-help", "thread_id": "T-1042"}),
        )
    };

    let mut g = c.benchmark_group("mission token");
    g.bench_function("decide, no token", |b| {
        b.iter(|| black_box(engine.decide(call(), &mission, &session, &usage, &breakers, NOW + 2)))
    });
    g.bench_function("verify, cached", |b| {
        b.iter(|| black_box(verifier.verify(&token, "forum-helper", NOW + 2).unwrap()))
    });
    g.bench_function("verify + decide, cached", |b| {
        b.iter(|| {
            let v = verifier.verify(&token, "forum-helper", NOW + 2).unwrap();
            black_box(engine.decide(call(), &v.mission, &session, &usage, &breakers, NOW + 2))
        })
    });
    g.bench_function("verify, first time", |b| {
        b.iter(|| black_box(verifier.verify_fresh(&token, NOW + 2).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
