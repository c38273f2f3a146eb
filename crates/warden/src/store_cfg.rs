//! Where the durable store is and how its audit chain is checkpointed: `--store URL`, or the
//! `store` key and the `[audit]` table of `warden.toml`.
//!
//! The configuration file is read as plain TOML here, without loading the engine (catalog,
//! directory, policies): the store commands must work, and quickly, on a deployment whose
//! policies do not load today. Relative paths in the file are relative to its folder; a
//! relative path in `--store` is relative to the working directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use warden_store::{AuditConfig, KeySource, Store, StoreError};

/// The keys `[audit]` accepts.
const AUDIT_KEYS: &[&str] = &[
    "signing_key",
    "checkpoint_every",
    "checkpoint_seconds",
    "checkpoint_file",
];

/// The name of the outside checkpoint file kept beside an SQLite database by default.
pub const DEFAULT_CHECKPOINT_FILE: &str = "warden-checkpoints.jsonl";

/// The database file used when the configuration names no store.
pub const DEFAULT_DATABASE: &str = "warden.db";

/// A store to open: its URL and how its audit chain is checkpointed.
#[derive(Clone, Debug)]
pub struct StoreTarget {
    /// `memory:`, `sqlite://PATH` (the path resolved) or `postgres://…`.
    pub url: String,
    /// The signing key, checkpoint intervals and outside checkpoint file.
    pub audit: AuditConfig,
}

impl StoreTarget {
    /// The same store opened to read: no signing key, no checkpoints. A command that only
    /// reads the chain must never add a checkpoint to it (nor need the private key).
    pub fn read_only(&self) -> StoreTarget {
        StoreTarget {
            url: self.url.clone(),
            audit: AuditConfig {
                signing_key: None,
                checkpoint_every: 0,
                checkpoint_seconds: 0,
                checkpoint_file: None,
                ..AuditConfig::default()
            },
        }
    }

    /// The URL with any password replaced by `***`, for messages.
    pub fn display_url(&self) -> String {
        redact(&self.url)
    }
}

/// Resolves the store from `--store` (`store_flag`) and the configuration file: the URL is
/// the flag if given, else the file's `store`, else `sqlite://<folder of the file>/warden.db`;
/// `[audit]` comes from the file. With neither a file nor a flag it is an error.
pub fn store_target(
    config: Option<&Path>,
    store_flag: Option<&str>,
) -> anyhow::Result<StoreTarget> {
    let file = match config {
        Some(path) => Some(read_config(path)?),
        None => None,
    };
    let url = match (store_flag, &file) {
        (Some(flag), _) => {
            if flag.trim().is_empty() {
                bail!("`--store` is empty: give a URL such as `sqlite://warden.db`");
            }
            flag.to_string()
        }
        (None, Some(file)) => match &file.store {
            Some(url) => resolve_sqlite(url, &file.dir),
            None => format!("sqlite://{}", file.dir.join(DEFAULT_DATABASE).display()),
        },
        (None, None) => bail!(
            "no store: give `--config warden.toml` (its `store` key) or `--store URL` \
             (`sqlite://PATH`, `postgres://USER@HOST/DATABASE` or `memory:`)"
        ),
    };
    let mut audit = match &file {
        Some(file) => file.audit.clone(),
        None => AuditConfig::default(),
    };
    let explicit_file = file.as_ref().is_some_and(|f| f.checkpoint_file_set);
    if !explicit_file {
        audit.checkpoint_file = sqlite_path(&url).map(|db| {
            let dir = db.parent().map(Path::to_path_buf).unwrap_or_default();
            dir.join(DEFAULT_CHECKPOINT_FILE)
        });
    }
    Ok(StoreTarget { url, audit })
}

/// Opens the store and runs its migrations, with a message that says what to do when it fails.
pub async fn open_store(target: &StoreTarget) -> anyhow::Result<Arc<dyn Store>> {
    let url = target.display_url();
    warden_store::open_with(&target.url, target.audit.clone())
        .await
        .map_err(|e| anyhow::anyhow!(explain(&url, &e)))
}

/// Runs the store's migrations and returns its schema version.
pub async fn migrate_store(target: &StoreTarget) -> anyhow::Result<i64> {
    let url = target.display_url();
    warden_store::migrate(&target.url)
        .await
        .map_err(|e| anyhow::anyhow!(explain(&url, &e)))
}

/// A store error in words, with what to do about it.
pub fn explain(url: &str, error: &StoreError) -> String {
    match error {
        StoreError::Unavailable(reason) => format!(
            "the store `{url}` cannot be reached: {reason}; check that the database is running \
             and the URL is right"
        ),
        StoreError::Corrupt(reason) => format!(
            "the store `{url}` is damaged or not a Warden database: {reason}; restore it from a \
             backup or move it aside (Warden never resets it)"
        ),
        StoreError::Migration(reason) => format!(
            "the schema of the store `{url}` cannot be migrated: {reason}; a database written by \
             a newer release needs that release"
        ),
        other => format!("store `{url}`: {other}"),
    }
}

/// What the configuration file says about the store.
struct FileSettings {
    /// The folder of the file: relative paths in it start there.
    dir: PathBuf,
    store: Option<String>,
    audit: AuditConfig,
    checkpoint_file_set: bool,
}

