//! Log records for the sources `auth`, `access` and `deploy`.

use std::collections::BTreeMap;

use crate::rng::{nov, Rng};
use crate::state::LogRecord;

/// The users that show up in the logs and the address each logs in from.
const USERS: &[(&str, &str)] = &[
    ("alice", "10.20.1.5"),
    ("bob", "10.20.3.17"),
    ("carol", "10.20.7.22"),
    ("dave", "10.20.9.4"),
    ("erin", "172.31.40.8"),
    ("frank", "10.20.3.41"),
    ("gwen.park", "10.20.1.33"),
    ("hiro.tanaka", "10.20.4.12"),
    ("priya.raman", "10.20.6.19"),
    ("kwame.mensah", "10.20.5.27"),
    ("liam.oconnor", "10.20.1.61"),
    ("noah.fischer", "10.20.3.52"),
    ("yuki.sato", "10.20.5.8"),
    ("omar.haddad", "10.20.9.15"),
    ("jonas.berg", "10.20.4.30"),
    ("diego.alvarez", "10.20.8.11"),
];

fn session(rng: &mut Rng) -> String {
    format!("sess_{}", rng.hex(16))
}

fn user(rng: &mut Rng) -> (&'static str, &'static str) {
    rng.pick(USERS).copied().unwrap_or(("alice", "10.20.1.5"))
}

fn record(
    secs: u64,
    source: &'static str,
    outcome: &'static str,
    fields: Vec<(&'static str, String)>,
) -> LogRecord {
    LogRecord {
        secs,
        source,
        outcome,
        fields,
    }
}

/// All three sources, each sorted by time (oldest first).
pub(crate) fn seed() -> BTreeMap<&'static str, Vec<LogRecord>> {
    let mut logs = BTreeMap::new();
    logs.insert("auth", auth());
    logs.insert("access", access());
    logs.insert("deploy", deploy());
    for records in logs.values_mut() {
        records.sort_by_key(|r| r.secs);
    }
    logs
}

