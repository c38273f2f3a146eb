//! The detectors over arbitrary bytes: text and binary scans, encoded payloads (base64, hex,
//! URL and escape decoding, nested), secrets, personal data and advice patterns.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use warden_core::detect::{Detectors, ScanLimits};

fn detectors() -> &'static Detectors {
    static D: OnceLock<Detectors> = OnceLock::new();
    D.get_or_init(|| Detectors::new(ScanLimits::default()))
}

fuzz_target!(|data: &[u8]| {
    let d = detectors();
    let scan = d.scan_bytes(data);
    for f in &scan.findings {
        // Every finding points inside the scanned bytes.
        assert!(f.offset <= data.len(), "{f:?} of {}", data.len());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = d.scan(text);
    }
});
