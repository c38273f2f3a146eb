//! Content detectors: secrets, PII, privileged advice and encoded payloads.
//!
//! [`Detectors::scan`] looks at one text and returns the labels it carries
//! ([`LABEL_SECRET`], [`LABEL_PII`], [`LABEL_PRIVILEGED_ADVICE`]) with redacted findings.
//!
//! # What is detected
//!
//! * **Secrets**: PEM private keys, AWS access key ids, GitHub, GitLab, Slack, Stripe,
//!   Google, npm, SendGrid and LLM API tokens, JWTs, bearer and HTTP basic credentials,
//!   connection strings with a password (`scheme://user:pass@host`), and `KEY=value` /
//!   `"key": "value"` lines whose key names a secret (`*_TOKEN`, `password`, `apiKey`,
//!   `AWS_SECRET_ACCESS_KEY`, …) and whose value is real (≥ 8 bytes, not a placeholder
//!   such as `changeme`, `<…>`, `${…}`, not code such as `os.getenv(…)`).
//! * **PII**: e-mail addresses, phone numbers (international `+CC …` and US formats),
//!   US SSNs (invalid ranges excluded), card numbers (issuer prefix, length and Luhn
//!   checked) and IBANs (country length and mod-97 checked).
//! * **Privileged advice**: phrases telling the reader to widen access ("grant
//!   all-employees read access", "add everyone to the group", "make the bucket public",
//!   "chmod -R o+rwx", "disable MFA", "set the ACL to public-read", `allUsers`, "open the
//!   repo to the whole company", "loosen the permissions so anyone can read it", "remove the
//!   IP allowlist", "promote bob to org owner", "everyone should get read access", …),
//!   unless negated just before ("don't", "never", "avoid"); the same advice in German,
//!   French, Spanish, Portuguese and Japanese; commands of the common tools (gcloud,
//!   gsutil, aws, az, kubectl, chmod, chown, setfacl, usermod, gpasswd, gh, glab) and
//!   configuration (IAM JSON, Terraform, Kubernetes YAML, sudoers, SQL `GRANT`) that widen
//!   access; and the deployer's own rules ([`Detectors::with_advice_rules`]).
//! * **Encoded payloads**: runs of ≥ 24 base64 (standard or URL-safe) characters and
//!   of ≥ 32 hex digits are decoded; when the result is text it is scanned again, up
//!   to [`ScanLimits::max_decode_depth`] layers, and findings inside carry the
//!   `encoding`.
//!   Base32 runs (either case) are decoded the same way.
//! * **Normalised views**: each layer is also read as a person would see it: NFKC, look-alike
//!   letters folded (TR39 confusables), invisible characters removed; inline escapes
//!   (percent, HTML character references, JSON `\u`, quoted-printable) decoded; characters
//!   kept apart by separators joined; and backwards. See the `normalize` module; findings in a
//!   view carry the view's name as `encoding`.
//! * **Fingerprints** ([`fingerprint`]): secrets a mission read are recognised in part, and a
//!   secret split over a mission's calls is recognised when its last part is sent.
//!
//! # How a scan stays fast
//!
//! Ordinary text is read by few passes, each linear and most skipping nearly all bytes:
//!
//! 1. Literal-prefixed regexes (token shapes, `://`, `@`, `+`): the regex engine jumps
//!    between literal hits with SIMD prefilters.
//! 2. One combined regex for everything else, reporting *candidates* only: keys that
//!    name a secret followed by a separator, the object words privileged advice needs
//!    (`access`, `everyone`, `public`, `admin`, `mfa`, …), runs of nine or more digits,
//!    and IBAN shapes. Candidates are then judged in code or by small anchored regexes
//!    on a short window: a key's value, the verb in the 80 bytes before an object word
//!    (`grant`, `add`, `make`, …) and that verb's phrase, the group sizes of a digit run.
//! 3. A byte loop that jumps 24 bytes at a time looking for long base64/hex runs.
//!
//! # Bounds
//!
//! All regexes are linear-time (`regex` crate). A scan reads at most
//! [`ScanLimits::max_bytes`] of its input, and decoded payloads are charged to the same
//! byte budget. Candidate checks are charged to a work budget proportional to the
//! input, which only text built so that nearly every word is a candidate can exhaust.
//! Whatever is not scanned or checked (the tail past the limit, a payload over the
//! budget or past the decode depth, candidates past the work budget) sets
//! [`Scan::truncated`], which callers treat as "carries the most sensitive label".
//! If the detectors could not be built, every scan is `truncated` (fail closed).

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::bytes::Regex;

