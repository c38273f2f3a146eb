//! The cost of information-flow analysis in `Engine::decide`, on the Acme reference configuration.
//!
//! The call is `forum.post_reply` to `eng-help` by `forum-helper` for `alice` under
//! `answer-forum-question`, decided
//!
//! * `fresh_tiny`: in a fresh session, with tiny arguments;
//! * `fresh_4k_args`: in a fresh session, with 4 KB of realistic arguments;
//! * `one_label_ask`: in a session holding one label the channel's readers are not cleared for
//!   (the decision is `ask`, as in the heavy cases, but the flow is small);
//! * `heavy_tiny`: in a session holding 100 confidentiality labels and 64 KiB each of untrusted
//!   and trusted text, with tiny arguments;
//! * `heavy_4k_args`: that session with the 4 KB arguments (the worst case asked about);
//! * `heavy_tiny_read`, `heavy_4k_args_read`: `heavy_tiny` and `heavy_4k_args` decided by Acme
//!   with `forum.post_reply`'s arguments typed and one more policy that reads `context.args`
//!   and `context.arg_summaries` (the 4 KB body is over the string bound, so it is summarised:
//!   its length and SHA-256);
//!
//! plus the parts flow analysis is made of: the detector scan of the arguments and the exposure
//! of the channel's audience. After criterion, a percentile pass times 20,000 single decisions
//! per case and prints a table.
//!
//! Run with `cargo bench -p warden-core --bench flow -- --warm-up-time 1 --measurement-time 3`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

/// The allocator of the `warden` binary, so the bench measures what runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

use cedar_policy::{Context, EntityUid};
use criterion::{criterion_group, BenchmarkId, Criterion};
use serde_json::{json, Value};
use warden_core::directory::Audience;
use warden_core::mission::{Mission, MissionUsage};
use warden_core::model::{Label, LabelSource};
use warden_core::session::SessionState;
use warden_core::{Breakers, Call, Config, Decision, Engine, Outcome, Sources};

/// 2026-01-15T12:00:00Z.
const NOW_MS: i64 = 1_768_478_400_000;
/// Decisions timed one by one per case in the percentile pass.
const PERCENTILE_RUNS: usize = 20_000;

/// Reads files relative to the configuration's folder.
struct FsSources(PathBuf);

impl Sources for FsSources {
    fn read(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(self.0.join(path)).map_err(|e| e.to_string())
    }

    fn list(&self, dir: &str, ext: &str) -> Result<Vec<String>, String> {
        let rd = std::fs::read_dir(self.0.join(dir)).map_err(|e| e.to_string())?;
        let mut v = Vec::new();
        for e in rd {
            let e = e.map_err(|e| e.to_string())?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(ext) && e.path().is_file() {
                v.push(format!("{}/{name}", dir.trim_end_matches('/')));
            }
        }
        v.sort();
        Ok(v)
    }
}

fn acme_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/acme")
}

fn load_acme() -> Engine {
    let dir = acme_dir();
    let text = std::fs::read_to_string(dir.join("warden.toml")).unwrap();
    match Config::load("warden.toml", &text, &FsSources(dir)) {
        Ok(c) => Engine::new(c),
        Err(e) => panic!("the Acme configuration does not load: {e:?}"),
    }
}

/// The policy of the `_read` cases: it reads the typed arguments and their summaries.
const ARGS_POLICY: &str = r#"
@id("replies-read-their-arguments")
forbid (principal, action == Action::"forum.post_reply", resource)
when {
  context.args.thread_id like "LOCKED-*" ||
  (context.args has body && context.args.body like "*DROP TABLE*") ||
  (context.arg_summaries has body && context.arg_summaries.body.length > 65536)
};
"#;

/// Acme with `forum.post_reply`'s arguments typed and [`ARGS_POLICY`] added.
struct ArgsSources(FsSources);

impl Sources for ArgsSources {
    fn read(&self, path: &str) -> Result<String, String> {
        match path {
            "catalog.toml" => Ok(self.0.read(path)?.replace(
                "[tools.\"forum.post_reply\"]\n",
                "[tools.\"forum.post_reply\"]\ntypes = { channel = \"string\", thread_id = \"string\", body = \"string\" }\n",
            )),
            "policies/zz-args.cedar" => Ok(ARGS_POLICY.to_string()),
            _ => self.0.read(path),
        }
    }