fn auth() -> Vec<LogRecord> {
    let mut rng = Rng::new(0xACE0_0A17);
    let mut out = Vec::new();
    let start = nov(18, 21, 0, 0);
    let end = nov(20, 10, 28, 0);

    // Everyday sign-ins, mostly successful.
    for _ in 0..72 {
        let secs = rng.range(start, end);
        let (user, ip) = user(&mut rng);
        let env = if rng.below(3) == 0 { "staging" } else { "prod" };
        let roll = rng.below(10);
        if roll < 8 {
            let mfa = if rng.below(2) == 0 {
                "totp"
            } else {
                "webauthn"
            };
            out.push(record(
                secs,
                "auth",
                "OK",
                vec![
                    ("user", user.into()),
                    ("ip", ip.into()),
                    ("session", session(&mut rng)),
                    ("env", env.into()),
                    ("method", "sso".into()),
                    ("mfa", mfa.into()),
                ],
            ));
        } else {
            let reason = if roll == 8 {
                "mfa_timeout"
            } else {
                "invalid_password"
            };
            out.push(record(
                secs,
                "auth",
                "FAIL",
                vec![
                    ("user", user.into()),
                    ("ip", ip.into()),
                    ("reason", reason.into()),
                    ("session", session(&mut rng)),
                    ("env", env.into()),
                    ("method", "password".into()),
                ],
            ));
        }
    }

    // Credential stuffing from outside (security-incidents T-1038).
    for i in 0..14u64 {
        let secs = nov(18, 22, 0, 0) + i * 157 + rng.below(60);
        let user = rng
            .pick(&["admin", "root", "test", "svc-backup", "jenkins"])
            .copied()
            .unwrap_or("admin");
        let reason = if user == "admin" || user == "jenkins" {
            "invalid_password"
        } else {
            "unknown_user"
        };
        out.push(record(
            secs,
            "auth",
            "FAIL",
            vec![
                ("user", user.into()),
                ("ip", format!("203.0.113.{}", rng.range(2, 250))),
                ("reason", reason.into()),
                ("session", "-".into()),
                ("env", "prod".into()),
                ("method", "password".into()),
            ],
        ));
    }
    out.push(record(
        nov(18, 22, 41, 0),
        "auth",
        "BLOCK",
        vec![
            ("ip", "203.0.113.0/24".into()),
            ("reason", "rate_limited".into()),
            ("by", "dave".into()),
        ],
    ));

    // bob's failed staging logins after the auth-svc 3.2.0 rollout (eng-help T-1042, T-1050).
    let bob_ip = "10.20.3.17";
    let bob_fail = |rng: &mut Rng, secs: u64| {
        record(
            secs,
            "auth",
            "FAIL",
            vec![
                ("user", "bob".into()),
                ("ip", bob_ip.into()),
                ("reason", "invalid_password".into()),
                ("session", session(rng)),
                ("env", "staging".into()),
                ("method", "password".into()),
                ("detail", "argon2id_migration_verify_failed".into()),
            ],
        )
    };
    for secs in [
        nov(20, 8, 47, 10),
        nov(20, 8, 49, 52),
        nov(20, 9, 2, 37),
        nov(20, 9, 5, 18),
        nov(20, 9, 11, 44),
        nov(20, 9, 14, 3),
    ] {
        out.push(bob_fail(&mut rng, secs));
    }
    out.push(record(
        nov(20, 9, 14, 4),
        "auth",
        "LOCKOUT",
        vec![
            ("user", "bob".into()),
            ("ip", bob_ip.into()),
            ("reason", "too_many_failures".into()),
            ("session", "-".into()),
            ("env", "staging".into()),
            ("failures", "6".into()),
            ("until", "2026-11-20T09:44:04Z".into()),
        ],
    ));
    out.push(record(
        nov(20, 9, 44, 4),
        "auth",
        "UNLOCK",
        vec![
            ("user", "bob".into()),
            ("reason", "lockout_expired".into()),
            ("session", "-".into()),
            ("env", "staging".into()),
        ],
    ));
    for secs in [nov(20, 9, 47, 29), nov(20, 9, 52, 11)] {
        out.push(bob_fail(&mut rng, secs));
    }
    // bob can still sign in to production, which has not been migrated.
    out.push(record(
        nov(20, 9, 55, 40),
        "auth",
        "OK",
        vec![
            ("user", "bob".into()),
            ("ip", bob_ip.into()),
            ("session", session(&mut rng)),
            ("env", "prod".into()),
            ("method", "sso".into()),
            ("mfa", "totp".into()),
        ],
    ));
    out
}

fn access() -> Vec<LogRecord> {
    let mut rng = Rng::new(0xACE0_0AC5);
    let mut out = Vec::new();
    let paths: &[(&str, &str)] = &[
        ("GET", "/api/billing/invoices"),
        ("GET", "/api/billing/customers/cus_{id}"),
        ("POST", "/api/payments/charges"),
        ("GET", "/api/identity/users/{id}"),
        ("GET", "/api/deploys"),
        ("GET", "/metrics"),
        ("PATCH", "/admin/feature-flags/{id}"),
        ("GET", "/api/hr/employees"),
    ];
    let start = nov(20, 6, 0, 0);
    let end = nov(20, 10, 28, 0);
    for _ in 0..70 {
        let secs = rng.range(start, end);
        let (user, ip) = user(&mut rng);
        let (method, path) = rng.pick(paths).copied().unwrap_or(("GET", "/metrics"));
        let path = path.replace("{id}", &rng.range(1000, 99_999).to_string());
        let denied =
            path.starts_with("/admin") || path.starts_with("/api/hr") || rng.below(12) == 0;
        let mut fields = vec![
            ("user", user.to_string()),
            ("ip", ip.to_string()),
            ("method", method.to_string()),
            ("path", path),
        ];
        if denied && user != "dave" && user != "carol" {
            fields.push(("status", "403".into()));
            fields.push(("reason", "missing_role".into()));
            fields.push(("session", session(&mut rng)));
            out.push(record(secs, "access", "DENY", fields));
        } else {
            fields.push(("status", "200".into()));
            fields.push(("bytes", rng.range(312, 48_000).to_string()));
            fields.push(("session", session(&mut rng)));
            out.push(record(secs, "access", "ALLOW", fields));
        }
    }
    // Probes from the credential-stuffing range, all refused at the edge.
    for i in 0..6u64 {
        out.push(record(
            nov(18, 22, 5, 0) + i * 311,
            "access",
            "DENY",
            vec![
                ("user", "-".into()),
                ("ip", format!("203.0.113.{}", rng.range(2, 250))),
                ("method", "POST".into()),
                ("path", "/sso/login".into()),
                ("status", "429".into()),
                ("reason", "rate_limited".into()),
                ("session", "-".into()),
            ],
        ));
    }
    out
}

