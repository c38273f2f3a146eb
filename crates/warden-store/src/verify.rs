//! Verifying the audit chain and its checkpoints.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::canonical::{record_bytes_with_body, record_hash};
use crate::checkpoint::{read_outside, verify_checkpoint};
use crate::error::StoreError;
use crate::types::{AuditRecord, Checkpoint, Hash};
use crate::Store;

/// What to check beside the chain itself.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// The public key that must have signed every checkpoint. Without it, signatures are not
    /// checked (an unsigned checkpoint still pins the chain's hash at its seq).
    pub public_key: Option<VerifyingKey>,
    /// The checkpoint file kept outside the database (JSON Lines, as the store writes it).
    pub outside_checkpoints: Option<PathBuf>,
    /// Records read per page (default 1,000).
    pub page_size: Option<u32>,
}

/// What is wrong at a place in the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The record's content does not match its hash.
    Edited,
    /// A record is missing here (a gap in the numbers, or a record whose predecessor is gone).
    Deleted,
    /// A record that was not in the chain was put here.
    Inserted,
    /// A record that belongs later in the chain is here.
    Reordered,
    /// The chain ends before a checkpoint: its tail was cut.
    Truncated,
    /// A checkpoint does not match the record at its seq.
    CheckpointMismatch,
    /// A checkpoint's signature does not verify with the public key (or it has none).
    BadSignature,
    /// The checkpoint kept in the database differs from the one kept outside for this seq.
    CheckpointSwapped,
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultKind::Edited => "edited",
            FaultKind::Deleted => "deleted",
            FaultKind::Inserted => "inserted",
            FaultKind::Reordered => "reordered",
            FaultKind::Truncated => "truncated",
            FaultKind::CheckpointMismatch => "checkpoint does not match",
            FaultKind::BadSignature => "bad checkpoint signature",
            FaultKind::CheckpointSwapped => "checkpoint swapped",
        })
    }
}

/// One fault: where and what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// The first sequence number concerned.
    pub seq: u64,
    /// What is wrong.
    pub kind: FaultKind,
    /// In words.
    pub detail: String,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "record {}: {} ({})", self.seq, self.kind, self.detail)
    }
}

/// What [`verify`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Records read (up to the first fault in the chain).
    pub records: u64,
    /// The last good record's seq and hash.
    pub tail: Option<(u64, Hash)>,
    /// Checkpoints compared with the chain (from the database and from outside).
    pub checkpoints: usize,
    /// Signatures checked.
    pub signatures: usize,
    /// Every fault found, by seq; the chain walk stops at its first fault.
    pub faults: Vec<Fault>,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn ok(&self) -> bool {
        self.faults.is_empty()
    }

    /// The first bad record.
    pub fn first_fault(&self) -> Option<&Fault> {
        self.faults.first()
    }
}

