#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
use super::*;
use std::time::Instant;

fn time<F: FnMut() -> usize>(name: &str, bytes: usize, mut f: F) {
    let mut best = f64::MAX;
    let mut n = 0;
    for _ in 0..5 {
        let t = Instant::now();
        n = f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    eprintln!("{name:>14}: {:8.1} MB/s  ({n} hits)", bytes as f64 / best / 1e6);
}

#[test]
#[ignore]
fn profile() {
    let c = COMPILED.as_ref().unwrap();
    for kind in ["logs", "prose", "json"] {
        let text = std::fs::read(format!("/tmp/corpus_{kind}.txt")).unwrap();
        let n = text.len();
        eprintln!("== {kind}");
        time("tokens", n, || c.secrets.tokens.find_iter(&text).count());
        time("connection", n, || c.secrets.connection.find_iter(&text).count());
        time("env", n, || c.secrets.env.find_iter(&text).count());
        time("email", n, || c.pii.email.find_iter(&text).count());
        time("phone_intl", n, || c.pii.phone_intl.find_iter(&text).count());
        time("phone_us", n, || c.pii.phone_us.find_iter(&text).count());
        time("ssn", n, || c.pii.ssn.find_iter(&text).count());
        time("card", n, || c.pii.card.find_iter(&text).count());
        time("iban", n, || c.pii.iban.find_iter(&text).count());
        time("trigger", n, || c.advice.trigger.find_iter(&text).count());
        let lim = ScanLimits { max_findings: 100000, max_bytes: 1 << 30, ..ScanLimits::default() };
        time("encoded", n, || { let mut ctx = Ctx { limits: &lim, re: c, out: Scan::default(), budget: 1<<30 }; encoded::scan(&text, 0, &mut ctx); ctx.out.findings.len() });
        time("advice", n, || { let mut ctx = Ctx { limits: &lim, re: c, out: Scan::default(), budget: 1<<30 }; c.advice.scan(&text, None, &mut ctx); ctx.out.findings.len() });
        time("secrets", n, || { let mut ctx = Ctx { limits: &lim, re: c, out: Scan::default(), budget: 1<<30 }; c.secrets.scan(&text, None, &mut ctx); ctx.out.findings.len() });
        time("pii", n, || { let mut ctx = Ctx { limits: &lim, re: c, out: Scan::default(), budget: 1<<30 }; c.pii.scan(&text, None, &mut ctx); ctx.out.findings.len() });
        time("ALL", n, || Detectors::new(lim.clone()).scan_bytes(&text).findings.len());
    }
}
