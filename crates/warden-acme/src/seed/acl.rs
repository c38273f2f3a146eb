//! Access-control lists of Acme's resources.

use std::collections::BTreeMap;

use crate::state::Acl;

/// The groups of ACME.md; `grant_access` accepts only these.
pub(crate) const GROUPS: &[&str] = &[
    "all-employees",
    "engineering",
    "platform-team",
    "hr",
    "security",
    "eng-managers",
    "contractors",
];

/// The permissions an ACL can grant.
pub(crate) const PERMISSIONS: &[&str] = &["read", "write", "admin"];

/// `(resource, description, [(permission, [groups])])`.
type Seeded = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static [&'static str])],
);

const SEEDED: &[Seeded] = &[
    (
        "logs:auth",
        "Authentication logs (user names, IP addresses, session ids)",
        &[("read", &["security"]), ("admin", &["security"])],
    ),
    (
        "logs:access",
        "HTTP access logs (user names, IP addresses, session ids)",
        &[("read", &["security"]), ("admin", &["security"])],
    ),
    (
        "logs:deploy",
        "Deploy events",
        &[("read", &["engineering"]), ("admin", &["platform-team"])],
    ),
    (
        "channel:eng-help",
        "Forum channel eng-help",
        &[
            ("read", &["engineering"]),
            ("write", &["engineering", "contractors"]),
            ("admin", &["platform-team"]),
        ],
    ),
    (
        "channel:all-hands",
        "Forum channel all-hands",
        &[
            ("read", &["all-employees", "contractors"]),
            ("write", &["all-employees", "contractors"]),
            ("admin", &["hr"]),
        ],
    ),
    (
        "channel:platform-private",
        "Forum channel platform-private",
        &[
            ("read", &["platform-team"]),
            ("write", &["platform-team"]),
            ("admin", &["platform-team"]),
        ],
    ),
    (
        "channel:hr-private",
        "Forum channel hr-private",
        &[("read", &["hr"]), ("write", &["hr"]), ("admin", &["hr"])],
    ),
    (
        "channel:security-incidents",
        "Forum channel security-incidents",
        &[
            ("read", &["security"]),
            ("write", &["security"]),
            ("admin", &["security"]),
        ],
    ),
    (
        "repo:services",
        "The services monorepo (files.*)",
        &[
            ("read", &["engineering"]),
            ("write", &["engineering"]),
            ("admin", &["platform-team"]),
        ],
    ),
    (
        "dataset:hr.employees",
        "The HR directory",
        &[("read", &["hr"]), ("write", &["hr"]), ("admin", &["hr"])],
    ),
];

/// The seeded ACLs, keyed by resource.
pub(crate) fn seed() -> BTreeMap<String, Acl> {
    SEEDED
        .iter()
        .map(|(resource, description, grants)| {
            let grants = grants
                .iter()
                .map(|(permission, groups)| {
                    (
                        (*permission).to_string(),
                        groups.iter().map(|g| (*g).to_string()).collect(),
                    )
                })
                .collect();
            (
                (*resource).to_string(),
                Acl {
                    description,
                    grants,
                },
            )
        })
        .collect()
}