    fn list(&self, dir: &str, ext: &str) -> Result<Vec<String>, String> {
        let mut v = self.0.list(dir, ext)?;
        if dir.trim_end_matches('/') == "policies" && ext == ".cedar" {
            v.push("policies/zz-args.cedar".into());
        }
        Ok(v)
    }
}

fn load_acme_reading_args() -> Engine {
    let dir = acme_dir();
    let text = std::fs::read_to_string(dir.join("warden.toml")).unwrap();
    let c = Config::load("warden.toml", &text, &ArgsSources(FsSources(dir)))
        .unwrap_or_else(|e| panic!("Acme with typed arguments does not load: {e:?}"));
    assert!(c.policies.context_use().wants("args"));
    Engine::new(c)
}

/// About 4 KB of reply body: prose, log lines, an e-mail address and a URL.
fn body_4k() -> String {
    let mut s = String::from(
        "Hi Bob, thanks for the detailed report. I looked at the ingest worker logs for the window you \
         mentioned, and the timeouts line up with the nightly compaction on shard 7. The worker retries \
         three times with exponential back-off, then gives up and parks the batch, which is why the \
         dashboard showed the gap between 02:10 and 02:40 UTC. Nothing was lost: parked batches are \
         replayed by the morning job, and I confirmed the counts match the upstream totals.\n\n\
         Here are the relevant lines from the query (trimmed):\n\n",
    );
    let lines = [
        "2026-01-15T02:09:58Z INFO  ingest-worker[4182]: batch 88121 accepted (records=5000, shard=7)",
        "2026-01-15T02:10:03Z WARN  ingest-worker[4182]: upstream timeout after 30s (shard=7, retry=1) trace=4bf92f3577b34da6a3ce929d0e0e4736",
        "2026-01-15T02:10:41Z WARN  ingest-worker[4182]: upstream timeout after 30s (shard=7, retry=2)",
        "2026-01-15T02:11:52Z ERROR ingest-worker[4182]: giving up on batch 88122 after 3 retries; parked for replay",
        "2026-01-15T02:12:00Z INFO  compactor[77]: compaction of shard 7 in progress (segments=412, 61% done)",
        "2026-01-15T02:39:12Z INFO  compactor[77]: compaction of shard 7 finished in 29m14s",
        "2026-01-15T02:40:05Z INFO  ingest-worker[4182]: shard 7 healthy again, resuming (lag=1834 batches)",
    ];
    let mut i = 0;
    while s.len() < 3_300 {
        s.push_str(lines[i % lines.len()]);
        s.push('\n');
        i += 1;
    }
    s.push_str(
        "\nIf you want the full picture, the runbook is at https://wiki.acme.example/runbooks/ingest-compaction \
         and the incident timeline is on the status page. If the gap shows up again outside the compaction \
         window, please ping me directly at alice@acme.example and include the batch ids from the worker \
         log so I can trace them end to end. Cheers, Alice",
    );
    while s.len() < 4_096 {
        s.push(' ');
    }
    s
}

fn args_tiny() -> Value {
    json!({"channel": "eng-help", "thread_id": "T-1042", "body": "Restarting the ingest worker fixes it; see the runbook."})
}

fn args_4k() -> Value {
    json!({"channel": "eng-help", "thread_id": "T-1042", "body": body_4k()})
}

/// About `bytes` of text made of `parts`, cycled with a counter so it is not one repeated line.
fn text_of(parts: &[&str], bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 256);
    let mut i = 0usize;
    while s.len() < bytes {
        writeln!(s, "[{i:05}] {}", parts[i % parts.len()]).unwrap();
        i += 1;
    }
    s
}

