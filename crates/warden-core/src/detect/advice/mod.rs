//! Privileged advice: text telling its reader to widen access, in any of the forms it takes.
//!
//! The combined scan reports candidate words; each is handed to the recognisers that can use
//! it, and each recogniser looks only at a bounded window around it:
//!
//! * [`english`]: English phrases, a verb (`grant`, `make`, `open`, …) before an object word
//!   (`access`, `everyone`, `public`, …) and that verb's anchored phrase;
//! * [`commands`]: a command line (`gcloud`, `gsutil`, `aws`, `az`, `kubectl`, `chmod`,
//!   `setfacl`, `usermod`, `gh`, …) read by a shell-like tokenizer and judged by the
//!   recogniser of its tool;
//! * [`shapes`]: a key and its value in configuration (JSON, YAML, HCL, flags): a broad
//!   principal, a public ACL, an admin role, a public-access block turned off, a sudoers
//!   line, an SQL `GRANT`;
//! * [`lexicon`]: a sentence in German, French, Spanish, Portuguese or Japanese, judged by
//!   per-language lexicons (widening verbs × broad audiences × permission words, with
//!   negation) on its lower-cased NFKC form;
//! * [`rules`]: the deployer's own patterns, from configuration.
//!
//! Each recogniser remembers how far it has read, so every byte is judged a bounded number
//! of times, and all of them charge their work to the scan's budget.

use super::text::{phrase, slice, starts_with_ci};
use super::{Ctx, Layer, LABEL_PRIVILEGED_ADVICE};

mod commands;
mod english;
mod lexicon;
pub mod rules;
mod shapes;

#[cfg(test)]
mod tests;

/// The candidate words: those every English phrase needs (matched as word prefixes), the
/// tokens of the immediate families, command names, configuration keys and values, and
/// the permission words of the other languages. None may start with a secret keyword
/// (`pass…`, `token…`, `secret…`): the combined scan prefers those. None may end with `:`,
/// `=` or `>`, which mark a secret's key.
pub(super) const OBJECTS: &str = concat!(
    // English phrases.
    r"\b(?:chmod\b|acls?\b|allusers\b|allauthenticatedusers\b|principal\b|access|permission|perms\b|rights\b|privilege|role|every(?:one|body)|any(?:one|body|where)|all[ -](?:employees|users|staff|members|people|contractors|engineers|engineering|hands|authenticated)|all\s+the\s+(?:employees|users|staff|members|people|contractors|engineers)|public|world|internet|contractors|guest|anonymous|unauthenticated|external|whole|entire|domain\s+(?:users|admins)|authenticated\s+users|admin|owner|co-owner|superuser|sudo|wheel|root|privileged|maintainer|auth|2fa|mfa|factor|2[- ]?step|sso|sign[- ]on|requirement|acl|rbac|tls|ssl|certificate|firewall|allow-?list|protection|audit|security|visibility|any\s+ip)|0\.0\.0\.0/0|::/0",
    // Commands.
    r"|\b(?:gcloud|gsutil|aws|az|kubectl|oc|chown|chgrp|setfacl|usermod|useradd|gpasswd|adduser|addgroup|gh|glab)\b|\b(?:add-)?localgroup",
    // Configuration keys and values.
    r#"|["']\*["']|\broles/|\bsystem:(?:un)?authenticated\b|\bsystem:anonymous\b|\bsystem:serviceaccounts\b|\bcluster-?admin\b|\bclusterrole|administratoraccess\b|poweruseraccess\b|iamfullaccess\b"#,
    r#"|block_?public|ignore_?public|restrict_?public|allow_?blob_?public|\bprivate["']?\s*[:=]\s*["']?false\b|\bdomain:[a-z0-9]|\bgroup=all\b|\bverbs?["']?\s*[:=]\s*\[?\s*["']?\*|\bmode["']?\s*[:=]\s*["']?0?[0-7]{3}\b|_permissions?\b"#,
    // SQL and sudoers.
    r"|\bgrant\s+all\b|\b(?:grant|admin)\s+option\b|\b(?:createrole|bypassrls|sysadmin|db_owner|rds_superuser|cloudsqlsuperuser|azure_pg_admin|pg_read_all_data|pg_write_all_data|sp_addsrvrolemember|sp_addrolemember)\b|\bnopasswd\b|\ball\s*=\s*\(",
    // Permission, publicity and authentication words of the other languages.
    r"|zugriff|zugreif|zugang|berechtigung|rechte\b|öffentlich|Öffentlich|authentifizierung|\bacc(?:e|è|È)s\b|\bdroits?\b|autorisation|privil(?:e|è|é)ge|privilegio|\bacceso|\bacesso|\bpermiso|\bpermiss(?:õ|o)es|\bderechos\b|\bdireitos\b|\bp(?:ú|Ú)blic|authentification|autenticaci|autentica(?:ç|c)|権限|アクセス|公開|認証|管理者|パブリック",
    // Broad audiences of the other languages.
    r"|\btout\s+le\s+monde\b|\btodo\s+(?:el\s+)?mundo\b|\btoda\s+a\s+gente\b|\bn'importe\s+qui\b|\bqualquer\s+(?:um|pessoa)\b|\bcualquier(?:a|\s+persona)\b|\bjedermann\b|全員|誰でも",
);

