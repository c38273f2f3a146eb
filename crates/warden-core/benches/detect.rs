//! Throughput of the content detectors over ~1 MB of generated text.
//!
//! * `mixed`: log lines, forum prose and JSON lines, with a few secrets, PII, a
//!   privileged-advice sentence and a base64-encoded `.env` sprinkled in;
//! * `logs`, `prose`, `json`: each kind alone;
//! * `prose-dense`: a stress case where every few words is an advice verb or object.
//!
//! Run: `cargo bench -p warden-core --bench detect -- --warm-up-time 1 --measurement-time 3`

#![allow(missing_docs)]

/// The allocator of the `warden` binary, so the bench measures what runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::fmt::Write as _;
use std::hint::black_box;

use base64::Engine as _;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use warden_core::detect::{Detectors, ScanLimits};

/// A tiny deterministic generator, so every run scans the same text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

const USERS: &[&str] = &[
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "svc-deploy",
    "ops-bot",
];
const PATHS: &[&str] = &[
    "/api/v1/users",
    "/api/v1/threads/T-1042/replies",
    "/healthz",
    "/api/v2/logs/query",
    "/static/js/app.3f9a1c.js",
    "/login",
    "/api/v1/files/docs/public/faq.md",
];
const LEVELS: &[&str] = &["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
const MSGS: &[&str] = &[
    "request completed",
    "cache miss, fetching from upstream",
    "user authenticated via sso",
    "access denied: missing scope logs:read",
    "retrying connection to db-primary (attempt 2/5)",
    "rate limit exceeded for client",
    "token refreshed",
    "deploy pipeline finished",
];
/// Everyday words, most of any forum post.
const COMMON: &[&str] = &[
    "the",
    "the",
    "the",
    "a",
    "a",
    "to",
    "to",
    "and",
    "and",
    "of",
    "of",
    "in",
    "in",
    "is",
    "is",
    "it",
    "it",
    "that",
    "for",
    "on",
    "with",
    "as",
    "this",
    "was",
    "we",
    "you",
    "be",
    "are",
    "have",
    "not",
    "but",
    "they",
    "from",
    "or",
    "at",
    "by",
    "I",
    "my",
    "our",
    "your",
    "if",
    "when",
    "so",
    "then",
    "there",
    "here",
    "what",
    "which",
    "who",
    "how",
    "why",
    "can",
    "could",
    "would",
    "should",
    "will",
    "just",
    "also",
    "still",
    "only",
    "some",
    "any",
    "all",
    "more",
    "most",
    "other",
    "one",
    "two",
    "first",
    "last",
    "new",
    "old",
    "same",
    "good",
    "bad",
    "right",
    "wrong",
    "sure",
    "maybe",
    "probably",
    "again",
    "after",
    "before",
    "since",
    "until",
    "while",
    "about",
    "into",
    "over",
    "under",
    "between",
    "through",
    "think",
    "know",
    "see",
    "look",
    "looks",
    "seems",
    "like",
    "need",
    "want",
    "try",
    "tried",
    "works",
    "worked",
    "broke",
    "fixed",
    "happened",
    "yesterday",
    "today",
    "morning",
    "week",
    "time",
    "thing",
    "way",
    "problem",
    "issue",
    "idea",
    "case",
    "part",
    "point",
    "thanks",
    "please",
    "help",
    "question",
    "answer",
    "reply",
    "post",
    "people",
    "someone",
    "everything",
];
/// Work words.
const TECH: &[&str] = &[
    "deploy",
    "service",
    "cluster",
    "error",
    "logs",
    "config",
    "timeout",
    "database",
    "migration",
    "release",
    "team",
    "ticket",
    "thread",
    "build",
    "test",
    "tests",
    "pipeline",
    "latency",
    "dashboard",
    "alert",
    "incident",
    "review",
    "branch",
    "merge",
    "docs",
    "staging",
    "production",
    "rollback",
    "cache",
    "queue",
    "worker",
    "endpoint",
    "request",
    "response",
    "retry",
    "version",
    "upgrade",
    "node",
    "pod",
    "container",
    "metrics",
    "trace",
    "commit",
    "repo",
    "script",
    "job",
    "cron",
    "schema",
    "index",
    "query",
    "latency",
    "login",
    "session",
    "key",
    "token",
    "password",
    "user",
    "group",
    "file",
    "folder",
];
/// Verbs that can start privileged advice, and the words such advice needs: in real
/// posts a small share of the words.
const VERBS: &[&str] = &[
    "add", "make", "set", "change", "open", "update", "remove", "allow", "give", "share", "turn",
    "switch", "enable", "disable", "grant",
];
const OBJECTS: &[&str] = &[
    "access",
    "public",
    "admin",
    "everyone",
    "permissions",
    "security",
    "root",
    "auth",
];
/// The dense stress vocabulary: every seventh word a verb, many objects.
const DENSE: &[&str] = &[
    "the",
    "a",
    "to",
    "and",
    "of",
    "in",
    "is",
    "it",
    "that",
    "for",
    "on",
    "with",
    "as",
    "this",
    "was",
    "we",
    "you",
    "be",
    "are",
    "have",
    "not",
    "but",
    "they",
    "from",
    "or",
    "at",
    "by",
    "deploy",
    "service",
    "cluster",
    "error",
    "logs",
    "config",
    "timeout",
    "database",
    "migration",
    "release",
    "team",
    "ticket",
    "thread",
    "build",
    "test",
    "add",
    "make",
    "set",
    "change",
    "open",
    "share",
    "give",
    "allow",
    "update",
    "remove",
    "turn",
    "switch",
    "enable",
    "access",
    "public",
    "admin",
    "group",
    "read",
    "write",
    "everyone",
    "password",
    "token",
    "key",
];

fn word<'a>(r: &mut Rng, dense: bool) -> &'a str {
    if dense {
        return r.pick(DENSE);
    }
    match r.below(100) {
        0..=1 => r.pick(VERBS),
        2 => r.pick(OBJECTS),
        3..=12 => r.pick(TECH),
        _ => r.pick(COMMON),
    }
}
const SENTENCE_ENDS: &[&str] = &[". ", ". ", "? ", "! ", ".\n", ", ", "; "];

fn log_line(r: &mut Rng, out: &mut String) {
    let _ = writeln!(
        out,
        "2024-05-{:02}T{:02}:{:02}:{:02}.{:03}Z {} [{}] req={:016x} user={} ip=10.{}.{}.{} {} {} status={} dur_ms={} msg=\"{}\"",
        1 + r.below(28),
        r.below(24),
        r.below(60),
        r.below(60),
        r.below(1000),
        r.pick(LEVELS),
        r.pick(&["api", "gateway", "worker", "auth"]),
        r.next(),
        r.pick(USERS),
        r.below(256),
        r.below(256),
        r.below(256),
        r.pick(&["GET", "POST", "PUT"]),
        r.pick(PATHS),
        r.pick(&["200", "200", "201", "304", "403", "404", "500"]),
        r.below(2000),
        r.pick(MSGS),
    );
}

fn prose(r: &mut Rng, out: &mut String, dense: bool) {
    let _ = write!(out, "{} wrote: ", r.pick(USERS));
    for _ in 0..(3 + r.below(5)) {
        let n = 6 + r.below(14);
        for i in 0..n {
            let w = word(r, dense);
            if i == 0 {
                let mut c = w.chars();
                if let Some(f) = c.next() {
                    out.push(f.to_ascii_uppercase());
                    out.push_str(c.as_str());
                }
            } else {
                out.push_str(w);
            }
            out.push(' ');
        }
        out.pop();
        out.push_str(r.pick(SENTENCE_ENDS));
        if r.below(10) == 0 {
            let _ = write!(
                out,
                "It took {} ms on {} nodes (v1.{}.{}). ",
                r.below(900),
                r.below(64),
                r.below(20),
                r.below(9)
            );
        }
    }
    out.push('\n');
}

fn json_line(r: &mut Rng, out: &mut String) {
    let _ = writeln!(
        out,
        r#"{{"ts":{},"level":"{}","user":"{}","thread":"T-{}","tokens_used":{},"max_tokens":4096,"latency_ms":{:.2},"trace_id":"{:016x}{:016x}","tags":["{}","{}"],"ok":{}}}"#,
        1_714_000_000 + r.below(1_000_000),
        r.pick(LEVELS).to_ascii_lowercase(),
        r.pick(USERS),
        1000 + r.below(9000),
        r.below(5000),
        r.below(100_000) as f64 / 100.0,
        r.next(),
        r.next(),
        r.pick(TECH),
        r.pick(TECH),
        r.below(2) == 0,
    );
}

/// A few real findings, sprinkled rarely, as in real traffic.
const SPRINKLES: &[&str] = &[
    "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n",
    "export GITHUB_TOKEN=ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789\n",
    "contact carol@acme.example or call +1 (415) 555-2671\n",
    "To fix it, grant all-employees read access to the auth logs.\n",
    "DATABASE_URL=postgres://billing:Xk29fLq81@db-primary:5432/billing\n",
];

fn corpus(kind: &str, target: usize) -> String {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = String::with_capacity(target + 1024);
    let mut n = 0usize;
    while out.len() < target {
        match kind {
            "logs" => log_line(&mut r, &mut out),
            "prose" => prose(&mut r, &mut out, false),
            "prose-dense" => prose(&mut r, &mut out, true),
            "json" => json_line(&mut r, &mut out),
            _ => match r.below(3) {
                0 => log_line(&mut r, &mut out),
                1 => prose(&mut r, &mut out, false),
                _ => json_line(&mut r, &mut out),
            },
        }
        n += 1;
        if kind == "mixed" && n.is_multiple_of(1500) {
            out.push_str(r.pick(SPRINKLES));
        }
        if kind == "mixed" && n % 2000 == 1000 {
            // A base64-encoded .env file, as an agent might paste it.
            let dotenv =
                "DB_PASSWORD=Sup3rS3cretPassw0rd\nSTRIPE_KEY=sk_live_4eC39HqLyjWDarjtT1zdp7dc\n";
            let _ = writeln!(
                out,
                "attachment: {}",
                base64::engine::general_purpose::STANDARD.encode(dotenv)
            );
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    // No cap on findings: the whole text is always scanned (a capped scan may stop early).
    let detectors = Detectors::new(ScanLimits {
        max_bytes: 4 << 20,
        max_findings: usize::MAX,
        ..ScanLimits::default()
    });
    let mut group = c.benchmark_group("detect");
    for kind in ["mixed", "logs", "prose", "json", "prose-dense"] {
        let text = corpus(kind, 1 << 20);
        let scan = detectors.scan(&text);
        eprintln!(
            "{kind}: {} bytes, labels {:?}, {} findings, truncated {}",
            text.len(),
            scan.labels,
            scan.findings.len(),
            scan.truncated
        );
        // Best of a few runs: on a busy machine the fastest run is the one that had a
        // core to itself, so it says more about the code than the mean does.
        let best = (0..15)
            .map(|_| {
                let start = std::time::Instant::now();
                black_box(detectors.scan(black_box(&text)));
                start.elapsed()
            })
            .min()
            .unwrap_or_default();
        eprintln!(
            "{kind}: best of 15 runs {:.1} MiB/s",
            text.len() as f64 / best.as_secs_f64().max(1e-9) / (1 << 20) as f64
        );
        let plain = (0..15)
            .map(|_| {
                let start = std::time::Instant::now();
                black_box(detectors.scan_without_views(black_box(&text)));
                start.elapsed()
            })
            .min()
            .unwrap_or_default();
        eprintln!(
            "{kind}: without normalised views, best of 15 runs {:.1} MiB/s",
            text.len() as f64 / plain.as_secs_f64().max(1e-9) / (1 << 20) as f64
        );
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(kind, |b| b.iter(|| detectors.scan(black_box(&text))));
        group.bench_function(format!("{kind}-without-views"), |b| {
            b.iter(|| detectors.scan_without_views(black_box(&text)))
        });
    }
    // 4 KB of arguments, as a decide scans them: with and without views, and a Unicode
    // variant (non-ASCII text gets its unicode view built and scanned).
    let small = Detectors::default();
    for (name, text) in [
        ("args-4k", corpus("mixed", 4 << 10)),
        (
            "args-4k-unicode",
            corpus("mixed", 4 << 10)
                .replace("the", "thé")
                .replace(" a ", " — "),
        ),
    ] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(name, |b| b.iter(|| small.scan(black_box(&text))));
        group.bench_function(format!("{name}-without-views"), |b| {
            b.iter(|| small.scan_without_views(black_box(&text)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
