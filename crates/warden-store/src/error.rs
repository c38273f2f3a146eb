//! Errors of the store.
//!
//! Every failure is typed. Callers deny on any of them (fail closed); [`StoreError::Unavailable`]
//! is the one a caller may expect to clear by itself, when the database comes back.

use thiserror::Error;

/// What went wrong in the store.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The database cannot be reached, timed out, or is full; retry later. The same store value
    /// works again once the database is back.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The database file is not a database, or is damaged. Never reset silently: restore it or
    /// move it aside.
    #[error("the store is corrupt: {0}")]
    Corrupt(String),
    /// A schema migration failed, or the database holds a schema this release does not know.
    #[error("the store's schema cannot be migrated: {0}")]
    Migration(String),
    /// The store URL is not one Warden knows.
    #[error("invalid store url `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key file could not be read, written or parsed.
    #[error("key file `{path}`: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file outside the database (the checkpoint file) could not be read or written.
    #[error("file `{path}`: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An argument the caller passed is out of range (a value too large for the database).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// What the caller asked to record exists already (a grant's mission id is taken); nothing
    /// was written.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database answered with an error that is none of the above.
    #[error("database error: {0}")]
    Database(String),
    /// The store was shut down (its writer task is gone).
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// Whether retrying later may succeed without anyone changing anything.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// SQLite result codes (primary, low byte) that mean the database is out of reach or full.
const SQLITE_UNAVAILABLE: &[i64] = &[
    5,  // SQLITE_BUSY
    6,  // SQLITE_LOCKED
    7,  // SQLITE_NOMEM
    8,  // SQLITE_READONLY
    10, // SQLITE_IOERR
    13, // SQLITE_FULL
    14, // SQLITE_CANTOPEN
    15, // SQLITE_PROTOCOL
];
/// SQLite result codes that mean the file is damaged or not a database.
const SQLITE_CORRUPT: &[i64] = &[11, 26]; // SQLITE_CORRUPT, SQLITE_NOTADB

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &error {
            E::PoolTimedOut => StoreError::Unavailable("timed out waiting for a connection".into()),
            E::PoolClosed => StoreError::Unavailable("the connection pool is closed".into()),
            E::Io(e) => StoreError::Unavailable(format!("i/o error: {e}")),
            E::Tls(e) => StoreError::Unavailable(format!("tls error: {e}")),
            E::Protocol(e) => StoreError::Unavailable(format!("protocol error: {e}")),
            E::WorkerCrashed => StoreError::Unavailable("the database worker stopped".into()),
            E::Database(db) => classify_database(db.as_ref()),
            _ => StoreError::Database(error.to_string()),
        }
    }
}

fn classify_database(db: &dyn sqlx::error::DatabaseError) -> StoreError {
    let message = db.message().to_string();
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    // PostgreSQL SQLSTATEs are five characters; SQLite codes are numbers.
    if let Ok(number) = code.parse::<i64>() {
        let primary = number & 0xff;
        if SQLITE_CORRUPT.contains(&primary) {
            return StoreError::Corrupt(message);
        }
        if SQLITE_UNAVAILABLE.contains(&primary) {
            return StoreError::Unavailable(message);
        }
        return StoreError::Database(message);
    }
    // Class 08: connection exception; 53: insufficient resources (disk full, out of memory,
    // too many connections); 57P01-57P03: shutting down or not yet accepting connections;
    // 58: system error (i/o).
    if code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P")
        || code.starts_with("58")
    {
        return StoreError::Unavailable(format!("{message} (sqlstate {code})"));
    }
    if code == "XX001" || code == "XX002" {
        return StoreError::Corrupt(format!("{message} (sqlstate {code})"));
    }
    StoreError::Database(format!("{message} (sqlstate {code})"))
}