/// How far a sentence reaches from its candidate word, each way.
const SENTENCE: usize = 240;

/// Per-layer state of the advice recognisers.
#[derive(Debug, Default)]
pub(super) struct State {
    english: english::State,
    /// End of the last command read: a command word inside it is not read again.
    command_until: usize,
    /// End of the last sentence judged by the lexicons.
    sentence_until: usize,
    /// Text of the other languages is looked for up to here …
    foreign_scanned: usize,
    /// … and was last seen here.
    foreign_last: Option<usize>,
}

/// The compiled privileged-advice recognisers.
#[derive(Debug)]
pub(super) struct Advice {
    english: english::English,
    shapes: shapes::Shapes,
}

impl Advice {
    pub(super) fn build() -> Result<Self, regex::Error> {
        Ok(Self {
            english: english::English::build()?,
            shapes: shapes::Shapes::build()?,
        })
    }

    /// A candidate word `word` at `pos`.
    pub(super) fn object(&self, pos: usize, word: &[u8], ctx: &mut Ctx<'_>, layer: &mut Layer<'_>) {
        if !ctx.wants(LABEL_PRIVILEGED_ADVICE) {
            return;
        }
        let hay = layer.hay;
        if commands::is_command(word) {
            if pos >= layer.advice.command_until {
                let (words, end) = commands::words(hay, pos);
                if !ctx.charge(end.saturating_sub(pos)) {
                    return;
                }
                layer.advice.command_until = end;
                if let Some(why) = commands::widens(&words) {
                    if !english::negated(hay, pos) {
                        report(ctx, layer, pos, end, why);
                    }
                }
            }
            return;
        }
        // An English object word may be the start of a longer key or value
        // (`roles/owner`, `AdministratorAccess`): shapes see the whole of it.
        let full_end = (pos + word.len()..hay.len().min(pos + 48))
            .find(|&i| {
                !hay.get(i).is_some_and(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-')
                })
            })
            .unwrap_or(hay.len().min(pos + 48))
            .max(pos + word.len());
        let full = if word.iter().all(u8::is_ascii_alphanumeric) {
            slice(hay, pos, full_end)
        } else {
            word
        };
        if !ctx.charge(shapes::cost(full)) {
            return;
        }
        if let Some((end, why)) = self.shapes.at(hay, pos, full) {
            if !english::negated(hay, pos) && !negated_after(hay, end) {
                report(ctx, layer, pos, end, why);
            }
        }
        if pos >= layer.advice.sentence_until && self.foreign_near(pos, word, ctx, layer) {
            let (start, end) = sentence(hay, pos);
            if !ctx.charge(4 * (end - start)) {
                return;
            }
            layer.advice.sentence_until = end;
            if let Some(why) = lexicon::judge(slice(hay, start, end)) {
                report(ctx, layer, start, end, why);
            }
        }
        // `allUsers` in a command that removes or reads it is not advice.
        if (starts_with_ci(word, b"allusers") || starts_with_ci(word, b"allauthenticatedusers"))
            && shapes::removing(hay, pos)
        {
            return;
        }
        self.english.object(pos, word, ctx, layer);
    }
}

impl Advice {
    /// True when the candidate is a word of the other languages, or their text is within
    /// [`FOREIGN_NEAR`] bytes of it. Each byte is looked at once per layer.
    fn foreign_near(
        &self,
        pos: usize,
        word: &[u8],
        ctx: &mut Ctx<'_>,
        layer: &mut Layer<'_>,
    ) -> bool {
        if lexicon::is_foreign_word(layer.hay, pos, word) {
            return true;
        }
        let st = &mut layer.advice;
        let from = pos.saturating_sub(FOREIGN_NEAR).max(st.foreign_scanned);
        let to = layer.hay.len().min(pos + FOREIGN_NEAR);
        if from < to {
            if !ctx.charge(to - from) {
                return false;
            }
            if let Some(at) = lexicon::foreign_signal(layer.hay, from, to) {
                st.foreign_last = Some(at);
            }
            st.foreign_scanned = to;
        }
        st.foreign_last.is_some_and(|at| at + FOREIGN_NEAR >= pos)
    }
}

/// How near a candidate text of the other languages must be for its sentence to be judged.
const FOREIGN_NEAR: usize = 96;

/// Report a finding of `hay[pos..end]`.
fn report(ctx: &mut Ctx<'_>, layer: &Layer<'_>, pos: usize, end: usize, why: &str) {
    let text = slice(layer.hay, pos, end.min(pos + 64));
    ctx.report(
        "privileged-advice",
        LABEL_PRIVILEGED_ADVICE,
        pos,
        layer.encoding,
        || format!("{why}: {}", phrase(text, 48)),
    );
}