/// A session that has read a lot: 100 confidentiality labels, 64 KiB of untrusted text (forum
/// threads) and 64 KiB of trusted text (logs, files).
fn heavy_session() -> SessionState {
    let mut s = SessionState::new("s-heavy", "m-flow");
    let mut labels: Vec<String> = [
        "public",
        "internal",
        "security-sensitive",
        "user-data",
        "channel:eng-help",
        "channel:all-hands",
        "channel:platform-private",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut i = 0;
    while labels.len() < 100 {
        labels.push(format!("channel:x{i}"));
        i += 1;
    }
    for (n, l) in labels.into_iter().enumerate() {
        s.add_label(LabelSource {
            source: if l.starts_with("channel:") {
                "forum.read_thread".into()
            } else {
                "logs.query_logs".into()
            },
            label: l.into(),
            call: n as u64 / 5 + 1,
            at_ms: NOW_MS - 600_000 + n as i64 * 1000,
            session: Some("s-heavy".into()),
        });
    }
    assert_eq!(s.taint.len(), 100);
    s.untrusted_text.push(&text_of(
        &[
            "bob: the ingest dashboard has a gap every night around 02:10, is anyone else seeing this?",
            "erin: same here, our exports were late this morning; I thought it was the VPN again",
            "frank: could be compaction, it runs on shard 7 at 02:00. Ticket ENG-4411 has details.",
            "bob: thanks! do we know if data is lost or just delayed? the report for finance is due friday",
        ],
        64 * 1024,
    ));
    s.trusted_text.push(&text_of(
        &[
            "2026-01-15T02:10:03Z WARN ingest-worker[4182]: upstream timeout after 30s (shard=7, retry=1)",
            "2026-01-15T02:12:00Z INFO compactor[77]: compaction of shard 7 in progress (segments=412)",
            "docs/runbooks/ingest.md: the worker parks batches after three retries; the morning job replays them",
        ],
        64 * 1024,
    ));
    s.untrusted_input = true;
    s.sensitive_read = true;
    s.calls = 20;
    s.allowed = 20;
    s
}

struct Case {
    name: &'static str,
    what: &'static str,
    call: Call,
    session: SessionState,
    /// Decided by the engine whose policies read `context.args`.
    reads_args: bool,
}

struct Fixture {
    engine: Engine,
    args_engine: Engine,
    mission: Mission,
    usage: MissionUsage,
    breakers: Breakers,
    cases: Vec<Case>,
}

impl Fixture {
    fn build() -> Fixture {
        let t = Instant::now();
        let engine = load_acme();
        let args_engine = load_acme_reading_args();
        eprintln!(
            "loaded examples/acme ({} policies, {} users) in {:.2?}",
            engine.config().policies.len(),
            engine.config().directory.user_count(),
            t.elapsed()
        );
        let mission = engine
            .grant(
                "m-flow",
                "answer-forum-question",
                "forum-helper",
                "alice",
                "Help me answer Bob's question in T-1042 on eng-help",
                NOW_MS - 600_000,
            )
            .unwrap();
        let fresh = SessionState::new("s-fresh", "m-flow");
        let heavy = heavy_session();
        let mut one_label = SessionState::new("s-one", "m-flow");
        one_label.add_label(LabelSource {
            label: "channel:x0".into(),
            source: "forum.read_thread".into(),
            call: 1,
            at_ms: NOW_MS - 60_000,
            session: None,
        });
        let call = |args: Value| Call::new("forum", "post_reply", args);
        let cases = vec![
            Case {
                name: "fresh_tiny",
                what: "fresh session, tiny arguments",
                call: call(args_tiny()),
                session: fresh.clone(),
                reads_args: false,
            },
            Case {
                name: "fresh_4k_args",
                what: "fresh session, 4 KB arguments",
                call: call(args_4k()),
                session: fresh,
                reads_args: false,
            },
            Case {
                name: "one_label_ask",
                what: "1 uncleared label in taint, tiny arguments",
                call: call(args_tiny()),
                session: one_label,
                reads_args: false,
            },
            Case {
                name: "heavy_tiny",
                what: "100 labels + 2×64 KiB text, tiny arguments",
                call: call(args_tiny()),
                session: heavy.clone(),
                reads_args: false,
            },
            Case {
                name: "heavy_4k_args",
                what: "100 labels + 2×64 KiB text, 4 KB arguments",
                call: call(args_4k()),
                session: heavy.clone(),
                reads_args: false,
            },
            Case {
                name: "heavy_tiny_read",
                what: "heavy_tiny, a policy reads `context.args`",
                call: call(args_tiny()),
                session: heavy.clone(),
                reads_args: true,
            },
            Case {
                name: "heavy_4k_args_read",
                what: "heavy_4k_args, a policy reads `context.args` (body summarised)",
                call: call(args_4k()),
                session: heavy,
                reads_args: true,
            },
        ];
        let f = Fixture {
            engine,
            args_engine,
            mission,
            usage: MissionUsage::default(),
            breakers: Breakers::default(),
            cases,
        };
        let first = f.decide(&f.cases[0]);
        if first.decision != Outcome::Allow {
            panic!(
                "the fresh, tiny post_reply must be allowed: {:?} {:?}",
                first.decision, first.reasons
            );
        }
        for c in &f.cases {
            let d = f.decide(c);
            eprintln!(
                "{:<14} args {:>5} B, taint {:>3} labels, flow.labels {:>3}: {} {:?}",
                c.name,
                serde_json::to_string(&c.call.args).unwrap().len(),
                c.session.taint.len(),
                d.flow.labels.len(),
                d.decision,
                d.policies
            );
            if d.decision == Outcome::Deny {
                panic!("{}: unexpectedly denied: {:?}", c.name, d.reasons);
            }
        }
        f
    }

    fn engine(&self, c: &Case) -> &Engine {
        if c.reads_args {
            &self.args_engine
        } else {
            &self.engine
        }
    }

    fn decide(&self, c: &Case) -> Decision {
        self.engine(c)
            .decide(
                c.call.clone(),
                &self.mission,
                &c.session,
                &self.usage,
                &self.breakers,
                NOW_MS,
            )
            .decision
    }
}

fn fixture() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(Fixture::build)
}