mod advice;
mod encoded;
pub mod fingerprint;
mod normalize;
mod pii;
mod secrets;
mod text;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_normalize;

pub use advice::rules::{AdviceRule, RuleError};

/// Label of credentials and keys.
pub const LABEL_SECRET: &str = "secret";
/// Label of personal data (e-mail, phone, SSN, card number, IBAN).
pub const LABEL_PII: &str = "pii";
/// Label of text that tells its reader to widen access.
pub const LABEL_PRIVILEGED_ADVICE: &str = "privileged-advice";

/// The labels the detectors can produce, in no particular order.
pub const ALL_LABELS: [&str; 3] = [LABEL_SECRET, LABEL_PII, LABEL_PRIVILEGED_ADVICE];

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
        Self {
            max_bytes: 1 << 20,
            max_decode_depth: 2,
            max_findings: 32,
        }
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
    /// `base64`, `base32` or `hex` when the match was inside a decoded payload (the innermost
    /// encoding, for a payload inside a payload); `unicode`, `escapes`, `spaced` or `reversed`
    /// when it was found in a normalised view of the text (the offset is then where the
    /// match starts in the text, when that can be told).
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
    /// True when some of the text was not scanned (over `max_bytes` or decode depth), or
    /// some candidates were not checked (over the work budget); callers treat such text as
    /// carrying the most sensitive label.
    pub truncated: bool,
    /// True when [`Detectors::scan_bytes`] judged the input binary (not UTF-8, or holding
    /// control bytes); only its printable runs were scanned. Always false for [`Detectors::scan`].
    pub binary: bool,
    /// The secret values found, each folded to lowercase ASCII letters and digits (at most
    /// [`fingerprint::MAX_VALUES`] values of [`fingerprint::MAX_VALUE_BYTES`] bytes). Used to
    /// fingerprint what a mission read; never serialised.
    #[serde(skip)]
    pub secret_values: Vec<Vec<u8>>,
}

/// Compiled detectors, built once and shared.
#[derive(Debug, Clone)]
pub struct Detectors {
    limits: ScanLimits,
    /// The deployer's own privileged-advice rules.
    rules: advice::rules::Rules,
}

impl Default for Detectors {
    fn default() -> Self {
        Self::new(ScanLimits::default())
    }
}

/// The compiled regexes, shared by every [`Detectors`] of the process.
#[derive(Debug)]
struct Compiled {
    secrets: secrets::Secrets,
    pii: pii::Pii,
    advice: advice::Advice,
    /// One pass for everything without a literal prefix: secret key words, advice
    /// object words, digit runs (cards, SSNs, US phones) and IBANs.
    combined: Regex,
}

impl Compiled {
    fn build() -> Option<Self> {
        let combined = format!(
            "(?-u)(?i:{env})|(?i:{objects})|{iban}|{digits}",
            env = secrets::ENV_KEY,
            objects = advice::OBJECTS,
            iban = pii::IBAN,
            digits = pii::DIGIT_RUN,
        );
        Some(Self {
            secrets: secrets::Secrets::build().ok()?,
            pii: pii::Pii::build().ok()?,
            advice: advice::Advice::build().ok()?,
            combined: Regex::new(&combined).ok()?,
        })
    }
}

static COMPILED: LazyLock<Option<Compiled>> = LazyLock::new(Compiled::build);

impl Detectors {
    /// Build the detectors with the given limits.
    pub fn new(limits: ScanLimits) -> Self {
        LazyLock::force(&COMPILED);
        normalize::warm();
        Self {
            limits,
            rules: advice::rules::Rules::default(),
        }
    }