/// Walks the chain from the start, in pages, and checks every checkpoint, in the database
/// and outside it. Errors are only for what could not be read; what is wrong is in the
/// report.
pub async fn verify(store: &dyn Store, options: VerifyOptions) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    let inside = store.checkpoints().await?;
    let outside = match &options.outside_checkpoints {
        Some(path) if path.exists() => read_outside(path)?,
        // No file yet is fine for a chain that never had a checkpoint; once the database holds
        // some, a missing file is evidence gone, not an empty list.
        Some(path) if !inside.is_empty() => {
            return Err(StoreError::File {
                path: path.display().to_string(),
                reason: format!(
                    "the checkpoint file is missing, but the database holds {} checkpoints",
                    inside.len()
                ),
            })
        }
        Some(_) | None => Vec::new(),
    };

    // Checkpoints by seq: the hash each pins. Database and outside copies must agree.
    let mut pinned: BTreeMap<u64, Vec<(Checkpoint, &'static str)>> = BTreeMap::new();
    for checkpoint in inside {
        pinned
            .entry(checkpoint.seq)
            .or_default()
            .push((checkpoint, "database"));
    }
    for checkpoint in outside {
        pinned
            .entry(checkpoint.seq)
            .or_default()
            .push((checkpoint, "outside"));
    }
    for (seq, copies) in &pinned {
        report.checkpoints += copies.len();
        if let Some(key) = &options.public_key {
            for (checkpoint, place) in copies {
                report.signatures += 1;
                if !verify_checkpoint(checkpoint, key) {
                    report.faults.push(Fault {
                        seq: *seq,
                        kind: FaultKind::BadSignature,
                        detail: format!(
                            "the checkpoint kept in the {place} is not signed by this key"
                        ),
                    });
                }
            }
        }
        let outside_hashes: Vec<&Hash> = copies
            .iter()
            .filter(|(_, place)| *place == "outside")
            .map(|(c, _)| &c.hash)
            .collect();
        let swapped = copies
            .iter()
            .filter(|(_, place)| *place == "database")
            .any(|(c, _)| outside_hashes.iter().any(|h| **h != c.hash));
        if swapped {
            report.faults.push(Fault {
                seq: *seq,
                kind: FaultKind::CheckpointSwapped,
                detail: "the checkpoint in the database differs from the one kept outside".into(),
            });
        }
    }

    let page = options.page_size.unwrap_or(1000).max(1);
    let mut expected: u64 = 1;
    let mut prev = Hash::ZERO;
    let mut chain_fault: Option<Fault> = None;
    'walk: loop {
        let records = store.audit_range(expected, page).await?;
        if records.is_empty() {
            break;
        }
        for (index, record) in records.iter().enumerate() {
            if let Some(fault) =
                check_record(store, record, expected, &prev, records.get(index + 1)).await?
            {
                chain_fault = Some(fault);
                break 'walk;
            }
            if let Some(copies) = pinned.get(&record.seq) {
                if let Some((checkpoint, place)) =
                    copies.iter().find(|(c, _)| c.hash != record.hash)
                {
                    report.faults.push(Fault {
                        seq: record.seq,
                        kind: FaultKind::CheckpointMismatch,
                        detail: format!(
                            "the checkpoint kept in the {place} says {}, the record is {}",
                            checkpoint.hash, record.hash
                        ),
                    });
                }
            }
            report.records += 1;
            report.tail = Some((record.seq, record.hash));
            prev = record.hash;
            expected = record.seq + 1;
        }
        if records.len() < page as usize {
            break;
        }
    }
    match chain_fault {
        Some(fault) => report.faults.push(fault),
        None => {
            let tail = report.tail.map(|(seq, _)| seq).unwrap_or(0);
            if let Some((&seq, copies)) = pinned.range(tail + 1..).next_back() {
                let place = copies
                    .first()
                    .map(|(_, place)| *place)
                    .unwrap_or("database");
                report.faults.push(Fault {
                    seq: tail + 1,
                    kind: FaultKind::Truncated,
                    detail: format!(
                        "the chain ends at {tail}, but a checkpoint kept in the {place} covers \
                         records up to {seq}"
                    ),
                });
            }
        }
    }
    report.faults.sort_by_key(|f| f.seq);
    Ok(report)
}

/// Checks one record against the one before it. `next` (if read in the same page) helps tell
/// an insertion from an edit.
async fn check_record(
    store: &dyn Store,
    record: &AuditRecord,
    expected: u64,
    prev: &Hash,
    next: Option<&AuditRecord>,
) -> Result<Option<Fault>, StoreError> {
    if record.seq != expected {
        return Ok(Some(Fault {
            seq: expected,
            kind: FaultKind::Deleted,
            detail: format!("the record after {} is {}", expected - 1, record.seq),
        }));
    }
    if record.prev_hash != *prev {
        // Where does this record say it belongs?
        let points_to = store.audit_seq_of_hash(&record.prev_hash).await?;
        let fault = match points_to {
            Some(seq) if seq + 1 < expected => Fault {
                seq: seq + 1,
                kind: FaultKind::Inserted,
                detail: format!(
                    "record {expected} follows {seq}: records {} to {} were put in between",
                    seq + 1,
                    expected - 1
                ),
            },
            Some(seq) if seq >= expected => Fault {
                seq: expected,
                kind: FaultKind::Reordered,
                detail: format!("the record here follows record {seq}"),
            },
            _ => Fault {
                seq: expected,
                kind: FaultKind::Deleted,
                detail: "the record this one follows is gone".into(),
            },
        };
        return Ok(Some(fault));
    }
    // The body's bytes as stored, not re-serialised: the hash does not depend on how any
    // JSON library writes numbers today.
    let bytes = record_bytes_with_body(
        record.seq,
        &record.kind,
        record.at_ms,
        &record.columns,
        record.body_text.as_bytes(),
    );
    let computed = record_hash(&bytes, prev);
    if computed != record.hash {
        // If the next record follows the one before this, this one was slipped in.
        let next = match next {
            Some(next) => Some(next.clone()),
            None => store.audit_get(expected + 1).await?,
        };
        if next.is_some_and(|n| n.prev_hash == *prev && n.seq == expected + 1) {
            return Ok(Some(Fault {
                seq: expected,
                kind: FaultKind::Inserted,
                detail: "the next record follows the one before this".into(),
            }));
        }
        return Ok(Some(Fault {
            seq: expected,
            kind: FaultKind::Edited,
            detail: format!("its content hashes to {computed}, not {}", record.hash),
        }));
    }
    Ok(None)
}