fn eng_help() -> Audience {
    Audience {
        channels: vec!["eng-help".into()],
        ..Audience::default()
    }
}

fn flow_benches(c: &mut Criterion) {
    let f = fixture();
    let mut g = c.benchmark_group("flow");
    for case in &f.cases {
        g.bench_with_input(BenchmarkId::new("decide", case.name), case, |b, case| {
            b.iter(|| {
                black_box(f.engine(case).decide(
                    black_box(case.call.clone()),
                    &f.mission,
                    &case.session,
                    &f.usage,
                    &f.breakers,
                    NOW_MS,
                ))
            })
        });
    }
    // The parts: the detector scan of the 4 KB body, and the exposure of eng-help's audience.
    let body = body_4k();
    let detectors = &f.engine.config().detectors;
    g.bench_function("part/scan_4k_body", |b| {
        b.iter(|| black_box(detectors.scan(black_box(&body))))
    });
    let dir = &f.engine.config().directory;
    let aud = eng_help();
    let one: BTreeSet<Label> = ["channel:eng-help".into()].into();
    let heavy = &f.cases[4].session;
    let hundred: BTreeSet<Label> = heavy
        .taint
        .keys()
        .filter(|l| &***l != "public")
        .cloned()
        .collect();
    g.bench_function("part/exposure_1_label", |b| {
        b.iter(|| black_box(dir.exposure(&aud, black_box(&one))))
    });
    g.bench_function("part/exposure_99_labels", |b| {
        b.iter(|| black_box(dir.exposure(&aud, black_box(&hundred))))
    });
    g.finish();
}

criterion_group!(benches, flow_benches);

struct Pct {
    p50: f64,
    p99: f64,
    mean: f64,
}

fn time_raw(runs: usize, mut f: impl FnMut()) -> Vec<u64> {
    let mut ns = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f();
        ns.push(t.elapsed().as_nanos() as u64);
    }
    ns
}

fn pct(mut ns: Vec<u64>) -> Pct {
    let mean = ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1000.0;
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
    Pct {
        p50: at(0.5),
        p99: at(0.99),
        mean,
    }
}

fn time_each(runs: usize, f: impl FnMut()) -> Pct {
    pct(time_raw(runs, f))
}

