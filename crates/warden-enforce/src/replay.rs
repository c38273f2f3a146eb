//! Trace replay (`warden replay`) through the same pipeline as the gateway: each call is
//! decided, recorded in the store's audit chain and committed; an allowed call's recorded
//! output is "forwarded" (handed back as the upstream's answer) and absorbed into its mission.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use warden_core::mission::Mission;
use warden_core::trace::{output_text, steps, Replayed, Step, TraceError};
use warden_core::{Call, Engine};
use warden_store::Store;

use crate::{
    Actor, Clock, EnforceError, Enforcer, Forward, Forwarded, How, MissionCell, Permitted,
};

/// The output a trace or a policy test recorded for a call (its text), handed back as its
/// upstream's answer.
pub(crate) struct Recorded(pub(crate) Option<String>);

impl Forward for Recorded {
    type Output = ();
    type Error = std::convert::Infallible;

    async fn forward(self, call: Permitted<Call>) -> Forwarded<(), std::convert::Infallible> {
        drop(call);
        Forwarded {
            result: Ok(()),
            outcome: "result".into(),
            reason: String::new(),
            text: self.0,
        }
    }
}

/// A pipeline that replays traces: `engine` on `store`, with the trace's clock.
pub struct Replayer {
    enforcer: Arc<Enforcer>,
    clock: Arc<AtomicI64>,
}

impl std::fmt::Debug for Replayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replayer").finish_non_exhaustive()
    }
}

impl Replayer {
    /// A replayer for `engine` recording on `store` (`memory:` for a dry run).
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn new(engine: Arc<Engine>, store: Arc<dyn Store>) -> Result<Replayer, EnforceError> {
        let clock = Arc::new(AtomicI64::new(0));
        let enforcer = Enforcer::start_with(engine, store, Clock::Manual(clock.clone())).await?;
        Ok(Replayer { enforcer, clock })
    }

    /// The pipeline it replays through.
    pub fn enforcer(&self) -> &Arc<Enforcer> {
        &self.enforcer
    }

    /// Replay one trace file; `start_ms` is the clock at its first line. Mission ids are the
    /// trace's own: replay each file with its own replayer (on its own `memory:` store) so that
    /// files do not share missions. A bad line, or a store that fails, stops the replay with the
    /// file and line.
    ///
    /// # Errors
    /// As above.
    pub async fn replay(
        &self,
        file: &str,
        text: &str,
        start_ms: i64,
    ) -> Result<Vec<Replayed>, TraceError> {
        // A narrowed mission shares its root's cell: one taint and one usage for the chain.
        let mut missions: HashMap<String, (Mission, Arc<MissionCell>)> = HashMap::new();
        let mut sessions: HashMap<String, String> = HashMap::new();
        let mut out = Vec::new();
        for step in steps(file, text, start_ms)? {
            match step {
                Step::Mission {
                    line,
                    id,
                    parent,
                    narrowing,
                    template,
                    agent,
                    principal,
                    purpose,
                    now,
                } => {
                    let err = |message: String| TraceError {
                        file: file.to_string(),
                        line,
                        message,
                    };
                    if missions.contains_key(&id) {
                        return Err(err(format!("mission `{id}` is granted twice")));
                    }
                    self.clock.store(now, Ordering::Relaxed);
                    let engine = self.enforcer.engine();
                    let (mut m, cell) = match parent {
                        None => {
                            let m = engine
                                .grant(&id, &template, &agent, &principal, &purpose, now)
                                .map_err(|e| err(format!("cannot grant mission `{id}`: {e}")))?;
                            (m, Arc::new(MissionCell::new(id.clone())))
                        }
                        Some(p) => {
                            let (pm, cell) = missions.get(&p).ok_or_else(|| {
                                err(format!(
                                    "mission `{id}` names parent `{p}`, which no earlier line grants"
                                ))
                            })?;
                            let m = engine.attenuate(pm, &id, &narrowing, now).map_err(|e| {
                                err(format!("cannot narrow mission `{p}` into `{id}`: {e}"))
                            })?;
                            (m, cell.clone())
                        }
                    };
                    m.auth = "trace".to_string();
                    missions.insert(id, (m, cell));
                }
                Step::Call {
                    line,
                    mission,
                    session,
                    call,
                    output,
                    expect,
                    now,
                } => {
                    let err = |message: String| TraceError {
                        file: file.to_string(),
                        line,
                        message,
                    };
                    let (m, cell) = missions.get(&mission).ok_or_else(|| {
                        err(format!(
                            "call names mission `{mission}`, which no earlier line grants"
                        ))
                    })?;
                    let of = sessions.entry(session.clone()).or_insert(mission.clone());
                    if *of != mission {
                        return Err(err(format!(
                            "session `{session}` belongs to mission `{of}`, not `{mission}`"
                        )));
                    }
                    self.clock.store(now, Ordering::Relaxed);
                    let actor = Actor {
                        mission: m,
                        cell,
                        session: &session,
                    };
                    let verdict = self
                        .enforcer
                        .decide(&actor, call, How::offline())
                        .await
                        .map_err(|e| err(e.to_string()))?;
                    if let Some(p) = verdict.permitted {
                        if output.is_some() {
                            let _ = self
                                .enforcer
                                .forward(&actor, p, Recorded(output.as_ref().map(output_text)))
                                .await
                                .map_err(|e| err(e.to_string()))?;
                        }
                    }
                    out.push(Replayed {
                        file: file.to_string(),
                        line,
                        decision: verdict.decision,
                        expect,
                    });
                }
            }
        }
        Ok(out)
    }
}