    /// The same detectors, also flagging as privileged advice any text matching one of
    /// `rules` (case-insensitive regular expressions); a rule that does not compile or
    /// matches empty text is refused.
    pub fn with_advice_rules(mut self, rules: &[AdviceRule]) -> Result<Self, RuleError> {
        self.rules = advice::rules::Rules::build(rules)?;
        Ok(self)
    }

    /// The limits in force.
    pub fn limits(&self) -> &ScanLimits {
        &self.limits
    }

    /// True when the detectors compiled; when false every scan is `truncated` (fail closed).
    pub fn is_operational(&self) -> bool {
        COMPILED.is_some()
    }

    /// Scan one text.
    pub fn scan(&self, text: &str) -> Scan {
        let bytes = text.as_bytes();
        let (head, truncated) = self.head(bytes);
        self.run(head, truncated, true)
    }

    /// Scan one text without its normalised views (Unicode, escapes, spaced, reversed): the
    /// text and its encoded payloads only. This misses what those views find; it exists to
    /// measure what they cost, and is not used to decide.
    #[doc(hidden)]
    pub fn scan_without_views(&self, text: &str) -> Scan {
        let (head, truncated) = self.head(text.as_bytes());
        self.run(head, truncated, false)
    }

    /// Scan raw bytes that may not be UTF-8 text.
    ///
    /// Text (valid UTF-8 without control bytes other than whitespace and ESC) is scanned
    /// exactly as [`Detectors::scan`] would. Anything else is marked [`Scan::binary`] and
    /// only its printable ASCII runs of 4 bytes or more are scanned; offsets still
    /// point into `bytes`.
    pub fn scan_bytes(&self, bytes: &[u8]) -> Scan {
        let (head, truncated) = self.head(bytes);
        if !looks_binary(head) {
            return self.run(head, truncated, true);
        }
        let cleaned = printable_runs(head);
        let mut scan = self.run(&cleaned, truncated, true);
        scan.binary = true;
        scan
    }

    /// The first `max_bytes` of `bytes`, and whether anything was cut.
    fn head<'b>(&self, bytes: &'b [u8]) -> (&'b [u8], bool) {
        match bytes.get(..self.limits.max_bytes) {
            Some(head) if bytes.len() > self.limits.max_bytes => (head, true),
            _ => (bytes, false),
        }
    }

    fn run(&self, head: &[u8], truncated: bool, views: bool) -> Scan {
        let Some(compiled) = COMPILED.as_ref() else {
            return Scan {
                truncated: true,
                ..Scan::default()
            };
        };
        let mut ctx = Ctx {
            limits: &self.limits,
            re: compiled,
            rules: &self.rules,
            out: Scan {
                truncated,
                ..Scan::default()
            },
            budget: self.limits.max_bytes.saturating_sub(head.len()),
            view_budget: VIEWS_PER_BYTE
                .saturating_mul(head.len())
                .saturating_add(WORK_BASE),
            chain: Vec::new(),
            views,
            work: WORK_PER_BYTE
                .saturating_mul(head.len())
                .saturating_add(WORK_BASE),
        };
        ctx.scan_layer(head, 0, None);
        ctx.out
    }
}

/// Verification work allowed per input byte, on top of the linear regex passes.
const WORK_PER_BYTE: usize = 16;
/// Verification work allowed for any input, however short.
const WORK_BASE: usize = 64 << 10;
/// Bytes of normalised views allowed per input byte (on top of `WORK_BASE`).
const VIEWS_PER_BYTE: usize = 3;

/// The state of one scan: what was found so far and the remaining budgets.
struct Ctx<'a> {
    limits: &'a ScanLimits,
    re: &'a Compiled,
    rules: &'a advice::rules::Rules,
    out: Scan,
    /// Bytes that decoded payloads may still add to the scan.
    budget: usize,
    /// Bytes that candidate checks (phrase regexes, value parsing, card windows) may
    /// still examine. Ordinary text uses a small fraction; text built to make every
    /// word a candidate runs out, and the scan is then marked truncated (fail closed).
    work: usize,
    /// Bytes that normalised views may still add to the scan.
    view_budget: usize,
    /// The layers being scanned, innermost last: a view's map back to its layer, or `None`
    /// for a decoded payload (whose offsets cannot be mapped back to the input).
    chain: Vec<Option<normalize::Frame>>,
    /// Whether normalised views are built (always, except to measure their cost).
    views: bool,
}