/// Cedar for both principals over the Acme slices, as `decide` runs it.
fn cedar_both(f: &Fixture, context: &Context) -> usize {
    let cfg = f.engine.config();
    let e = cfg.directory.entities();
    let agent = EntityUid::from_str("Agent::\"forum-helper\"").unwrap();
    let user = EntityUid::from_str("User::\"alice\"").unwrap();
    let action = EntityUid::from_str("Action::\"forum.post_reply\"").unwrap();
    let resource = EntityUid::from_str("Channel::\"eng-help\"").unwrap();
    let anc = cfg.directory.ancestors("alice");
    let groups = [
        EntityUid::from_str("Action::\"publish\"").unwrap(),
        EntityUid::from_str("Action::\"forum\"").unwrap(),
    ];
    let (a, b) = cfg.policies.evaluate_pair(
        &agent,
        &user,
        &anc,
        &action,
        &groups,
        &resource,
        context.clone(),
        e,
    );
    a.permits.len() + b.permits.len() + a.asks.len() + b.asks.len()
}

fn percentile_pass() {
    let f = fixture();
    // The cases are timed in interleaved rounds, so that noise from other work on the machine
    // falls on every case alike.
    const ROUNDS: usize = 20;
    for c in &f.cases {
        for _ in 0..2_000 {
            black_box(f.decide(c));
        }
    }
    let mut ns: Vec<Vec<u64>> = vec![Vec::new(); f.cases.len()];
    for _ in 0..ROUNDS {
        for (i, c) in f.cases.iter().enumerate() {
            ns[i].extend(time_raw(PERCENTILE_RUNS / ROUNDS, || {
                black_box(f.engine(c).decide(
                    black_box(c.call.clone()),
                    &f.mission,
                    &c.session,
                    &f.usage,
                    &f.breakers,
                    NOW_MS,
                ));
            }));
        }
    }
    let mut rows = Vec::new();
    for (i, c) in f.cases.iter().enumerate() {
        rows.push((c, f.decide(c).decision, pct(std::mem::take(&mut ns[i]))));
    }
    let body = body_4k();
    let detectors = &f.engine.config().detectors;
    let scan = time_each(PERCENTILE_RUNS, || {
        black_box(detectors.scan(black_box(&body)));
    });
    // The same scan without normalised views (Unicode, escapes, spaced, reversed): what the
    // scan cost before they existed, timed in the same run.
    let plain = time_each(PERCENTILE_RUNS, || {
        black_box(detectors.scan_without_views(black_box(&body)));
    });
    let links = time_each(PERCENTILE_RUNS, || {
        black_box(warden_core::catalog::find_urls(black_box(&body)));
    });
    let dir = &f.engine.config().directory;
    let aud = eng_help();
    let hundred: BTreeSet<Label> = f.cases[4]
        .session
        .taint
        .keys()
        .filter(|l| &***l != "public")
        .cloned()
        .collect();
    let expo = time_each(PERCENTILE_RUNS, || {
        black_box(dir.exposure(&aud, black_box(&hundred)));
    });

    // Resolve + flow + context (as `decide` builds it), and Cedar over that context, for the
    // one-label and the heavy session.
    let mut ctx_rows = Vec::new();
    for (label, case) in [
        ("1 flow label", 2usize),
        ("100 flow labels + 99 exposed", 4),
    ] {
        let c = &f.cases[case];
        let p = time_each(PERCENTILE_RUNS, || {
            black_box(
                f.engine
                    .policy_context(&c.call, &f.mission, &c.session, &f.usage, NOW_MS)
                    .unwrap(),
            );
        });
        ctx_rows.push((
            format!("`Engine::policy_context` (resolve, flow, exposure, context), {label}"),
            p,
        ));
        let (_, cx) = f
            .engine
            .policy_context(&c.call, &f.mission, &c.session, &f.usage, NOW_MS)
            .unwrap();
        let p = time_each(PERCENTILE_RUNS, || {
            black_box(cedar_both(f, black_box(&cx)));
        });
        ctx_rows.push((format!("Cedar ×2 sliced, {label}"), p));
    }

    let big_call = &f.cases[1].call;
    let p = time_each(PERCENTILE_RUNS, || {
        black_box(black_box(big_call).clone().digest());
    });
    ctx_rows.push(("clone + `Call::digest` of the 4 KB call".to_string(), p));
    let heavy = &f.cases[4].session;
    let p = time_each(PERCENTILE_RUNS, || {
        black_box(heavy.taint.values().cloned().collect::<Vec<LabelSource>>());
    });
    ctx_rows.push((
        "clone + drop the 100 label sources a decision's flow facts carry".to_string(),
        p,
    ));

    let mut out = String::new();
    writeln!(out).unwrap();
    writeln!(out, "## flow: `forum.post_reply` to eng-help (forum-helper for alice, answer-forum-question), Acme config, one core, {PERCENTILE_RUNS} decisions timed one by one per case (in 20 interleaved rounds)").unwrap();
    writeln!(out).unwrap();
    writeln!(
        out,
        "| case | session / arguments | outcome | p50 µs | p99 µs | mean µs |"
    )
    .unwrap();
    writeln!(out, "|---|---|---|---:|---:|---:|").unwrap();
    for (c, outcome, p) in &rows {
        writeln!(
            out,
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} |",
            c.name, c.what, outcome, p.p50, p.p99, p.mean
        )
        .unwrap();
    }
    writeln!(out).unwrap();
    let base = &rows[0].2;
    writeln!(out, "| added over fresh_tiny | p50 µs | p99 µs |").unwrap();
    writeln!(out, "|---|---:|---:|").unwrap();
    for (c, _, p) in rows.iter().skip(1) {
        writeln!(
            out,
            "| {} | {:+.1} | {:+.1} |",
            c.name,
            p.p50 - base.p50,
            p.p99 - base.p99
        )
        .unwrap();
    }
    // The same split at equal arguments: what the session's labels and text add, and what the
    // 4 KB of arguments add (their detector scan and their share of the call digest).
    let (fresh4k, heavy_t, heavy4k) = (&rows[1].2, &rows[3].2, &rows[4].2);
    writeln!(
        out,
        "| heavy_4k_args − fresh_4k_args (the session's 100 labels and 128 KiB of text, equal arguments) | {:+.1} | {:+.1} |",
        heavy4k.p50 - fresh4k.p50,
        heavy4k.p99 - fresh4k.p99
    )
    .unwrap();
    writeln!(
        out,
        "| heavy_4k_args − heavy_tiny (4 KB of arguments, equal session) | {:+.1} | {:+.1} |",
        heavy4k.p50 - heavy_t.p50,
        heavy4k.p99 - heavy_t.p99
    )
    .unwrap();
    let (tiny_read, read4k) = (&rows[5].2, &rows[6].2);
    writeln!(
        out,
        "| heavy_tiny_read − heavy_tiny (a policy reads `context.args`, tiny arguments) | {:+.1} | {:+.1} |",
        tiny_read.p50 - heavy_t.p50,
        tiny_read.p99 - heavy_t.p99
    )
    .unwrap();
    writeln!(
        out,
        "| heavy_4k_args_read − heavy_4k_args (a policy reads `context.args`, 4 KB of arguments) | {:+.1} | {:+.1} |",
        read4k.p50 - heavy4k.p50,
        read4k.p99 - heavy4k.p99
    )
    .unwrap();
    writeln!(out).unwrap();
    let (r50, r99) = (read4k.p50 / heavy4k.p50, read4k.p99 / heavy4k.p99);
    writeln!(
        out,
        "Target: deciding with 4 KB of arguments that a policy reads stays within 2× of heavy_4k_args: p50 {r50:.2}×, p99 {r99:.2}×, {}",
        if r50 <= 2.0 && r99 <= 2.0 { "met" } else { "MISSED" }
    )
    .unwrap();
    writeln!(out).unwrap();
    writeln!(out, "| part (timed alone) | p50 µs | p99 µs |").unwrap();
    writeln!(out, "|---|---:|---:|").unwrap();
    writeln!(
        out,
        "| detector scan of the 4 KB body | {:.1} | {:.1} |",
        scan.p50, scan.p99
    )
    .unwrap();
    writeln!(
        out,
        "| detector scan of the 4 KB body without normalised views | {:.1} | {:.1} |",
        plain.p50, plain.p99
    )
    .unwrap();
    writeln!(
        out,
        "| links found in the 4 KB body (`find_urls`) | {:.1} | {:.1} |",
        links.p50, links.p99
    )
    .unwrap();
    writeln!(
        out,
        "| exposure of eng-help (3,000 readers), 99 labels | {:.1} | {:.1} |",
        expo.p50, expo.p99
    )
    .unwrap();
    for (label, p) in &ctx_rows {
        writeln!(out, "| {label} | {:.1} | {:.1} |", p.p50, p.p99).unwrap();
    }
    writeln!(out).unwrap();
    let worst = &rows[4].2;
    // heavy_4k_args as it was before normalised views: the same decision less what the views
    // add to its scan.
    let (before50, before99) = (
        worst.p50 - (scan.p50 - plain.p50),
        worst.p99 - (scan.p99 - plain.p99),
    );
    let (r50, r99) = (
        worst.p50 / before50.max(1e-9),
        worst.p99 / before99.max(1e-9),
    );
    writeln!(
        out,
        "Target: heavy_4k_args with normalised views stays within 2× of it without them ({before50:.1} / {before99:.1} µs): p50 {r50:.2}×, p99 {r99:.2}×, {}",
        if r50 <= 2.0 && r99 <= 2.0 { "met" } else { "MISSED" }
    )
    .unwrap();
    let added = worst.p99 - base.p99;
    writeln!(
        out,
        "Target: flow adds ≤ 20 µs at p99 (heavy_4k_args − fresh_tiny): {:+.1} µs, {}",
        added,
        if added <= 20.0 { "met" } else { "MISSED" }
    )
    .unwrap();
    let probe = interruptions(std::time::Duration::from_secs(2));
    writeln!(
        out,
        "\nThis thread's core, same run: {:.0} interruptions per second of ≥ {} µs each (p50 {:.1} µs, p90 {:.1} µs, {:.2} % of the time). A run of T µs is hit with probability ≈ T × {:.0}/s: {:.1} % for heavy_4k_args (p50 {:.1} µs), {:.1} % for fresh_tiny (p50 {:.1} µs).",
        probe.per_sec,
        GAP_NS / 1000,
        probe.p50_us,
        probe.p90_us,
        probe.lost_share * 100.0,
        probe.per_sec,
        worst.p50 * 1e-6 * probe.per_sec * 100.0,
        worst.p50,
        base.p50 * 1e-6 * probe.per_sec * 100.0,
        base.p50,
    )
    .unwrap();
    println!("{out}");
}

