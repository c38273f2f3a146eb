//! Versioned schema migrations, recorded in a `warden_migrations` table.
//!
//! Each migration has a version, a name and its SQL; the table keeps the version, the name,
//! the SHA-256 of the SQL and when it ran. Opening a database whose table names a version this
//! release does not have, or a migration whose SQL changed since it ran, is an error: the
//! store never guesses.

use sha2::{Digest, Sha256};

use crate::error::StoreError;

/// One migration.
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    pub(crate) fn checksum(&self) -> Vec<u8> {
        Sha256::digest(self.sql.as_bytes()).to_vec()
    }
}

/// The SQLite migrations, in order.
pub(crate) const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/sqlite/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "data versions",
        sql: include_str!("../migrations/sqlite/0002_data_versions.sql"),
    },
    Migration {
        version: 3,
        name: "mission journal",
        sql: include_str!("../migrations/sqlite/0003_mission_journal.sql"),
    },
    Migration {
        version: 4,
        name: "mission grants",
        sql: include_str!("../migrations/sqlite/0004_mission_grants.sql"),
    },
    Migration {
        version: 5,
        name: "approval requests",
        sql: include_str!("../migrations/sqlite/0005_approval_requests.sql"),
    },
    Migration {
        version: 6,
        name: "kill switch",
        sql: include_str!("../migrations/sqlite/0006_kill_switch.sql"),
    },
];

/// The PostgreSQL migrations, in order.
pub(crate) const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "data versions",
        sql: include_str!("../migrations/postgres/0002_data_versions.sql"),
    },
    Migration {
        version: 3,
        name: "mission journal",
        sql: include_str!("../migrations/postgres/0003_mission_journal.sql"),
    },
    Migration {
        version: 4,
        name: "mission grants",
        sql: include_str!("../migrations/postgres/0004_mission_grants.sql"),
    },
    Migration {
        version: 5,
        name: "approval requests",
        sql: include_str!("../migrations/postgres/0005_approval_requests.sql"),
    },
    Migration {
        version: 6,
        name: "kill switch",
        sql: include_str!("../migrations/postgres/0006_kill_switch.sql"),
    },
];

/// The newest schema version this release knows.
pub(crate) const LATEST: i64 = 6;

/// Checks what the database says it ran against what this release knows, and returns the
/// migrations still to run.
pub(crate) fn pending<'a>(
    known: &'a [Migration],
    applied: &[(i64, Vec<u8>)],
) -> Result<Vec<&'a Migration>, StoreError> {
    for (version, checksum) in applied {
        match known.iter().find(|m| m.version == *version) {
            None => {
                return Err(StoreError::Migration(format!(
                    "the database is at schema version {version}, newer than this release \
                     knows ({LATEST}); run a newer Warden"
                )))
            }
            Some(migration) if &migration.checksum() != checksum => {
                return Err(StoreError::Migration(format!(
                    "migration {version} (`{}`) in the database differs from this release's",
                    migration.name
                )))
            }
            Some(_) => {}
        }
    }
    Ok(known
        .iter()
        .filter(|m| !applied.iter().any(|(v, _)| *v == m.version))
        .collect())
}

/// Wraps a failure while migrating.
pub(crate) fn failed(migration: &Migration, error: sqlx::Error) -> StoreError {
    match StoreError::from(error) {
        StoreError::Database(reason) => StoreError::Migration(format!(
            "migration {} (`{}`) failed: {reason}",
            migration.version, migration.name
        )),
        other => other,
    }
}
