//! `warden policy test`: each case of a test file runs through the enforcement pipeline, on an
//! in-memory store of its own, as the gateway would run it: the earlier calls are decided,
//! recorded and (when allowed) their outputs absorbed, then the call under test is decided.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use warden_core::model::Decision;
use warden_core::policytest::{parse_file, Case, CaseResult};
use warden_core::Engine;
use warden_store::Store;

use crate::replay::Recorded;
use crate::{Actor, Clock, Enforcer, How, MissionCell};

/// Run the cases of one test file, `now_ms` being the clock at each case's start. A file that
/// does not parse is one failed case.
pub async fn run_file(
    engine: &Arc<Engine>,
    file: &str,
    text: &str,
    now_ms: i64,
) -> Vec<CaseResult> {
    let cases = match parse_file(file, text) {
        Ok(c) => c,
        Err(failed) => return vec![*failed],
    };
    let mut out = Vec::with_capacity(cases.len());
    for case in cases {
        let decision = match case.expect {
            Ok(_) => run_case(engine, &case, now_ms).await,
            Err(_) => Err(String::new()),
        };
        out.push(case.result(decision));
    }
    out
}

async fn run_case(engine: &Arc<Engine>, c: &Case, now_ms: i64) -> Result<Decision, String> {
    let store: Arc<dyn Store> = warden_store::open("memory:")
        .await
        .map_err(|e| e.to_string())?;
    let clock = Arc::new(AtomicI64::new(now_ms));
    let enforcer = Enforcer::start_with(engine.clone(), store, Clock::Manual(clock.clone()))
        .await
        .map_err(|e| e.to_string())?;
    let mission = engine.grant(
        "test",
        &c.template,
        &c.agent,
        &c.principal,
        &c.purpose,
        now_ms,
    )?;
    let cell = MissionCell::new("test");
    let actor = Actor {
        mission: &mission,
        cell: &cell,
        session: "test",
    };
    let mut now = now_ms;
    for (call, output) in &c.before {
        now += 1000;
        clock.store(now, Ordering::Relaxed);
        let name = call.name();
        let verdict = enforcer
            .decide(&actor, call.clone(), How::offline())
            .await
            .map_err(|e| e.to_string())?;
        match (verdict.permitted, output) {
            (Some(p), Some(o)) => {
                enforcer
                    .forward(&actor, p, Recorded(Some(o.clone())))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            (None, _) => {
                return Err(format!(
                    "earlier call `{name}` was not allowed ({}): {}",
                    verdict.decision.decision,
                    verdict.decision.summary()
                ))
            }
            _ => {}
        }
    }
    clock.store(now + 1000, Ordering::Relaxed);
    let verdict = enforcer
        .decide(&actor, c.call.clone(), How::offline())
        .await
        .map_err(|e| e.to_string())?;
    Ok(verdict.decision)
}
