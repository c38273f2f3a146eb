//! Privileged advice in English phrases.
//!
//! The combined scan reports the words such advice needs (`access`, `everyone`,
//! `public`, `admin`, `mfa`, …), which are far rarer than the verbs that start it
//! (`grant`, `add`, `make`, `set`, …). At each such word the few bytes before it are
//! searched for a verb whose phrases can use the word, and only then is that verb's
//! anchored phrase regex tried, so ordinary text costs almost nothing beyond the
//! combined scan. A few tokens (`chmod`, `acl`, `allUsers`, `Principal`) are checked at once.

use regex::bytes::Regex;
use std::sync::LazyLock;

use super::super::text::{before, is, is_word, phrase, slice, starts_with_ci};
use super::super::{Ctx, Layer, LABEL_PRIVILEGED_ADVICE};

/// How far after its verb a phrase may reach.
const WINDOW: usize = 200;
/// How far before an object word its verb is looked for.
const LOOKBACK: usize = 80;

/// One word of a phrase (names, group names, paths, quoted names).
const W: &str = r"[a-z0-9_@./'`*:-]+";
/// Audiences that mean "everyone".
const BROAD: &str = r"(?:every(?:one|body)|any(?:one|body)|all[ -](?:employees|users|staff|members|people|contractors|engineers|engineering|hands|authenticated[ -]users)|all\s+(?:the\s+)?(?:employees|users|staff|members|people|contractors|engineers)|all|allusers|allauthenticatedusers|(?:the\s+)?public|the\s+(?:whole|entire)\s+(?:company|org|organi[sz]ation|team|internet|world)|the\s+world|the\s+internet|contractors|external\s+(?:users|guests|people)|guests?|anonymous(?:\s+users)?|domain\s+users|authenticated\s+users)\b";
/// Access levels worth asking about.
const LEVEL: &str = r"(?:read|write|read[/-]?write|read\s+and\s+write|rw|edit|editor|full|admin|administrator|administrative|owner|ownership|root|superuser|sudo|elevated|unrestricted|privileged|delete|manage|management|maintainer|push|all)";
/// What an access level is of.
const NOUN: &str = r"(?:access|permissions?|rights|privileges?|role|perms)\b";
/// Groups whose members hold privilege.
const PRIV_GROUP: &str = r"(?:admins|administrators|owners|superusers|sudoers|wheel|org[ -]?admins|domain\s+admins|(?:admin|administrator|owner|owners|sudo|superuser|root|privileged)\s+(?:group|role|team|list|file|users))\b";
/// Roles that hold privilege.
const PRIV_ROLE: &str =
    r"(?:admin|administrator|owner|co-owner|superuser|root|sudoer|maintainer|org\s+owner)s?\b";
/// Controls that protect access.
const AUTHN_ALL: &str = r"(?:authentication|authn|auth|authorization|authz|2fa|mfa|two[- ]?factor|2[- ]?step(?:\s+verification)?|multi[- ]?factor|sso|single\s+sign[- ]on|password\s+(?:requirements?|protection|checks?|policy)|access\s+controls?|permission\s+checks?|acls?|rbac|tls\s+verification|ssl\s+verification|certificate\s+(?:verification|validation|checks?)|firewall|ip\s+allow-?list(?:ing)?|branch\s+protection|audit\s+logging|security\s+checks?)\b";
/// The controls whose removal is unambiguous.
const AUTHN_STRONG: &str = r"(?:authentication|2fa|mfa|two[- ]?factor(?:\s+auth(?:entication)?)?|multi[- ]?factor(?:\s+auth(?:entication)?)?|sso|password\s+requirements?|access\s+controls?|permission\s+checks?|branch\s+protection|rbac)\b";
/// What may follow "make X public" for it to be about visibility, not "a public talk".
const AFTER_PUBLIC: &str = r#"(?:\s*$|\s*[.,;:!?)"'`\n]|\s+(?:so|to|and|for|by|on|in|via|with|again|now|please|immediately|temporarily|then|if|when|because|but|or|until|too|as|asap|quickly|instead|permanently|would|will|should|could|can|might|must|is|was)\b)"#;

/// Families of verbs, each with its anchored phrase patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    Chmod,
    Grant,
    Add,
    Make,
    Share,
    Disable,
    Remove,
    Turn,
    Set,
    Enable,
    Open,
    Acl,
    AllUsers,
    Principal,
    /// A broad audience as the subject: "everyone should get read access".
    Subject,
}

