//! The decision log: every decision, written durably before the call it allows leaves Warden.
//!
//! [`JsonlLog`] appends one JSON object per line and returns only after the line is flushed and
//! `fsync`ed. Appends that arrive while a write is in progress are written together and share
//! the next `fsync` (group commit), so concurrency does not multiply the cost of durability. A
//! failed write poisons the log: every later append fails, so every later call is denied until
//! Warden is restarted with a writable log (fail closed; a partial line may have been written).
//!
//! Where a write and its `fsync` take microseconds (tmpfs, a disk with a power-safe write
//! cache), handing each append to a blocking thread would cost more than the write: two thread
//! wake-ups per call. [`JsonlLog`] therefore keeps a moving average of how long its writes take
//! and reports itself as blocking ([`DecisionLog::blocking`]) only while that average is above
//! [`INLINE_WRITE_LIMIT`]. It starts out blocking, so a slow disk never stalls an async worker
//! for more than the one write that shows it is slow.
//!
//! After an allowed call is forwarded, an [`OutcomeEntry`] (`"kind": "outcome"`) records what
//! came of it — a result, an upstream error, a timeout, a cancellation — under the decision's
//! id. It is appended after the reply is on its way, and need not be durable before it: the
//! decision was.
//!
//! The tamper-evident audit chain (DESIGN §1) belongs to the store; this log is the gateway's
//! own durable record and the first consumer of [`LogEntry`].

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use warden_core::Decision;

/// What kind of event a log line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    /// A call to a tool the session was offered, decided by the engine.
    Decision,
    /// A call to a tool the session was never offered (absent from its `tools/list`: unknown to
    /// the catalog, outside the ceiling or mission, or not served by the upstream). Always a
    /// deny; kept distinct so that probing is visible.
    Unexposed,
    /// What came of a forwarded call ([`OutcomeEntry`]).
    Outcome,
}

/// One line recording what came of a forwarded call, after its decision's line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeEntry {
    /// Always [`EntryKind::Outcome`].
    pub kind: EntryKind,
    /// The decision that allowed the call.
    pub decision_id: String,
    /// The tool, as the agent named it.
    pub tool: String,
    /// `result`, or the kind of failure: `timeout`, `cancelled`, `too-large`, `http-status`,
    /// `invalid-json`, `wrong-id`, `malformed`, `exited`, `down`, `restarting`, `unreachable`,
    /// `upstream-error`, `unsupported`.
    pub outcome: String,
    /// A short reason (the error's message); empty for a result.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// When the forward ended (Unix milliseconds).
    pub at_ms: u64,
}

/// One line of the decision log: the kind and the decision, flattened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// What happened.
    pub kind: EntryKind,
    /// The decision, with its reasons.
    #[serde(flatten)]
    pub decision: Decision,
}

/// Why the decision log could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// Opening, writing or syncing the file failed.
    #[error("cannot write the decision log `{path}`: {message}")]
    Io {
        /// The log file.
        path: String,
        /// The operating system's message.
        message: String,
    },
    /// An earlier write failed; the log refuses further appends until restarted.
    #[error(
        "the decision log `{path}` failed earlier ({message}); restart Warden with a writable log"
    )]
    Poisoned {
        /// The log file.
        path: String,
        /// The first failure.
        message: String,
    },
    /// The entry could not be serialized.
    #[error("cannot serialize a decision: {0}")]
    Serialize(String),
    /// The log is unavailable (used by test logs).
    #[error("the decision log is unavailable: {0}")]
    Unavailable(String),
}

/// Where decisions are recorded. `append` returns only when the entry is durable; an error means
/// the call must not be forwarded.
pub trait DecisionLog: Send + Sync + 'static {
    /// Append one entry durably. May block on I/O: the gateway calls it off the async workers
    /// when [`DecisionLog::blocking`] is true.
    fn append(&self, entry: &LogEntry) -> Result<(), LogError>;

    /// Append what came of a forwarded call. The gateway calls it as it calls `append`, but
    /// does not wait for it before replying.
    fn append_outcome(&self, entry: &OutcomeEntry) -> Result<(), LogError>;

    /// Whether `append` can block long enough that it should run off the async workers. Asked
    /// before every append; the answer may change as the log learns how fast its medium is.
    fn blocking(&self) -> bool {
        true
    }
}