/// A gap in a tight clock-reading loop longer than this counts as an interruption.
const GAP_NS: u64 = 2_000;

/// What interrupts this thread on its core: the machine's timer ticks, interrupts and the
/// hypervisor. Measured by reading the clock in a tight loop and keeping the gaps.
struct Interruptions {
    per_sec: f64,
    p50_us: f64,
    p90_us: f64,
    lost_share: f64,
}

fn interruptions(span: std::time::Duration) -> Interruptions {
    let start = Instant::now();
    let mut last = start;
    let mut gaps: Vec<u64> = Vec::new();
    loop {
        let now = Instant::now();
        let gap = now.duration_since(last).as_nanos() as u64;
        if gap >= GAP_NS {
            gaps.push(gap);
        }
        last = now;
        if now.duration_since(start) >= span {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let lost: u64 = gaps.iter().sum();
    gaps.sort_unstable();
    let at = |q: f64| {
        gaps.get(((gaps.len().max(1) - 1) as f64 * q).round() as usize)
            .map_or(0.0, |g| *g as f64 / 1000.0)
    };
    Interruptions {
        per_sec: gaps.len() as f64 / secs,
        p50_us: at(0.5),
        p90_us: at(0.9),
        lost_share: lost as f64 / 1e9 / secs,
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if std::env::args().any(|a| a == "--bench") {
        percentile_pass();
    }
}