impl Family {
    pub(super) fn of(word: &[u8]) -> Option<Self> {
        let (first, last) = (word.first()? | 0x20, word.last()? | 0x20);
        if !first.is_ascii_lowercase() || !last.is_ascii_lowercase() || word.len() >= 32 {
            return None;
        }
        let lens = FILTER
            .get(usize::from(first - b'a'))
            .and_then(|row| row.get(usize::from(last - b'a')))
            .copied()
            .unwrap_or(0);
        if lens & (1 << word.len()) == 0 {
            return None;
        }
        BY_FIRST
            .get(usize::from(first - b'a'))?
            .iter()
            .find(|(w, _)| w.len() == word.len() && w.eq_ignore_ascii_case(word))
            .map(|&(_, f)| f)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// Families whose trigger is checked at once, without waiting for an object word.
    fn immediate(self) -> bool {
        matches!(
            self,
            Self::Chmod | Self::Acl | Self::AllUsers | Self::Principal | Self::Subject
        )
    }

    /// The anchored phrase patterns of this family; the verb is matched again by `\w+`.
    fn patterns(self) -> Vec<String> {
        let v = r"^[a-z]+";
        match self {
            Self::Chmod => vec![format!(
                r"^chmod\s+(?:-{{1,2}}[a-z-]+\s+)*(?:0?[0-7]?[0-7][0-7][2367]\b|(?:[ugoa]*[+=-][rwxXst]*,)*[ugoa]*[oa][ugoa]*[+=][rwxXst]*w[rwxXst]*\b)"
            )],
            Self::Grant => vec![
                format!(r"{v}\s+(?:{W}\s+){{0,4}}?{LEVEL}\s+{NOUN}"),
                format!(r"{v}\s+(?:{W}\s+){{0,3}}?(?:access|permissions?|rights|privileges?)\s+(?:{W}\s+){{0,5}}?(?:to|for|with)\s+{BROAD}"),
                format!(r"{v}\s+{BROAD}\s+(?:{W}\s+){{0,2}}?(?:access|permissions?|rights|privileges?|role)\b"),
                format!(r"^grant(?:ing)?\s+(?:{W}\s+){{0,3}}?to\s+{BROAD}"),
                // "grant Domain Users local admin": the role ends the phrase or names what it is.
                format!(r"{v}\s+{BROAD}\s+(?:{W}\s+){{0,2}}?{PRIV_ROLE}(?:\s*(?:$|[.,;:!?)])|\s+(?:access|rights|role|permissions?|privileges?|on|to|in|for|over)\b)"),
            ],
            Self::Add => vec![
                format!(r"{v}\s+{BROAD}\s+(?:to|into)\s+(?:{W}\s+){{0,3}}?(?:groups?|teams?|channels?|roles?|org|organi[sz]ation|repo|repository|project|acl|allow-?list|whitelist|list|workspace|space|server|vault|admins|owners|sudoers)\b"),
                format!(r"{v}\s+(?:{W}\s+){{1,3}}?(?:to|into)\s+(?:{W}\s+){{0,2}}?{PRIV_GROUP}"),
                format!(r"{v}\s+(?:{W}\s+){{1,3}}?as\s+(?:an?\s+)?(?:{W}\s+)?{PRIV_ROLE}"),
                format!(r"^(?:promot|elevat)(?:e|es|ing)\s+(?:{W}\s+){{1,3}}?to\s+(?:an?\s+)?(?:{W}\s+)?{PRIV_ROLE}"),
            ],
            Self::Make => vec![
                format!(r"{v}\s+(?:{W}\s+){{1,3}}?(?:public(?:ly\s+(?:readable|accessible|available|visible|writable|writeable))?|world[- ]?(?:readable|writable|writeable|accessible))\b"),
                format!(r"{v}\s+(?:{W}\s+){{1,3}}?(?:accessible|readable|writable|writeable|visible|available|open)\s+(?:to|by|for)\s+{BROAD}"),
                format!(r"{v}\s+{W}\s+an?\s+{PRIV_ROLE}"),
                format!(r"{v}\s+{W}\s+(?:an?\s+)?(?:owner|admin|administrator)\s+(?:of|on|in|for)\b"),
            ],
            Self::Share => vec![
                format!(r"{v}\s+(?:{W}\s+){{0,4}}?(?:with|to)\s+{BROAD}"),
                format!(r"{v}\s+(?:{W}\s+){{0,3}}?publicly\b"),
                format!(r"{v}\s+(?:{W}\s+){{0,4}}?public\s+links?\b"),
            ],
            Self::Disable => vec![format!(r"{v}\s+(?:{W}\s+){{0,2}}?{AUTHN_ALL}")],
            Self::Remove => vec![format!(
                r"{v}\s+(?:{W}\s+){{0,2}}?(?:{AUTHN_STRONG}|ip\s+allow-?list(?:ing)?\b)"
            )],
            Self::Turn => vec![
                format!(r"{v}\s+off\s+(?:{W}\s+){{0,2}}?{AUTHN_ALL}"),
                format!(r"{v}\s+(?:{W}\s+){{0,2}}?{AUTHN_ALL}\s+off\b"),
                format!(r"{v}\s+on\s+(?:{W}\s+)?(?:public|anonymous|unauthenticated|guest)\s+(?:{W}\s+)?(?:access|reads?|writes?|uploads?|sharing|links?|listing|logins?)\b"),
                format!(r"{v}\s+(?:{W}\s+){{0,3}}?(?:to|as)\s+public{AFTER_PUBLIC}"),
            ],
            Self::Set => vec![
                format!(r#"{v}\s+(?:{W}\s+){{0,3}}?(?:acls?|visibility|access|permissions?|perms|sharing|policy|access\s+level|privacy|mode|role|permission\s+level)\s+(?:settings?\s+)?(?:to|=|:|as)\s*["'`]?(?:public(?:-read(?:-write)?)?\b|everyone|anyone|anybody|open\b|world[- ]?readable|world[- ]?writable|0?777\b|0?666\b|all\s+users|anyone\s+with\s+the\s+link|admin\b|owner\b|administrator\b|superuser\b)"#),
                format!(r"{v}\s+(?:{W}\s+){{0,3}}?(?:to|as)\s+public{AFTER_PUBLIC}"),
            ],
            Self::Enable => vec![
                format!(r"{v}(?:\s+on)?\s+(?:{W}\s+)?(?:public|anonymous|unauthenticated|guest|everyone|anyone|world|external)\s+(?:{W}\s+)?(?:access|reads?|writes?|uploads?|sharing|links?|listing|logins?|users?)\b"),
                format!(r"{v}\s+{BROAD}\s+to\s+(?:read|write|access|edit|see|view|download|modify|delete|admin|manage)\b"),
                format!(r"{v}\s+(?:{W}\s+){{0,4}}?from\s+(?:anywhere|0\.0\.0\.0/0|::/0|any\s+ip|all\s+ips)"),
            ],
            Self::Open => vec![
                format!(r"{v}\s+(?:up\s+)?(?:{W}\s+){{0,4}}?to\s+(?:(?:the\s+)?(?:world|internet|public|everyone|everybody|anyone|all[ -]employees|0\.0\.0\.0/0|all\s+ips)\b|{BROAD})"),
                format!(r"{v}\s+(?:{W}\s+){{0,3}}?(?:access|permissions?|perms|rights|acls?|sharing|restrictions?)\s+(?:(?:{W}\s+){{0,4}}?so\s+(?:that\s+)?)?{BROAD}\s+(?:can|could|may|will)\b"),
                format!(r"{v}\s+(?:up\s+)?(?:{W}\s+){{0,3}}?access\s+(?:{W}\s+){{0,4}}?(?:to|for)\s+{BROAD}"),
            ],
            Self::Acl => vec![r#"^acls?["']?\s*(?:[:=]|\s+to|\s+of|\s+is|\s+as)?\s*["']?public-read(?:-write)?\b"#.to_owned()],
            Self::AllUsers => vec![r"^all(?:authenticated)?users\b".to_owned()],
            Self::Subject => vec![format!(
                r"^(?:every|any)(?:one|body)\s+(?:in\s+(?:the\s+)?(?:company|org|organi[sz]ation|team)\s+)?(?:should|can|could|must|will|would|may|needs?\s+to)\s+(?:(?:also|now|then|just|all)\s+)?(?:get|have|be\s+given|be\s+granted|receive)\s+(?:{W}\s+){{0,2}}?(?:{LEVEL}\s+{NOUN}|(?:an?\s+)?{PRIV_ROLE})"
            )],
            Self::Principal => vec![
                r#"^principal["']?\s*[:=]\s*(?:["']\*["']|\*|\{\s*["']aws["']\s*:\s*(?:["']\*["']|\[\s*["']\*["']\s*\])\s*\})"#
                    .to_owned(),
            ],
        }
    }
}

/// The verbs and tokens that start each family's phrases.
const WORDS: &[(&str, Family)] = {
    use Family::*;
    &[
        ("chmod", Chmod),
        ("grant", Grant),
        ("granting", Grant),
        ("give", Grant),
        ("giving", Grant),
        ("provide", Grant),
        ("providing", Grant),
        ("assign", Grant),
        ("assigning", Grant),
        ("extend", Grant),
        ("add", Add),
        ("adding", Add),
        ("invite", Add),
        ("inviting", Add),
        ("promote", Add),
        ("promotes", Add),
        ("promoting", Add),
        ("elevate", Add),
        ("elevates", Add),
        ("elevating", Add),
        ("make", Make),
        ("making", Make),
        ("share", Share),
        ("sharing", Share),
        ("disable", Disable),
        ("disabling", Disable),
        ("deactivate", Disable),
        ("deactivating", Disable),
        ("bypass", Disable),
        ("bypassing", Disable),
        ("circumvent", Disable),
        ("remove", Remove),
        ("removing", Remove),
        ("drop", Remove),
        ("dropping", Remove),
        ("skip", Remove),
        ("skipping", Remove),
        ("turn", Turn),
        ("turning", Turn),
        ("switch", Turn),
        ("switching", Turn),
        ("set", Set),
        ("setting", Set),
        ("change", Set),
        ("changing", Set),
        ("update", Set),
        ("updating", Set),
        ("configure", Set),
        ("configuring", Set),
        ("convert", Set),
        ("flip", Set),
        ("enable", Enable),
        ("enabling", Enable),
        ("allow", Enable),
        ("allowing", Enable),
        ("permit", Enable),
        ("permitting", Enable),
        ("open", Open),
        ("opening", Open),
        ("expose", Open),
        ("exposing", Open),
        ("loosen", Open),
        ("loosening", Open),
        ("relax", Open),
        ("relaxing", Open),
        ("widen", Open),
        ("widening", Open),
        ("broaden", Open),
        ("broadening", Open),
        ("acl", Acl),
        ("acls", Acl),
        ("allusers", AllUsers),
        ("allauthenticatedusers", AllUsers),
        ("principal", Principal),
        ("everyone", Subject),
        ("everybody", Subject),
        ("anyone", Subject),
        ("anybody", Subject),
    ]
};

/// The words of one first letter, with their families.
type Bucket = Vec<(&'static [u8], Family)>;

/// [`WORDS`] by first letter (in their order), so a look-up compares a few words only.
static BY_FIRST: LazyLock<Vec<Bucket>> = LazyLock::new(|| {
    let mut by: Vec<Bucket> = vec![Vec::new(); 26];
    for &(w, f) in WORDS {
        let first = w.as_bytes().first().map(|b| (b | 0x20).wrapping_sub(b'a'));
        if let Some(bucket) = first.and_then(|k| by.get_mut(usize::from(k))) {
            bucket.push((w.as_bytes(), f));
        }
    }
    by
});

/// A quick filter before the table: bit `len` of `FILTER[first][last]` is set when some
/// word of `WORDS` of that length starts with `first` and ends with `last` (`a`–`z`).
const FILTER: [[u32; 26]; 26] = {
    let mut t = [[0u32; 26]; 26];
    let mut i = 0;
    while i < WORDS.len() {
        let w = WORDS[i].0.as_bytes();
        t[(w[0] - b'a') as usize][(w[w.len() - 1] - b'a') as usize] |= 1 << w.len();
        i += 1;
    }
    t
};

/// ASCII letters, digits and `_`.
static WORD_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u8).is_ascii_alphanumeric() || i == b'_' as usize;
        i += 1;
    }
    t
};

/// All families, in a fixed order (the index into `Advice::phrases`).
pub(super) const FAMILIES: [Family; 15] = [
    Family::Chmod,
    Family::Grant,
    Family::Add,
    Family::Make,
    Family::Share,
    Family::Disable,
    Family::Remove,
    Family::Turn,
    Family::Set,
    Family::Enable,
    Family::Open,
    Family::Acl,
    Family::AllUsers,
    Family::Principal,
    Family::Subject,
];

/// The compiled English phrase detector.
#[derive(Debug)]
pub(super) struct English {
    /// One anchored alternation per family, in the order of `FAMILIES`.
    pub(super) phrases: Vec<Regex>,
}

/// Per-layer state of the English phrase detector.
#[derive(Debug, Default)]
pub(super) struct State {
    /// End of the last reported phrase: a verb inside it is not tried again.
    covered: usize,
    /// Verbs are known up to here: each byte is searched for verbs once.
    scanned: usize,
    /// Verbs found within `LOOKBACK` of the last object and not tried yet (each verb is
    /// tried once, at the first object its phrases can use).
    recent: Vec<(usize, Family)>,
}

impl English {
    pub(super) fn build() -> Result<Self, regex::Error> {
        let phrases = FAMILIES
            .iter()
            .map(|f| Regex::new(&format!("(?i-u)(?:{})", f.patterns().join("|"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { phrases })
    }

    /// An object word (or immediate token) `word` at `pos`.
    pub(super) fn object(&self, pos: usize, word: &[u8], ctx: &mut Ctx<'_>, layer: &mut Layer<'_>) {
        if !ctx.wants(LABEL_PRIVILEGED_ADVICE) {
            return;
        }
        if let Some(family) = Family::of(word).filter(|f| f.immediate()) {
            if pos >= layer.advice.english.covered {
                self.try_phrase(family, pos, ctx, layer);
            }
            // `acl` and a broad subject are objects of earlier verbs too.
            if !matches!(family, Family::Acl | Family::Subject) {
                return;
            }
        }
        let mask = object_families(word);
        let st = &mut layer.advice.english;
        let from = pos.saturating_sub(LOOKBACK).max(st.scanned);
        if from < pos {
            if !ctx.charge(pos - from) {
                return;
            }
            let (verbs, n) = verbs_before(layer.hay, from, pos);
            st.recent.extend_from_slice(verbs.get(..n).unwrap_or(&[]));
            st.scanned = pos;
        }
        let lo = pos.saturating_sub(LOOKBACK).max(st.covered);
        st.recent.retain(|&(v, _)| v >= lo);
        while let Some(k) = layer
            .advice
            .english
            .recent
            .iter()
            .position(|&(_, f)| mask & f.bit() != 0)
        {
            let (v, family) = layer.advice.english.recent.remove(k);
            if v >= layer.advice.english.covered {
                self.try_phrase(family, v, ctx, layer);
            }
        }
    }

    /// Run the family's phrase regex at `pos`; report it unless negated.
    fn try_phrase(&self, family: Family, pos: usize, ctx: &mut Ctx<'_>, layer: &mut Layer<'_>) {
        let hay = layer.hay;
        let Some(idx) = FAMILIES.iter().position(|&f| f == family) else {
            return;
        };
        let Some(re) = self.phrases.get(idx) else {
            return;
        };
        let window = slice(hay, pos, hay.len().min(pos + WINDOW));
        if !ctx.charge(window.len()) {
            return;
        }
        let Some(m) = re.find(window) else { return };
        if family == Family::Make && !public_is_complement(m.as_bytes()) {
            return;
        }
        if negated(hay, pos)
            || (matches!(family, Family::AllUsers | Family::Acl | Family::Principal)
                && super::negated_after(hay, pos + m.end()))
        {
            return;
        }
        layer.advice.english.covered = pos + m.end();
        ctx.report(
            "privileged-advice",
            LABEL_PRIVILEGED_ADVICE,
            pos,
            layer.encoding,
            || phrase(m.as_bytes(), 64),
        );
    }
}

/// The verbs (whole words) in `hay[lo..hi]`, in order, with their families (at most 16).
fn verbs_before(hay: &[u8], lo: usize, hi: usize) -> ([(usize, Family); 16], usize) {
    let mut out = [(0usize, Family::Chmod); 16];
    let mut n = 0;
    let region = slice(hay, lo, hi);
    let mut check = |ws: usize, we: usize| {
        let family = region.get(ws..we).and_then(Family::of);
        if let (Some(family), Some(slot)) = (family, out.get_mut(n)) {
            *slot = (lo + ws, family);
            n += 1;
        }
    };
    // A word cut by `lo` is not a whole word: start after the first non-word byte.
    let mut ws = if is(before(hay, lo), is_word) {
        None
    } else {
        Some(0)
    };
    for (i, &b) in region.iter().enumerate() {
        if !WORD_BYTE[usize::from(b)] {
            if let Some(start) = ws.filter(|&s| s < i) {
                check(start, i);
            }
            ws = Some(i + 1);
        }
    }
    if let Some(start) = ws.filter(|&s| s < region.len()) {
        check(start, region.len());
    }
    (out, n)
}

/// The families whose phrases can use an object word (a bit per family).
fn object_families(word: &[u8]) -> u16 {
    use Family::*;
    const BROAD: &[&[u8]] = &[
        b"every",
        b"any",
        b"all",
        b"public",
        b"world",
        b"internet",
        b"contractor",
        b"guest",
        b"anonymous",
        b"unauthenticated",
        b"external",
        b"whole",
        b"entire",
        b"domain",
        b"authenticated",
        b"0.0.0.0",
        b"::/0",
    ];
    const ACCESS: &[&[u8]] = &[
        b"access",
        b"permission",
        b"perms",
        b"rights",
        b"privilege",
        b"role",
        b"visibility",
    ];
    const PRIV: &[&[u8]] = &[
        b"admin",
        b"owner",
        b"co-owner",
        b"superuser",
        b"sudo",
        b"wheel",
        b"root",
        b"privileged",
        b"maintainer",
    ];
    let bits = |fs: &[Family]| fs.iter().fold(0u16, |acc, f| acc | f.bit());
    let starts = |list: &[&[u8]]| list.iter().any(|w| starts_with_ci(word, w));
    // `allowlist` is a control, though it starts like `all`.
    if starts(BROAD) && !starts_with_ci(word, b"allow") {
        bits(&[Grant, Add, Make, Share, Set, Enable, Open, Turn])
    } else if starts(ACCESS) {
        bits(&[Grant, Open, Set, Disable, Remove, Turn, Enable])
    } else if starts(PRIV) {
        bits(&[Grant, Add, Make, Set])
    } else {
        // Controls: auth, MFA, TLS verification, firewall, ACLs, …
        bits(&[Disable, Remove, Turn, Set])
    }
}

/// True when one of the (up to) three words before `pos`, in the same clause, negates it:
/// "don't chmod 777", "never disable MFA", "avoid making the bucket public".
pub(super) fn negated(hay: &[u8], pos: usize) -> bool {
    const NEGATIONS: &[&[u8]] = &[
        b"not",
        b"dont",
        b"never",
        b"shouldnt",
        b"mustnt",
        b"cant",
        b"cannot",
        b"wont",
        b"avoid",
        b"no",
        b"stop",
        b"refuse",
        b"without",
        b"nobody",
        b"doesnt",
        b"didnt",
        b"isnt",
        b"arent",
        b"wouldnt",
        b"neither",
        b"nor",
        // The same words in the other languages advice is recognised in (letters only:
        // `não` reads `no`, `jamás` reads `jams`).
        b"nicht",
        b"nie",
        b"niemals",
        b"kein",
        b"keine",
        b"keinen",
        b"jamais",
        b"pas",
        b"ne",
        b"nunca",
        b"jams",
        b"evitez",
        b"evitar",
        b"evite",
    ];
    let back = slice(hay, pos.saturating_sub(48), pos);
    let clause_start = back
        .iter()
        .rposition(|&b| matches!(b, b'.' | b'!' | b'?' | b';' | b',' | b':' | b'\n'))
        .map_or(0, |i| i + 1);
    let clause = slice(back, clause_start, back.len());
    clause
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .rev()
        .take(3)
        .any(|w| {
            let letters: Vec<u8> = w
                .iter()
                .filter(|b| b.is_ascii_alphabetic())
                .map(u8::to_ascii_lowercase)
                .collect();
            NEGATIONS.contains(&letters.as_slice())
        })
}

/// For "make X public": true unless the word before `public` is a determiner, as in
/// "make a public announcement" or "make sure our public API is fast".
fn public_is_complement(m: &[u8]) -> bool {
    const DETERMINERS: &[&[u8]] = &[
        b"a", b"an", b"the", b"this", b"that", b"these", b"those", b"some", b"any", b"more",
        b"most", b"our", b"your", b"their", b"its", b"his", b"her", b"my", b"sure", b"certain",
        b"no", b"every", b"each", b"new",
    ];
    let words: Vec<Vec<u8>> = m
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .map(<[u8]>::to_ascii_lowercase)
        .collect();
    let Some(i) = words
        .iter()
        .rposition(|w| w.starts_with(b"public") || w.starts_with(b"world"))
    else {
        return true;
    };
    let before = i.checked_sub(1).and_then(|j| words.get(j));
    !before.is_some_and(|w| DETERMINERS.contains(&w.as_slice()))
}