struct Batch {
    pending: Vec<u8>,
    /// Tickets handed out (one per append).
    issued: u64,
    /// Every ticket up to this one is durable.
    durable: u64,
    writing: bool,
    poisoned: Option<String>,
}

/// While a write and its `fsync` take less than this on average, [`JsonlLog`] is appended to
/// on the calling thread rather than on a blocking thread.
pub const INLINE_WRITE_LIMIT: Duration = Duration::from_micros(50);

/// `JsonlLog::write_ns` before the first write.
const UNMEASURED: u64 = u64::MAX;

/// Open `path` to read and append, creating it and any missing folders. When anything was
/// created, every folder whose entries changed is fsynced, innermost first, so that the new file
/// (and the folders leading to it) survive a crash, not only its contents. Returns the file and
/// the folders synced.
fn open_durably(path: &Path) -> std::io::Result<(File, Vec<PathBuf>)> {
    let parent = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // The folders that do not exist yet, innermost first.
    let missing: Vec<&Path> = parent
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .collect();
    std::fs::create_dir_all(parent)?;
    let mut options = OpenOptions::new();
    options.read(true).append(true);
    let (file, created) = match options.clone().create_new(true).open(path) {
        Ok(file) => (file, true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => (options.open(path)?, false),
        Err(e) => return Err(e),
    };
    let mut synced = Vec::new();
    if created {
        // The new file's folder, each new folder's parent, up to the first that existed.
        let mut dirs = vec![parent];
        dirs.extend(missing.iter().map(|d| {
            d.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
        }));
        for dir in dirs {
            File::open(dir)?.sync_all()?;
            synced.push(dir.to_path_buf());
        }
    }
    Ok((file, synced))
}

/// An append-only JSON Lines file, fsynced before every append returns (with group commit).
pub struct JsonlLog {
    path: PathBuf,
    file: Mutex<File>,
    batch: Mutex<Batch>,
    done: Condvar,
    /// Moving average of the time a batch's write and `fsync` take, in nanoseconds (each new
    /// batch weighs 1/8). Starts above [`INLINE_WRITE_LIMIT`].
    write_ns: AtomicU64,
}

impl std::fmt::Debug for JsonlLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlLog")
            .field("path", &self.path)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl JsonlLog {
    /// Open (or create) the log for appending. A last line cut short by a crash is closed with
    /// a newline so that the next entry starts on its own line.
    ///
    /// # Errors
    /// When the file cannot be opened or written.
    pub fn open(path: impl AsRef<Path>) -> Result<JsonlLog, LogError> {
        let path = path.as_ref().to_path_buf();
        let io = |e: std::io::Error| LogError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let (mut file, _synced) = open_durably(&path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1)).map_err(io)?;
            file.read_exact(&mut last).map_err(io)?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(io)?;
                file.sync_data().map_err(io)?;
            }
        }
        Ok(JsonlLog {
            path,
            file: Mutex::new(file),
            batch: Mutex::new(Batch {
                pending: Vec::new(),
                issued: 0,
                durable: 0,
                writing: false,
                poisoned: None,
            }),
            done: Condvar::new(),
            write_ns: AtomicU64::new(UNMEASURED),
        })
    }

    /// The moving average of a batch's write and `fsync` time.
    pub fn write_time(&self) -> Duration {
        Duration::from_nanos(self.write_ns.load(Ordering::Relaxed))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_batch(&self, bytes: &[u8]) -> Result<(), String> {
        let started = Instant::now();
        let mut f = lock(&self.file);
        f.write_all(bytes).map_err(|e| e.to_string())?;
        f.flush().map_err(|e| e.to_string())?;
        f.sync_data().map_err(|e| e.to_string())?;
        let took = u64::try_from(started.elapsed().as_nanos())
            .unwrap_or(UNMEASURED)
            .min(UNMEASURED - 1);
        let avg = self.write_ns.load(Ordering::Relaxed);
        let next = if avg == UNMEASURED {
            // The first write sets the average.
            took
        } else {
            avg - avg / 8 + took / 8
        };
        self.write_ns.store(next, Ordering::Relaxed);
        Ok(())
    }
}