fn read_config(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("`{}`: {}", path.display(), e.message()))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut problems = Vec::new();
    let store = match table.get("store") {
        None => None,
        Some(toml::Value::String(url)) => Some(url.clone()),
        Some(_) => {
            problems.push(
                "`store` must be a string such as `store = \"sqlite://warden.db\"` (written \
                 before any table)"
                    .to_string(),
            );
            None
        }
    };
    let mut audit = AuditConfig::default();
    let mut checkpoint_file_set = false;
    match table.get("audit") {
        None => {}
        Some(toml::Value::Table(t)) => {
            for (key, value) in t {
                match key.as_str() {
                    "signing_key" => match value.as_str() {
                        Some(p) => audit.signing_key = Some(KeySource::Path(relative(&dir, p))),
                        None => problems.push("`audit.signing_key` must be a path".into()),
                    },
                    "checkpoint_file" => match value.as_str() {
                        Some(p) => {
                            audit.checkpoint_file = Some(relative(&dir, p));
                            checkpoint_file_set = true;
                        }
                        None => problems.push("`audit.checkpoint_file` must be a path".into()),
                    },
                    "checkpoint_every" => match count(value) {
                        Some(n) => audit.checkpoint_every = n,
                        None => problems.push(
                            "`audit.checkpoint_every` must be a whole number of records (0: \
                             never by count)"
                                .into(),
                        ),
                    },
                    "checkpoint_seconds" => match count(value) {
                        Some(n) => audit.checkpoint_seconds = n,
                        None => problems.push(
                            "`audit.checkpoint_seconds` must be a whole number of seconds (0: \
                             never by time)"
                                .into(),
                        ),
                    },
                    other => problems.push(format!(
                        "unknown key `audit.{other}`; expected one of {}",
                        AUDIT_KEYS
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                }
            }
        }
        Some(_) => problems.push("`audit` must be a table: `[audit]`".into()),
    }
    if !problems.is_empty() {
        bail!("`{}`: {}", path.display(), problems.join("; "));
    }
    Ok(FileSettings {
        dir,
        store,
        audit,
        checkpoint_file_set,
    })
}

/// A non-negative integer.
fn count(value: &toml::Value) -> Option<u64> {
    value.as_integer().and_then(|n| u64::try_from(n).ok())
}

fn relative(dir: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

/// An `sqlite://` URL from the configuration file, its relative path made relative to the
/// file's folder; other URLs as they are.
fn resolve_sqlite(url: &str, dir: &Path) -> String {
    match sqlite_path(url) {
        Some(path) if path.is_relative() => {
            let (_, query) = split_query(url);
            format!("sqlite://{}{query}", dir.join(path).display())
        }
        _ => url.to_string(),
    }
}

/// The file of an `sqlite://PATH` (or `sqlite:PATH`) URL, without its query.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let (base, _) = split_query(url);
    let path = base
        .strip_prefix("sqlite://")
        .or_else(|| base.strip_prefix("sqlite:"))?;
    (!path.is_empty()).then(|| PathBuf::from(path))
}

/// `(before, "?…")` of a URL.
fn split_query(url: &str) -> (&str, &str) {
    match url.find('?') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    }
}

/// The URL with the password of `scheme://user:password@host` replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &authority[..colon],
            &rest[at..]
        ),
        _ => url.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("warden.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn the_flag_wins_then_the_file_then_the_default_beside_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = write(dir.path(), "store = \"sqlite://data/w.db\"\n");
        let t = store_target(Some(&config), Some("memory:")).unwrap();
        assert_eq!(t.url, "memory:");
        assert_eq!(t.audit.checkpoint_file, None);

        let t = store_target(Some(&config), None).unwrap();
        let db = dir.path().join("data/w.db");
        assert_eq!(t.url, format!("sqlite://{}", db.display()));
        assert_eq!(
            t.audit.checkpoint_file,
            Some(dir.path().join("data").join(DEFAULT_CHECKPOINT_FILE))
        );

        let config = write(dir.path(), "name = \"x\"\n");
        let t = store_target(Some(&config), None).unwrap();
        assert_eq!(
            t.url,
            format!("sqlite://{}", dir.path().join("warden.db").display())
        );

        let e = store_target(None, None).unwrap_err().to_string();
        assert!(e.contains("--config") && e.contains("--store"), "{e}");
    }

    #[test]
    fn audit_keys_are_read_relative_to_the_file_and_unknown_ones_named() {
        let dir = tempfile::tempdir().unwrap();
        let config = write(
            dir.path(),
            "store = \"postgres://w:secret@db/w\"\n[audit]\nsigning_key = \"k.pem\"\n\
             checkpoint_every = 10\ncheckpoint_seconds = 0\ncheckpoint_file = \"cp.jsonl\"\n",
        );
        let t = store_target(Some(&config), None).unwrap();
        assert_eq!(t.audit.checkpoint_every, 10);
        assert_eq!(t.audit.checkpoint_seconds, 0);
        assert_eq!(t.audit.checkpoint_file, Some(dir.path().join("cp.jsonl")));
        assert!(
            matches!(&t.audit.signing_key, Some(KeySource::Path(p)) if *p == dir.path().join("k.pem"))
        );
        assert_eq!(t.display_url(), "postgres://w:***@db/w");

        let config = write(
            dir.path(),
            "store = 3\n[audit]\ncheckpoints = 5\ncheckpoint_every = -1\n",
        );
        let e = store_target(Some(&config), None).unwrap_err().to_string();
        assert!(e.contains("`audit.checkpoints`"), "{e}");
        assert!(e.contains("`store` must be a string"), "{e}");
        assert!(e.contains("checkpoint_every"), "{e}");
    }

    #[test]
    fn passwords_are_hidden_and_other_urls_kept() {
        assert_eq!(
            redact("postgres://u:p@h:5432/d"),
            "postgres://u:***@h:5432/d"
        );
        assert_eq!(redact("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(redact("sqlite://a.db"), "sqlite://a.db");
        assert_eq!(redact("memory:"), "memory:");
    }
}
