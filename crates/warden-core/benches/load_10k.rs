//! Start-up: a cold load of N generated policies (10,000 by default) — `Config::load` (catalog,
//! schema, directory, parse, ids, strict validation, slicing) and `Engine::new` — beside
//! Cedar's own parse and strict validation of the same policy set and schema, in the same run.
//!
//! The configurations are those of the `decide` bench (`generated`). Bare Cedar gets the
//! schema Warden generates (as text) and every policy Warden loads, the agent ceilings
//! included (as text), and runs `Schema::from_cedarschema_str`, `PolicySet::from_str` and
//! `Validator::validate` in strict mode.
//!
//! Run with `cargo bench -p warden-core --bench load_10k` (10 samples of each; a minute or two).
//! `WARDEN_BENCH_SIZES=1000,2000,10000` picks the policy counts. A table of single cold loads
//! per N (with Cedar's parse and validation timed apart) is printed before criterion runs.
//! Under `cargo test --benches` (no `--bench` argument) only N = 100 is built and each
//! benchmark runs once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

/// The allocator of the `warden` binary, so the bench measures what runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::str::FromStr;
use std::time::{Duration, Instant};

use cedar_policy::{PolicySet, Schema, ValidationMode, Validator};
use criterion::{BenchmarkId, Criterion, SamplingMode};
use warden_core::policy::schema_text;
use warden_core::{Config, Engine};

mod generated;
use generated::{MemSources, Shape, PACK_POLICIES};

/// One generated configuration, and the same policies and schema as Cedar text.
struct Input {
    n: usize,
    toml: String,
    sources: MemSources,
    schema: String,
    policies: String,
}

impl Input {
    fn new(n: usize) -> Input {
        let s = Shape::new(n);
        let (toml, sources) = generated::files(&s);
        let mut input = Input {
            n,
            toml,
            sources,
            schema: String::new(),
            policies: String::new(),
        };
        let engine = input.warden();
        let cfg = engine.config();
        assert_eq!(cfg.policies.len(), n + PACK_POLICIES, "N={n}: policy count");
        input.schema = schema_text(&cfg.catalog);
        input.policies = cfg.policies.policy_set().to_string();
        assert_eq!(
            input.cedar().num_of_policies(),
            n + PACK_POLICIES,
            "N={n}: bare Cedar count"
        );
        input
    }

    /// Warden's cold load.
    fn warden(&self) -> Engine {
        match Config::load("warden.toml", &self.toml, &self.sources) {
            Ok(c) => Engine::new(c),
            Err(e) => panic!(
                "N={}: the generated configuration does not load: {e:?}",
                self.n
            ),
        }
    }

    /// Cedar's parse and strict validation of the same schema and policies.
    fn cedar(&self) -> PolicySet {
        let (set, v) = self.cedar_parse();
        self.cedar_validate(&set, v);
        set
    }

    fn cedar_parse(&self) -> (PolicySet, Validator) {
        let (schema, _) = Schema::from_cedarschema_str(&self.schema).unwrap();
        let set = PolicySet::from_str(&self.policies).unwrap();
        (set, Validator::new(schema))
    }

    fn cedar_validate(&self, set: &PolicySet, v: Validator) {
        let r = v.validate(set, ValidationMode::Strict);
        assert!(r.validation_passed(), "N={}: bare Cedar validation", self.n);
    }
}

fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The policy counts measured; `WARDEN_BENCH_SIZES=1000,2000` picks some.
fn sizes() -> Vec<usize> {
    if let Ok(v) = std::env::var("WARDEN_BENCH_SIZES") {
        return v.split(',').filter_map(|x| x.trim().parse().ok()).collect();
    }
    if bench_mode() {
        vec![10_000]
    } else {
        vec![100]
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (nanoseconds on the CPU):
/// on a machine shared with other work, wall time also counts the time spent waiting for a
/// core. `None` where the kernel does not keep it.
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Wall and CPU time of `f`, as "wall (cpu)" in milliseconds.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, String) {
    let cpu = thread_cpu();
    let t = Instant::now();
    let out = f();
    let wall = t.elapsed();
    let text = match (cpu, thread_cpu()) {
        (Some(a), Some(b)) => format!("{} ({})", ms(wall), ms(b.saturating_sub(a))),
        _ => ms(wall),
    };
    (out, wall, text)
}

/// One cold load of each, timed once, with Cedar's parse and validation apart: wall time and,
/// in parentheses, the CPU time of the thread.
fn single_loads(inputs: &[Input]) {
    println!("| N | policies | Warden load ms (CPU) | Cedar parse ms (CPU) | Cedar validate ms (CPU) | Cedar total ms | Warden / Cedar |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for i in inputs {
        let (engine, warden, warden_text) = timed(|| i.warden());
        black_box(engine);
        let ((set, v), parse, parse_text) = timed(|| i.cedar_parse());
        let ((), validate, validate_text) = timed(|| i.cedar_validate(&set, v));
        let cedar = parse + validate;
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.2}× |",
            i.n,
            i.n + PACK_POLICIES,
            warden_text,
            parse_text,
            validate_text,
            ms(cedar),
            warden.as_secs_f64() / cedar.as_secs_f64()
        );
    }
    println!();
}

/// With `WARDEN_BENCH_WRITE=DIR`, write each generated configuration to `DIR/<N>/` so that
/// the binary's own cold start can be timed (`warden policy validate --config DIR/<N>/warden.toml`).
fn write_out(inputs: &[Input]) {
    let Some(dir) = std::env::var_os("WARDEN_BENCH_WRITE") else {
        return;
    };
    for i in inputs {
        let root = std::path::Path::new(&dir).join(i.n.to_string());
        let files = std::iter::once(("warden.toml", &i.toml))
            .chain(i.sources.0.iter().map(|(p, t)| (p.as_str(), t)));
        for (path, text) in files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().expect("a folder")).expect("create the folder");
            std::fs::write(&path, text).expect("write a generated file");
        }
        println!("wrote {}", root.display());
    }
}

fn main() {
    let inputs: Vec<Input> = sizes().into_iter().map(Input::new).collect();
    write_out(&inputs);
    if bench_mode() {
        single_loads(&inputs);
    }
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    let mut g = c.benchmark_group("load");
    g.sampling_mode(SamplingMode::Flat);
    for i in &inputs {
        g.bench_with_input(BenchmarkId::new("warden_load", i.n), i, |b, i| {
            b.iter_with_large_drop(|| i.warden())
        });
        g.bench_with_input(BenchmarkId::new("cedar_parse_validate", i.n), i, |b, i| {
            b.iter_with_large_drop(|| i.cedar())
        });
    }
    g.finish();
    c.final_summary();
}