impl JsonlLog {
    /// Append one serialized entry as a line, durably (group commit).
    fn append_value(&self, entry: &impl Serialize) -> Result<(), LogError> {
        let mut line = serde_json::to_vec(entry).map_err(|e| LogError::Serialize(e.to_string()))?;
        line.push(b'\n');
        let path = || self.path.display().to_string();
        let mut b = lock(&self.batch);
        if let Some(m) = &b.poisoned {
            return Err(LogError::Poisoned {
                path: path(),
                message: m.clone(),
            });
        }
        b.pending.extend_from_slice(&line);
        b.issued += 1;
        let ticket = b.issued;
        loop {
            if let Some(m) = &b.poisoned {
                return Err(LogError::Poisoned {
                    path: path(),
                    message: m.clone(),
                });
            }
            if b.durable >= ticket {
                return Ok(());
            }
            if b.writing {
                b = self.done.wait(b).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // Lead: write everything pending (ours included) with one fsync.
            b.writing = true;
            let bytes = std::mem::take(&mut b.pending);
            let upto = b.issued;
            drop(b);
            let result = self.write_batch(&bytes);
            b = lock(&self.batch);
            b.writing = false;
            match &result {
                Ok(()) => b.durable = upto,
                Err(m) => b.poisoned = Some(m.clone()),
            }
            self.done.notify_all();
            if let Err(message) = result {
                return Err(LogError::Io {
                    path: path(),
                    message,
                });
            }
        }
    }
}

impl DecisionLog for JsonlLog {
    fn append(&self, entry: &LogEntry) -> Result<(), LogError> {
        self.append_value(entry)
    }

    fn append_outcome(&self, entry: &OutcomeEntry) -> Result<(), LogError> {
        self.append_value(entry)
    }

    fn blocking(&self) -> bool {
        self.write_time() > INLINE_WRITE_LIMIT
    }
}

/// A log in memory, for tests: entries can be read back, and the log can be made to fail.
#[derive(Debug, Default)]
pub struct MemoryLog {
    entries: Mutex<Vec<LogEntry>>,
    outcomes: Mutex<Vec<OutcomeEntry>>,
    failing: AtomicBool,
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every entry appended so far.
    pub fn entries(&self) -> Vec<LogEntry> {
        lock(&self.entries).clone()
    }

    /// Every outcome appended so far.
    pub fn outcomes(&self) -> Vec<OutcomeEntry> {
        lock(&self.outcomes).clone()
    }

    /// How many entries were appended.
    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    /// True when nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Make every later append fail (or succeed again).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

impl DecisionLog for MemoryLog {
    fn append(&self, entry: &LogEntry) -> Result<(), LogError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(LogError::Unavailable(
                "the test log was told to fail".into(),
            ));
        }
        lock(&self.entries).push(entry.clone());
        Ok(())
    }

    fn append_outcome(&self, entry: &OutcomeEntry) -> Result<(), LogError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(LogError::Unavailable(
                "the test log was told to fail".into(),
            ));
        }
        lock(&self.outcomes).push(entry.clone());
        Ok(())
    }

    fn blocking(&self) -> bool {
        false
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_new_log_file_syncs_its_folder_and_every_folder_created_for_it() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a/b/decisions.jsonl");
        let (_file, synced) = open_durably(&path).unwrap();
        assert!(path.is_file());
        assert_eq!(
            synced,
            vec![
                tmp.path().join("a/b"),
                tmp.path().join("a"),
                tmp.path().to_path_buf(),
            ]
        );
        // Reopening an existing file creates nothing, so nothing needs syncing.
        let (_file, synced) = open_durably(&path).unwrap();
        assert!(synced.is_empty(), "{synced:?}");
        // A new file in an existing folder syncs that folder only.
        let (_file, synced) = open_durably(&tmp.path().join("a/other.jsonl")).unwrap();
        assert_eq!(synced, vec![tmp.path().join("a")]);
        assert!(JsonlLog::open(tmp.path().join("c/d.jsonl")).is_ok());
    }
}
