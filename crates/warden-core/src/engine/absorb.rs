//! What an allowed call's output brings into the session: its labels, taint, provenance text
//! and the record and byte budgets it spends.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::types::{Receipt, PRIVILEGED_ADVICE};
use super::Engine;
use crate::catalog::{RecordCount, ToolSpec, UNTRUSTED};
use crate::config::Config;
use crate::detect::Scan;
use crate::mission::MissionUsage;
use crate::model::LabelSource;
use crate::session::SessionState;

impl Engine {
    /// Label an allowed call's output and feed it to the session: taint, provenance text,
    /// record and byte budgets. Returns the labels the output carries.
    pub fn absorb(
        &self,
        permitted: &Receipt,
        output: &str,
        session: &mut SessionState,
        usage: &mut MissionUsage,
        now_ms: i64,
    ) -> BTreeSet<String> {
        let cfg = &self.config;
        let Some(spec) = cfg.catalog.get(&permitted.tool) else {
            return BTreeSet::new();
        };
        let scan = cfg.detectors.scan(output);
        if !scan.secret_values.is_empty() {
            let key = crate::detect::fingerprint::mission_key(&session.mission);
            session.secret_prints.add(key, &scan.secret_values);
        }
        let mut labels: BTreeMap<String, String> = BTreeMap::new();
        for l in &permitted.resource_labels {
            labels.insert(l.clone(), spec.name.clone());
        }
        let mut found = content_labels(&scan, cfg.detectors.limits().max_findings);
        let before = found.len();
        found.retain(|l| crate::holds::keeps_detector_label(l, &permitted.resource_labels));
        let dropped = found.len() < before;
        crate::holds::note_public_text(session, output, dropped, &permitted.resource_labels);
        for f in &scan.findings {
            if found.contains(&f.label) {
                labels
                    .entry(f.label.clone())
                    .or_insert_with(|| format!("{} (detector {})", spec.name, f.detector));
            }
        }
        for l in &found {
            labels
                .entry(l.clone())
                .or_insert_with(|| format!("{} (detector)", spec.name));
        }
        if scan.truncated {
            for l in spec_max_labels(spec, cfg) {
                labels
                    .entry(l)
                    .or_insert_with(|| format!("{} (not fully scanned)", spec.name));
            }
        }
        if crate::provenance::absorb_output(spec, output, &cfg.directory, session) {
            labels.insert(UNTRUSTED.into(), spec.name.clone());
            crate::holds::note_untrusted(session, &permitted.resource_labels);
        }
        let subject = spec
            .subject
            .as_deref()
            .and_then(|field| crate::own::subject_of(output, field, &cfg.directory));
        crate::own::note_subject(
            session,
            labels.keys().map(String::as_str),
            subject.as_deref(),
        );
        let call_no = session.calls;
        for (label, source) in &labels {
            if label == PRIVILEGED_ADVICE {
                continue;
            }
            if cfg.sensitive.contains(label) {
                session.sensitive_read = true;
            }
            if session.taint.contains_key(label.as_str()) {
                // First source wins: nothing to build.
                continue;
            }
            session.add_label(LabelSource {
                label: label.as_str().into(),
                source: source.as_str().into(),
                call: call_no,
                at_ms: now_ms,
                session: Some(session.id.as_str().into()),
            });
        }
        usage.bytes = usage.bytes.saturating_add(output.len() as u64);
        usage.records = usage
            .records
            .saturating_add(count_records(spec.records, output));
        labels.into_keys().collect()
    }
}

/// How many distinct email addresses make content personal data (a contact list, not a
/// signature or a mention).
pub const EMAILS_FOR_PII: usize = 3;

/// The labels content carries according to its scan. One or two email addresses are a mention,
/// not personal data; every other finding counts. When findings were capped, every label the
/// scan saw counts.
pub fn content_labels(scan: &Scan, max_findings: usize) -> BTreeSet<String> {
    if scan.findings.len() >= max_findings {
        return scan.labels.clone();
    }
    let mut out: BTreeSet<String> = scan
        .findings
        .iter()
        .filter(|f| f.detector != "email")
        .map(|f| f.label.clone())
        .collect();
    let emails: BTreeSet<(usize, Option<&str>)> = scan
        .findings
        .iter()
        .filter(|f| f.detector == "email")
        .map(|f| (f.offset, f.encoding.as_deref()))
        .collect();
    if emails.len() >= EMAILS_FOR_PII {
        out.insert("pii".into());
    }
    out
}

/// Every label a tool's output could carry: its catalog labels plus what detectors find.
fn spec_max_labels(spec: &ToolSpec, cfg: &Config) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = spec.possible_labels();
    out.insert("secret".into());
    out.insert("pii".into());
    out.retain(|l| cfg.is_confidentiality(l));
    out
}

fn count_records(kind: RecordCount, output: &str) -> u64 {
    match kind {
        RecordCount::None => 0,
        RecordCount::Lines => output.lines().filter(|l| !l.trim().is_empty()).count() as u64,
        RecordCount::JsonArray => match serde_json::from_str::<Value>(output) {
            Ok(Value::Array(a)) => a.len() as u64,
            Ok(Value::Object(m)) => m
                .values()
                .find_map(|v| v.as_array().map(|a| a.len() as u64))
                .unwrap_or(1),
            _ => output.lines().filter(|l| !l.trim().is_empty()).count() as u64,
        },
    }
}