/// One layer being scanned (the input, or a decoded payload) and what its detectors share.
struct Layer<'h> {
    hay: &'h [u8],
    encoding: Option<&'static str>,
    /// Secrets already reported, so a `KEY=value` line does not report the same value again.
    secret_spans: Vec<(usize, usize)>,
    /// Phone numbers already reported, so `+1 (415) 555-2671` is one finding.
    phone_spans: Vec<(usize, usize)>,
    /// End of the last `KEY=value` value looked at.
    env_until: usize,
    advice: advice::State,
}

/// What a match of the combined regex is.
enum Anchor {
    Env,
    Object,
    Iban,
    Digits,
}

impl Anchor {
    fn of(m: &[u8]) -> Self {
        if matches!(m.last(), Some(b':' | b'=' | b'>')) {
            return Self::Env;
        }
        let first = m.first().copied().unwrap_or(b' ');
        if first.is_ascii_digit() || first == b'(' || first == b':' {
            return if m.iter().any(|&b| b.is_ascii_alphabetic() || b == b'/') {
                Self::Object
            } else {
                Self::Digits
            };
        }
        if m.len() >= 15
            && m.get(2..4)
                .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        {
            return Self::Iban;
        }
        Self::Object
    }
}

impl Ctx<'_> {
    /// Run every detector over one layer (the input, or a decoded payload).
    fn scan_layer(&mut self, hay: &[u8], depth: u8, encoding: Option<&'static str>) {
        let re = self.re;
        let mut layer = Layer {
            hay,
            encoding,
            secret_spans: Vec::new(),
            phone_spans: Vec::new(),
            env_until: 0,
            advice: advice::State::default(),
        };
        re.secrets.scan_tokens(self, &mut layer);
        re.pii.scan_fast(self, &mut layer);
        for m in re.combined.find_iter(hay) {
            if self.saturated() {
                return;
            }
            match Anchor::of(m.as_bytes()) {
                Anchor::Env => re.secrets.env_at(m.start(), m.end(), self, &mut layer),
                Anchor::Object => re.advice.object(m.start(), m.as_bytes(), self, &mut layer),
                Anchor::Iban => re.pii.iban_at(m.start(), m.end(), self, &layer),
                Anchor::Digits => re.pii.digits_at(m.start(), m.end(), self, &mut layer),
            }
        }
        if !self.rules.is_empty() {
            let rules = self.rules;
            rules.scan(self, &layer);
        }
        if !self.saturated() {
            encoded::scan(hay, depth, self);
        }
        if self.views && !self.saturated() {
            normalize::scan_views(hay, depth, self);
        }
    }

    /// Run the secret detectors only over a view (spaced-out or reversed text), and with
    /// `payloads`, decode the encoded payloads it holds (a hex dump written in pairs).
    fn scan_secrets(
        &mut self,
        hay: &[u8],
        encoding: Option<&'static str>,
        payloads: (bool, u8),
        env: bool,
    ) {
        let re = self.re;
        let mut layer = Layer {
            hay,
            encoding,
            secret_spans: Vec::new(),
            phone_spans: Vec::new(),
            env_until: 0,
            advice: advice::State::default(),
        };
        re.secrets.scan_tokens(self, &mut layer);
        for m in re.combined.find_iter(hay).take_while(|_| env) {
            if !self.wants(LABEL_SECRET) {
                return;
            }
            if matches!(Anchor::of(m.as_bytes()), Anchor::Env) {
                re.secrets.env_at(m.start(), m.end(), self, &mut layer);
            }
        }
        let (decode, depth) = payloads;
        if decode && !self.saturated() {
            encoded::scan(hay, depth, self);
        }
    }

    /// Keep a found secret value (folded) for fingerprints of what was read.
    fn secret_value(&mut self, value: &[u8]) {
        if self.out.secret_values.len() >= fingerprint::MAX_VALUES {
            return;
        }
        let cut = value
            .get(..fingerprint::MAX_VALUE_BYTES.min(value.len()))
            .unwrap_or(value);
        let folded = normalize::canonical(&String::from_utf8_lossy(cut));
        if folded.len() >= fingerprint::GRAM && !self.out.secret_values.contains(&folded) {
            self.out.secret_values.push(folded);
        }
    }

    /// Where an offset of the current layer is in the input, when every layer between them
    /// is a view (not a decoded payload); `None` at the input itself or under a payload.
    fn input_offset(&self, offset: usize) -> Option<usize> {
        if self.chain.is_empty() {
            return None;
        }
        self.chain.iter().rev().try_fold(offset, |off, frame| {
            frame
                .as_ref()
                .map(|f| normalize::layer_offset(&f.map, off + f.base))
        })
    }

    /// Charge `cost` bytes of candidate checking; false (and the scan truncated) when
    /// the work budget is spent.
    fn charge(&mut self, cost: usize) -> bool {
        match self.work.checked_sub(cost) {
            Some(left) => {
                self.work = left;
                true
            }
            None => {
                self.work = 0;
                self.out.truncated = true;
                false
            }
        }
    }

    /// Whether a finding with `label` could still change the result.
    fn wants(&self, label: &str) -> bool {
        self.out.findings.len() < self.limits.max_findings || !self.out.labels.contains(label)
    }

    /// True when no finding can change the result any more.
    fn saturated(&self) -> bool {
        self.out.findings.len() >= self.limits.max_findings
            && self.out.labels.len() >= ALL_LABELS.len()
    }

    /// Record a finding; the excerpt is only built when the finding is kept.
    fn report(
        &mut self,
        detector: &str,
        label: &str,
        offset: usize,
        encoding: Option<&'static str>,
        excerpt: impl FnOnce() -> String,
    ) {
        // A view finds again what its text shows plainly: report each finding once, where
        // it starts in the input.
        let mut offset = offset;
        if let Some(at) = self.input_offset(offset) {
            if self
                .out
                .findings
                .iter()
                .any(|f| f.offset == at && f.detector == detector && f.label == label)
            {
                return;
            }
            offset = at;
        }
        if !self.out.labels.contains(label) {
            self.out.labels.insert(label.to_owned());
        }
        if self.out.findings.len() < self.limits.max_findings {
            self.out.findings.push(Finding {
                detector: detector.to_owned(),
                label: label.to_owned(),
                offset,
                encoding: encoding.map(str::to_owned),
                excerpt: excerpt(),
            });
        }
    }
}