fn deploy() -> Vec<LogRecord> {
    let mut rng = Rng::new(0xACE0_0DE9);
    let mut out = Vec::new();
    let services: &[(&str, u64, u64)] = &[
        ("billing-svc", 2, 14),
        ("payments-api", 5, 3),
        ("web-frontend", 1, 48),
        ("identity-svc", 4, 9),
        ("search-svc", 0, 22),
        ("notifications-svc", 1, 7),
        ("auth-svc", 3, 1),
    ];
    let deployers = [
        "ci-bot",
        "ci-bot",
        "ci-bot",
        "alice",
        "liam.oconnor",
        "gwen.park",
    ];
    let start = nov(13, 8, 0, 0);
    let end = nov(20, 8, 0, 0);
    let mut patch: BTreeMap<&str, u64> = BTreeMap::new();
    let mut times: Vec<u64> = (0..56).map(|_| rng.range(start, end)).collect();
    times.sort_unstable();
    for secs in times {
        let (service, major, minor) = rng
            .pick(services)
            .copied()
            .unwrap_or(("billing-svc", 2, 14));
        let counter = patch.entry(service).or_insert(0);
        *counter += 1;
        let version = format!("{major}.{minor}.{counter}");
        let env = if rng.below(2) == 0 { "staging" } else { "prod" };
        let by = rng.pick(&deployers).copied().unwrap_or("ci-bot");
        let roll = rng.below(14);
        let outcome = match roll {
            0 => "FAIL",
            1 => "ROLLBACK",
            _ => "OK",
        };
        let mut fields = vec![
            ("service", service.to_string()),
            ("version", version),
            ("env", env.to_string()),
            ("by", by.to_string()),
            ("commit", rng.hex(7)),
            ("duration_s", rng.range(38, 420).to_string()),
        ];
        if outcome == "FAIL" {
            fields.push(("reason", "healthcheck_timeout".into()));
        } else if outcome == "ROLLBACK" {
            fields.push(("reason", "error_rate_above_slo".into()));
        }
        out.push(record(secs, "deploy", outcome, fields));
    }
    // The rollout behind bob's staging failures (platform-private T-1058).
    out.push(record(
        nov(20, 8, 40, 12),
        "deploy",
        "OK",
        vec![
            ("service", "auth-svc".into()),
            ("version", "3.2.0".into()),
            ("env", "staging".into()),
            ("by", "alice".into()),
            ("commit", "9c1e4b7".into()),
            ("duration_s", "142".into()),
            ("note", "argon2id_password_hash_migration".into()),
        ],
    ));
    out.push(record(
        nov(20, 10, 2, 55),
        "deploy",
        "OK",
        vec![
            ("service", "billing-svc".into()),
            ("version", "2.15.0".into()),
            ("env", "prod".into()),
            ("by", "ci-bot".into()),
            ("commit", "3f9a2c1".into()),
            ("duration_s", "97".into()),
        ],
    ));
    out
}
