//! Content detectors: secrets, PII, privileged advice and encoded payloads.
//!
//! (Stub API; the implementation replaces this file.)

use std::collections::BTreeSet;

/// Bounds on the work one scan may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanLimits {
    /// The most bytes of one text that are scanned; the rest is not scanned and the scan is marked `truncated`.
    pub max_bytes: usize,
    /// How many times an encoded payload is decoded and scanned again.
    pub max_decode_depth: u8,
    /// The most findings kept per scan (labels are still collected past it).
    pub max_findings: usize,
}

impl Default for ScanLimits {
    fn default() -> Self {
        Self { max_bytes: 1 << 20, max_decode_depth: 2, max_findings: 32 }
    }
}

/// What a detector found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// Detector name, e.g. `aws-access-key`, `email`, `card-number`, `privileged-advice`.
    pub detector: String,
    /// The label this finding adds (`secret`, `pii`, `privileged-advice`).
    pub label: String,
    /// Byte offset of the match in the scanned text (in the decoded text when `encoding` is set).
    pub offset: usize,
    /// `base64` or `hex` when the match was inside a decoded payload.
    pub encoding: Option<String>,
    /// A redacted excerpt that is safe to log.
    pub excerpt: String,
}

/// The result of scanning one text.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Scan {
    /// Labels found.
    pub labels: BTreeSet<String>,
    /// Findings, at most `ScanLimits::max_findings`.
    pub findings: Vec<Finding>,
    /// True when some of the text was not scanned (over `max_bytes` or decode depth).
    pub truncated: bool,
}

/// Compiled detectors, built once and shared.
#[derive(Debug, Clone)]
pub struct Detectors {
    limits: ScanLimits,
}

impl Detectors {
    /// Build the detectors with the given limits.
    pub fn new(limits: ScanLimits) -> Self {
        Self { limits }
    }

    /// The limits in force.
    pub fn limits(&self) -> &ScanLimits {
        &self.limits
    }

    /// Scan one text.
    pub fn scan(&self, text: &str) -> Scan {
        let _ = text;
        Scan::default()
    }
}