/// Not UTF-8, or holding control bytes other than whitespace and ESC.
fn looks_binary(bytes: &[u8]) -> bool {
    // Branch-free over each chunk, so the loop vectorises.
    let control = |b: u8| (b < 0x09) | ((b > 0x0d) & (b < 0x20) & (b != 0x1b)) | (b == 0x7f);
    bytes
        .chunks(512)
        .any(|c| c.iter().fold(false, |acc, &b| acc | control(b)))
        || std::str::from_utf8(bytes).is_err()
}

/// A copy of `bytes` where everything outside printable ASCII runs of at least 4 bytes
/// is replaced by `\n`, so matches cannot span binary junk and offsets are kept.
fn printable_runs(bytes: &[u8]) -> Vec<u8> {
    const MIN_RUN: usize = 4;
    let printable = |b: u8| b.is_ascii_graphic() || matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let mut out = bytes.to_vec();
    let mut start = 0;
    for end in 0..=out.len() {
        if out.get(end).is_some_and(|&b| printable(b)) {
            continue;
        }
        // `start..end` is a printable run; `end` (if any) is a junk byte.
        if end - start < MIN_RUN {
            if let Some(run) = out.get_mut(start..end) {
                run.fill(b'\n');
            }
        }
        if let Some(b) = out.get_mut(end) {
            *b = b'\n';
        }
        start = end + 1;
    }
    out
}
