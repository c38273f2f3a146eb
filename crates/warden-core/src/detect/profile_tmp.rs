#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
use super::*;
use std::time::Instant;

fn time<F: FnMut() -> usize>(name: &str, bytes: usize, mut f: F) {
    let mut best = f64::MAX;
    let mut n = 0;
    for _ in 0..7 {
        let t = Instant::now();
        n = f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    eprintln!(
        "{name:>14}: {:8.1} MB/s  ({n} hits)",
        bytes as f64 / best / 1e6
    );
}

#[test]
#[ignore]
fn profile() {
    let c = COMPILED.as_ref().unwrap();
    for kind in ["mixed", "logs", "prose", "json"] {
        let text = std::fs::read(format!("/tmp/corpus_{kind}.txt")).unwrap();
        let n = text.len();
        eprintln!("== {kind}");
        time("tokens", n, || c.secrets.tokens.find_iter(&text).count());
        time("connection", n, || {
            c.secrets.connection.find_iter(&text).count()
        });
        time("email", n, || c.pii.email.find_iter(&text).count());
        time("phone_intl", n, || {
            c.pii.phone_intl.find_iter(&text).count()
        });
        time("combined", n, || c.combined.find_iter(&text).count());
        let mut counts = [0usize; 5];
        for m in c.combined.find_iter(&text) {
            let k = match Anchor::of(m.as_bytes()) {
                Anchor::Env => 0,
                Anchor::Object => 2,
                Anchor::Iban => 3,
                Anchor::Digits => 4,
            };
            counts[k] += 1;
        }
        eprintln!("    env/verb/object/iban/digits = {counts:?}");
        let lim = ScanLimits {
            max_findings: 100000,
            max_bytes: 1 << 30,
            ..ScanLimits::default()
        };
        time("encoded", n, || {
            let mut ctx = Ctx {
                limits: &lim,
                re: c,
                out: Scan::default(),
                budget: 1 << 30,
                work: usize::MAX,
            };
            encoded::scan(&text, 0, &mut ctx);
            ctx.out.findings.len()
        });
        time("ALL", n, || {
            Detectors::new(lim.clone()).scan_bytes(&text).findings.len()
        });
    }
}

#[test]
#[ignore]
fn profile_enc() {
    let c = COMPILED.as_ref().unwrap();
    for kind in ["json", "logs", "prose"] {
        let text = std::fs::read(format!("/tmp/corpus_{kind}.txt")).unwrap();
        let n = text.len();
        let lim = ScanLimits {
            max_findings: 100000,
            max_bytes: 1 << 30,
            ..ScanLimits::default()
        };
        // count runs >= 24
        let mut runs = 0;
        let mut len = 0;
        for w in text.split(|&b| !(b.is_ascii_alphanumeric() || b"+/-_".contains(&b))) {
            if w.len() >= 24 {
                runs += 1;
                len += w.len();
                if runs < 4 {
                    eprintln!("  run: {}", String::from_utf8_lossy(w));
                }
            }
        }
        eprintln!("{kind}: runs>=24: {runs}, total len {len}");
        time("encoded", n, || {
            let mut ctx = Ctx {
                limits: &lim,
                re: c,
                out: Scan::default(),
                budget: 1 << 30,
                work: usize::MAX,
            };
            encoded::scan(&text, 0, &mut ctx);
            ctx.out.findings.len()
        });
        time("looks_binary", n, || looks_binary(&text) as usize);
    }
}

#[test]
#[ignore]
fn profile_enc2() {
    let text = std::fs::read("/tmp/corpus_json.txt").unwrap();
    let runs: Vec<&[u8]> = text
        .split(|&b| !(b.is_ascii_alphanumeric() || b"+/-_".contains(&b)))
        .filter(|w| w.len() >= 24)
        .collect();
    let n = text.len();
    time("hexdecode", n, || {
        runs.iter()
            .filter(|r| hex::decode(&r[..32]).is_ok())
            .count()
    });
    time("hexdecode+textual", n, || {
        runs.iter()
            .filter(|r| encoded::textual(&hex::decode(&r[..32]).unwrap(), true))
            .count()
    });
    let c = COMPILED.as_ref().unwrap();
    let lim = ScanLimits {
        max_findings: 100000,
        max_bytes: 1 << 30,
        ..ScanLimits::default()
    };
    time("skiploop-only", n, || {
        let mut ctx = Ctx {
            limits: &lim,
            re: c,
            out: Scan::default(),
            budget: 1 << 30,
            work: usize::MAX,
        };
        encoded::scan(&text[..0], 0, &mut ctx);
        0
    });
}

#[test]
#[ignore]
fn profile_dfa() {
    let text = std::fs::read("/tmp/corpus_mixed.txt").unwrap();
    let n = text.len();
    for pat in [
        r"(?-u)[a-z]+qqzz",
        r"(?i-u)\b(?:grant|give|add)\b",
        r"(?i-u)(?:secret|token|pass)",
        r"(?-u)\b[0-9](?:[ -]?[0-9]){12,}\b",
    ] {
        let re = regex::bytes::Regex::new(pat).unwrap();
        time(&pat[..pat.len().min(14)], n, || re.find_iter(&text).count());
    }
    let c = COMPILED.as_ref().unwrap();
    time("combined", n, || c.combined.find_iter(&text).count());
    time("comb-is_match", n, || {
        c.combined.is_match(&text[..]) as usize
    });
}

#[test]
#[ignore]
fn profile_enc3() {
    let text = std::fs::read("/tmp/corpus_json.txt").unwrap();
    let n = text.len();
    let runs: Vec<&[u8]> = text
        .split(|&b| !(b.is_ascii_alphanumeric() || b"+/-_".contains(&b)))
        .filter(|w| w.len() >= 24)
        .collect();
    let c = COMPILED.as_ref().unwrap();
    let lim = ScanLimits {
        max_findings: 100000,
        max_bytes: 1 << 30,
        ..ScanLimits::default()
    };
    time("runs-only", n, || {
        let mut ctx = Ctx {
            limits: &lim,
            re: c,
            out: Scan::default(),
            budget: 1 << 30,
            work: usize::MAX,
        };
        for r in &runs {
            encoded::scan(r, 0, &mut ctx);
        }
        0
    });
    time("full", n, || {
        let mut ctx = Ctx {
            limits: &lim,
            re: c,
            out: Scan::default(),
            budget: 1 << 30,
            work: usize::MAX,
        };
        encoded::scan(&text, 0, &mut ctx);
        0
    });
    let mut t2 = text.clone();
    for b in t2.iter_mut() {
        if b.is_ascii_hexdigit() && b.is_ascii_lowercase() {
            *b = b'z';
        }
    }
    time("no-hex-runs", n, || {
        let mut ctx = Ctx {
            limits: &lim,
            re: c,
            out: Scan::default(),
            budget: 1 << 30,
            work: usize::MAX,
        };
        encoded::scan(&t2, 0, &mut ctx);
        0
    });
}

#[test]
#[ignore]
fn perf_prose() {
    let kind = std::env::var("KIND").unwrap_or("prose".into());
    let text = std::fs::read(format!("/tmp/corpus_{kind}.txt")).unwrap();
    let lim = ScanLimits {
        max_findings: 100000,
        max_bytes: 1 << 30,
        ..ScanLimits::default()
    };
    let d = Detectors::new(lim);
    let mut n = 0;
    let iters: usize = std::env::var("ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    for _ in 0..iters {
        n += d.scan_bytes(&text).findings.len();
    }
    eprintln!("{n}");
}

#[test]
#[ignore]
fn profile_adversarial() {
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let n = 1 << 20;
    let printable: Vec<u8> = (0..n).map(|_| (0x20 + rnd() % 95) as u8).collect();
    let bytes: Vec<u8> = (0..n).map(|_| rnd() as u8).collect();
    let alnum: Vec<u8> = (0..n)
        .map(|_| {
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[(rnd() % 62) as usize]
        })
        .collect();
    let digits: Vec<u8> = (0..n)
        .map(|_| b"0123456789 -"[(rnd() % 12) as usize])
        .collect();
    let words: Vec<u8> = (0..n / 8)
        .flat_map(|_| {
            let w: &[u8] = [
                &b"grant "[..],
                b"access ",
                b"public ",
                b"add ",
                b"token= ",
                b"admin ",
                b"everyone ",
                b"set ",
            ][(rnd() % 8) as usize];
            w.to_vec()
        })
        .collect();
    let b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        &printable[..n * 3 / 4],
    )
    .into_bytes();
    let lim = ScanLimits {
        max_findings: usize::MAX,
        max_bytes: 1 << 30,
        ..ScanLimits::default()
    };
    let d = Detectors::new(lim);
    for (name, t) in [
        ("printable", &printable),
        ("bytes", &bytes),
        ("alnum", &alnum),
        ("digits", &digits),
        ("words", &words),
        ("b64-of-printable", &b64),
    ] {
        time(name, t.len(), || d.scan_bytes(t).findings.len());
        let c = COMPILED.as_ref().unwrap();
        time("  combined", t.len(), || c.combined.find_iter(t).count());
        time("  tokens", t.len(), || c.secrets.tokens.find_iter(t).count());
        time("  email", t.len(), || c.pii.email.find_iter(t).count());
        time("  phone_intl", t.len(), || c.pii.phone_intl.find_iter(t).count());
        time("  conn", t.len(), || c.secrets.connection.find_iter(t).count());
    }
}

#[test]
#[ignore]
fn profile_digits() {
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut rnd = || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x };
    let n = 1 << 20;
    let digits: Vec<u8> = (0..n).map(|_| b"0123456789 -"[(rnd() % 12) as usize]).collect();
    let digits2: Vec<u8> = (0..n).map(|_| b"0123456789 -.()+"[(rnd() % 16) as usize]).collect();
    let logs = std::fs::read("/tmp/corpus_logs.txt").unwrap();
    for (name, t) in [("digits", &digits), ("digits2", &digits2), ("logs", &logs)] {
        for (pn, p) in [("card", pii::CARD), ("ssn", pii::SSN), ("phone", pii::PHONE_US), ("iban", pii::IBAN), ("cand", r"[0-9(][0-9 ().-]{7,}[0-9]"), ("cand2", r"(?:[0-9][ ().-]?){9,}"),
                        ("all3", &format!("{}|{}|{}", pii::CARD, pii::SSN, pii::PHONE_US))] {
            let re = regex::bytes::Regex::new(&format!("(?-u){p}")).unwrap();
            time(&format!("{name}/{pn}"), t.len(), || re.find_iter(t).count());
        }
    }
}