/// The sentence around `pos`: from after the last sentence end before it to the next one
/// after it, at most [`SENTENCE`] bytes each way.
fn sentence(hay: &[u8], pos: usize) -> (usize, usize) {
    let lo = pos.saturating_sub(SENTENCE);
    let hi = hay.len().min(pos.saturating_add(SENTENCE));
    let ends = |w: &[u8], i: usize| -> bool {
        match w.get(i) {
            Some(b'\n' | b'!' | b'?') => true,
            Some(b'.') => w.get(i + 1).is_none_or(|n| n.is_ascii_whitespace()),
            // 。！？ (E3 80 82, EF BC 81, EF BC 9F): their last byte.
            Some(0x82) => i >= 2 && w.get(i - 2..i) == Some(&[0xe3, 0x80][..]),
            Some(0x81 | 0x9f) => i >= 2 && w.get(i - 2..i) == Some(&[0xef, 0xbc][..]),
            _ => false,
        }
    };
    let start = (lo..pos)
        .rev()
        .find(|&i| ends(hay, i))
        .map_or(lo, |i| i + 1);
    let end = (pos..hi).find(|&i| ends(hay, i)).map_or(hi, |i| i + 1);
    (start, end)
}

/// True when the rest of the clause after `end` negates what came before it: "allUsers
/// must never be bound", "… n'est jamais accordé", "… 決して…ない".
pub(super) fn negated_after(hay: &[u8], end: usize) -> bool {
    const AFTER: &[&[u8]] = &[
        b"never",
        b"not",
        b"nie",
        b"niemals",
        b"nicht",
        b"jamais",
        b"nunca",
        b"jamas",
        b"dangerous",
        b"insecure",
        b"unsafe",
    ];
    let rest = slice(hay, end, hay.len().min(end + 64));
    let clause_end = rest
        .iter()
        .position(|&b| matches!(b, b'.' | b'!' | b'?' | b';' | b',' | b'\n'))
        .unwrap_or(rest.len());
    let clause = slice(rest, 0, clause_end);
    clause
        .split(|b| !b.is_ascii_alphabetic() && *b < 0x80)
        .any(|w| {
            let letters: Vec<u8> = w
                .iter()
                .filter(|b| b.is_ascii_alphabetic())
                .map(u8::to_ascii_lowercase)
                .collect();
            AFTER.contains(&letters.as_slice())
        })
}

/// Principals that mean everyone (or everyone signed in), as tools spell them.
pub(super) fn is_broad_principal(p: &str) -> bool {
    let p = p
        .trim_matches(['"', '\'', '[', ']', ' '])
        .to_ascii_lowercase();
    let p = p.strip_prefix("group:").unwrap_or(&p);
    matches!(
        p,
        "allusers"
            | "allauthenticatedusers"
            | "all-users"
            | "all users"
            | "everyone"
            | "everybody"
            | "anyone"
            | "*"
            | "public"
            | "anonymous"
            | "guest"
            | "guests"
            | "users"
            | "nobody"
            | "authenticated users"
            | "authenticatedusers"
            | "domain users"
            | "system:authenticated"
            | "system:unauthenticated"
            | "system:anonymous"
            | "system:serviceaccounts"
    )
}

/// Unix, Windows and directory groups whose members hold administrative power.
pub(super) fn is_priv_group(g: &str) -> bool {
    let g = g.trim_matches(['"', '\'', ' ']).to_ascii_lowercase();
    matches!(
        g.as_str(),
        "sudo"
            | "wheel"
            | "admin"
            | "admins"
            | "adm"
            | "root"
            | "docker"
            | "lxd"
            | "disk"
            | "shadow"
            | "sudoers"
            | "administrators"
            | "domain admins"
            | "enterprise admins"
            | "libvirt"
            | "staff"
    )
}

/// Files whose contents are secret (keys, password hashes, credentials).
pub(super) fn is_secret_path(p: &str) -> bool {
    let p = p.to_ascii_lowercase();
    if p.ends_with(".pub") {
        return false;
    }
    const PARTS: &[&str] = &[
        "/etc/shadow",
        "/etc/gshadow",
        "/etc/sudoers",
        "/etc/ssl/private",
        ".ssh",
        "id_rsa",
        "id_ed25519",
        "id_ecdsa",
        "id_dsa",
        ".pem",
        ".key",
        ".env",
        "credentials",
        ".aws/",
        ".kube/",
        "kubeconfig",
        ".netrc",
        ".pgpass",
        ".gnupg",
        "secret",
        "private",
        "vault",
        "docker.sock",
        "/root",
    ];
    PARTS.iter().any(|x| p.contains(x))
}

/// System paths whose owner controls the machine.
pub(super) fn is_system_path(p: &str) -> bool {
    let p = p.trim_end_matches('/').to_ascii_lowercase();
    const PREFIXES: &[&str] = &[
        "/etc",
        "/bin",
        "/sbin",
        "/usr/bin",
        "/usr/sbin",
        "/usr/local/bin",
        "/boot",
        "/lib",
        "/usr/lib",
        "/var/run/docker.sock",
        "/run/docker.sock",
    ];
    PREFIXES
        .iter()
        .any(|x| p == *x || p.strip_prefix(x).is_some_and(|r| r.starts_with('/')))
}
