//! Privileged advice: text telling its reader to widen access.
//!
//! A keyword regex finds the verbs that start such advice (`grant`, `add`, `make`,
//! `share`, `disable`, `chmod`, …). Only at those places is the verb's own anchored
//! phrase regex tried on a short window, so ordinary text costs one cheap pass.

use regex::bytes::Regex;

use super::text::{phrase, slice};
use super::{Ctx, LABEL_PRIVILEGED_ADVICE};

/// The verbs and tokens that can start privileged advice.
const TRIGGER: &str = r"(?i-u)\b(?:chmod|grant|granting|give|giving|provide|providing|assign|assigning|extend|add|adding|make|making|share|sharing|disable|disabling|deactivate|deactivating|bypass|bypassing|circumvent|turn|turning|switch|switching|remove|removing|skip|skipping|set|setting|change|changing|update|updating|configure|configuring|convert|flip|enable|enabling|allow|allowing|permit|permitting|open|opening|expose|exposing|acl|acls|allusers|allauthenticatedusers|principal)\b";

/// How far after the trigger a phrase may reach.
const WINDOW: usize = 200;

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
enum Family {
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
}

impl Family {
    fn of(word: &[u8]) -> Option<Self> {
        let w = word.to_ascii_lowercase();
        let f = match w.as_slice() {
            b"chmod" => Self::Chmod,
            b"grant" | b"granting" | b"give" | b"giving" | b"provide" | b"providing"
            | b"assign" | b"assigning" | b"extend" => Self::Grant,
            b"add" | b"adding" => Self::Add,
            b"make" | b"making" => Self::Make,
            b"share" | b"sharing" => Self::Share,
            b"disable" | b"disabling" | b"deactivate" | b"deactivating" | b"bypass"
            | b"bypassing" | b"circumvent" => Self::Disable,
            b"remove" | b"removing" | b"skip" | b"skipping" => Self::Remove,
            b"turn" | b"turning" | b"switch" | b"switching" => Self::Turn,
            b"set" | b"setting" | b"change" | b"changing" | b"update" | b"updating"
            | b"configure" | b"configuring" | b"convert" | b"flip" => Self::Set,
            b"enable" | b"enabling" | b"allow" | b"allowing" | b"permit" | b"permitting" => {
                Self::Enable
            }
            b"open" | b"opening" | b"expose" | b"exposing" => Self::Open,
            b"acl" | b"acls" => Self::Acl,
            b"allusers" | b"allauthenticatedusers" => Self::AllUsers,
            b"principal" => Self::Principal,
            _ => return None,
        };
        Some(f)
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
            ],
            Self::Add => vec![
                format!(r"{v}\s+{BROAD}\s+(?:to|into)\s+(?:{W}\s+){{0,3}}?(?:groups?|teams?|channels?|roles?|org|organi[sz]ation|repo|repository|project|acl|allow-?list|whitelist|list|workspace|space|server|vault|admins|owners|sudoers)\b"),
                format!(r"{v}\s+(?:{W}\s+){{1,3}}?(?:to|into)\s+(?:{W}\s+){{0,2}}?{PRIV_GROUP}"),
                format!(r"{v}\s+(?:{W}\s+){{1,3}}?as\s+(?:an?\s+)?(?:{W}\s+)?{PRIV_ROLE}"),
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
            Self::Remove => vec![format!(r"{v}\s+(?:{W}\s+){{0,2}}?{AUTHN_STRONG}")],
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
                format!(r"{v}\s+(?:up\s+)?(?:{W}\s+){{0,4}}?to\s+(?:the\s+)?(?:world|internet|public|everyone|everybody|anyone|all[ -]employees|0\.0\.0\.0/0|all\s+ips)\b"),
                format!(r"{v}\s+(?:up\s+)?(?:{W}\s+){{0,3}}?access\s+(?:{W}\s+){{0,4}}?(?:to|for)\s+{BROAD}"),
            ],
            Self::Acl => vec![r#"^acls?["']?\s*(?:[:=]|\s+to|\s+of|\s+is|\s+as)?\s*["']?public-read(?:-write)?\b"#.to_owned()],
            Self::AllUsers => vec![r"^all(?:authenticated)?users\b".to_owned()],
            Self::Principal => vec![
                r#"^principal["']?\s*[:=]\s*(?:["']\*["']|\*|\{\s*["']aws["']\s*:\s*(?:["']\*["']|\[\s*["']\*["']\s*\])\s*\})"#
                    .to_owned(),
            ],
        }
    }
}

/// All families, in a fixed order (the index into `Advice::phrases`).
const FAMILIES: [Family; 14] = [
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
];

/// The compiled privileged-advice detector.
#[derive(Debug)]
pub(super) struct Advice {
    pub(super) trigger: Regex,
    /// One anchored alternation per family, in the order of `FAMILIES`.
    phrases: Vec<Regex>,
}

impl Advice {
    pub(super) fn build() -> Result<Self, regex::Error> {
        let phrases = FAMILIES
            .iter()
            .map(|f| Regex::new(&format!("(?i-u)(?:{})", f.patterns().join("|"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            trigger: Regex::new(TRIGGER)?,
            phrases,
        })
    }

    pub(super) fn scan(&self, hay: &[u8], enc: Option<&'static str>, ctx: &mut Ctx<'_>) {
        if !ctx.wants(LABEL_PRIVILEGED_ADVICE) {
            return;
        }
        // End of the last reported phrase: a trigger inside it is not reported again.
        let mut covered = 0;
        for t in self.trigger.find_iter(hay) {
            if t.start() < covered {
                continue;
            }
            let Some(family) = Family::of(t.as_bytes()) else {
                continue;
            };
            let Some(idx) = FAMILIES.iter().position(|&f| f == family) else {
                continue;
            };
            let Some(re) = self.phrases.get(idx) else {
                continue;
            };
            let window = slice(hay, t.start(), hay.len().min(t.start() + WINDOW));
            let Some(m) = re.find(window) else { continue };
            if family == Family::Make && !public_is_complement(m.as_bytes()) {
                continue;
            }
            if negated(hay, t.start()) {
                continue;
            }
            covered = t.start() + m.end();
            ctx.report(
                "privileged-advice",
                LABEL_PRIVILEGED_ADVICE,
                t.start(),
                enc,
                || phrase(m.as_bytes(), 64),
            );
            if !ctx.wants(LABEL_PRIVILEGED_ADVICE) {
                return;
            }
        }
    }
}

/// True when one of the (up to) three words before `pos`, in the same clause, negates it:
/// "don't chmod 777", "never disable MFA", "avoid making the bucket public".
fn negated(hay: &[u8], pos: usize) -> bool {
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
