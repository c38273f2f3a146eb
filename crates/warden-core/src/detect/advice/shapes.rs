//! Privileged advice written as configuration: a key and its value that widen access,
//! whatever the syntax (JSON, YAML, HCL, INI, command flags, query strings).
//!
//! At a candidate word the key before it or the value after it is read from a bounded
//! window, reduced to its letters and digits (`block_public_acls`, `BlockPublicAcls` and
//! `block-public-acls` are one key), and judged:
//!
//! * a broad principal: `"Principal": "*"`, `members = ["allUsers"]`, `member: domain:…`,
//!   subjects `system:authenticated` in a role binding;
//! * all actions on all resources: `"Action": "*"` with `"Resource": "*"`, `verbs: ["*"]`
//!   with `resources: ["*"]`;
//! * an admin role bound: `role = "roles/owner"`, `roleRef … cluster-admin`,
//!   `AdministratorAccess` attached;
//! * public access: `acl = "public-read"`, `predefinedAcl: publicRead`, `--public-access
//!   blob`, `block_public_acls = false`, `allow_blob_public_access = true`, `visibility =
//!   "public"`, `private: false` in an update, `--allow-unauthenticated`, ingress from
//!   `0.0.0.0/0`, a world-writable `mode`;
//! * SQL that grants to everyone or grants power: `GRANT … TO PUBLIC`, `GRANT ALL`, `WITH
//!   GRANT OPTION`, `ALTER ROLE … SUPERUSER`, `sysadmin`/`db_owner` memberships;
//! * a sudoers line giving full root: `bob ALL=(ALL) NOPASSWD: ALL`, `%everyone ALL=(ALL) ALL`.
//!
//! Reading or removing (`remove-iam-policy-binding`, `REVOKE`, `kubectl get`) never widens.

use regex::bytes::Regex;

use super::super::text::{slice, starts_with_ci};
use super::commands::is_public_acl;

/// The most bytes a shape may look at around its candidate word, each way.
pub(super) const WINDOW: usize = 400;

/// The work charged for looking at the shapes around `word`: the words whose shapes read
/// whole windows are charged them, the others a little.
pub(super) fn cost(word: &[u8]) -> usize {
    const LIGHT: &[&[u8]] = &[
        b"public",
        b"block",
        b"ignore",
        b"restrict",
        b"allow",
        b"unauthenticated",
        b"mode",
        b"_permission",
        b"admin",
    ];
    const HEAVY: &[&[u8]] = &[
        b"cluster",
        b"administratoraccess",
        b"poweruseraccess",
        b"iamfullaccess",
        b"visibility",
        b"private",
        b"createrole",
        b"bypassrls",
        b"sysadmin",
        b"db_owner",
        b"rds_",
        b"cloudsql",
        b"azure_pg",
        b"pg_",
        b"superuser",
        b"sp_add",
        b"nopasswd",
        b"grant",
        b"domain:",
        b"group=",
        b"verb",
        b"roles/",
        b"system:",
        b"0.0.0.0",
        b"::/0",
        b"all",
    ];
    let starts = |list: &[&[u8]]| list.iter().any(|l| starts_with_ci(word, l));
    if starts(HEAVY) || matches!(word.first(), Some(b'"' | b'\'')) {
        2 * WINDOW
    } else if starts(LIGHT) {
        160
    } else {
        8
    }
}

/// The compiled shapes.
#[derive(Debug)]
pub(super) struct Shapes {
    /// A resource key whose value is every resource.
    any_resource: Regex,
    /// A sudoers line that gives full root.
    sudoers: Regex,
}

impl Shapes {
    pub(super) fn build() -> Result<Self, regex::Error> {
        Ok(Self {
            any_resource: Regex::new(r#"(?i-u)["']?\bresources?["']?\s*[:=]\s*\[?\s*["']\*["']"#)?,
            sudoers: Regex::new(
                r#"(?i-u)(?:^|[\s'"`>])(%?[a-z_][a-z0-9_.\\-]*|all)\s+all\s*=\s*(?:\([^)\n]{0,40}\)\s*)?((?:nopasswd|setenv|noexec)\s*:\s*)*(all\b|/(?:usr/)?s?bin/(?:ba|z|da|k)?sh\b|/(?:usr/)?bin/su\b)"#,
            )?,
        })
    }

    /// Why the configuration around the candidate `word` at `pos` widens access, and where
    /// the finding ends.
    pub(super) fn at(&self, hay: &[u8], pos: usize, word: &[u8]) -> Option<(usize, &'static str)> {
        let end = pos + word.len();
        let first = *word.first()?;
        if matches!(first, b'"' | b'\'') {
            return self.star(hay, pos, end);
        }
        let w = |p: &[u8]| starts_with_ci(word, p);
        if w(b"roles/") {
            let (_, role_end) = token(hay, pos);
            let role = lower(slice(hay, pos, role_end));
            let key = key_before(hay, pos);
            return (key.ends_with("role") && is_admin_role(&role) && !removing(hay, pos))
                .then_some((role_end, "admin role bound"));
        }
        if w(b"system:") {
            let around = lower(window(hay, pos, WINDOW));
            let binds = [
                "rolebinding",
                "subjects",
                "--group",
                "add-cluster-role-to-group",
                "add-role-to-group",
            ];
            return (binds.iter().any(|b| around.contains(b)) && !removing(hay, pos))
                .then_some((end, "role bound to everyone"));
        }
        if w(b"cluster-admin") || w(b"clusteradmin") {
            let around = lower(window(hay, pos, WINDOW));
            let binds = [
                "roleref",
                "--clusterrole",
                "add-cluster-role",
                "rolebinding",
            ];
            return (binds.iter().any(|b| around.contains(b)) && !removing(hay, pos))
                .then_some((end, "admin role bound"));
        }
        if w(b"administratoraccess") || w(b"poweruseraccess") || w(b"iamfullaccess") {
            let around = canon(window(hay, pos, 200));
            let attach = ["attach", "policyarn", "managedpolicyarns"];
            return (attach.iter().any(|a| around.contains(a)) && !removing(hay, pos))
                .then_some((end, "admin policy attached"));
        }
        if w(b"domain:") {
            let key = key_before(hay, pos);
            return (key.ends_with("member") || key.ends_with("members"))
                .then_some((end, "binding for a whole domain"));
        }
        if w(b"group=all") {
            let around = canon(window(hay, pos, 200));
            return (around.contains("modify")
                && around.contains("attribute")
                && !around.contains("remove"))
            .then_some((end, "shared with everyone"));
        }
        if w(b"verb") {
            return self.star(hay, pos, end);
        }
        if w(b"mode") || w(b"_permission") {
            let v = value_after(hay, if w(b"mode") { pos + 4 } else { end });
            let digits: Vec<u32> = v.chars().filter_map(|c| c.to_digit(8)).collect();
            let other = digits.last().copied().unwrap_or(0);
            return ((3..=4).contains(&digits.len()) && v.len() == digits.len() && other & 2 != 0)
                .then_some((end, "world-writable mode"));
        }
        if w(b"private") {
            let assign = slice(hay, pos, end).contains(&b'=') || write_context(hay, pos);
            return assign.then_some((end, "repository made public"));
        }
        if w(b"visibility") {
            let (_, key_end) = token(hay, pos);
            let key = canon(slice(hay, pos, key_end));
            let sep = separator(hay, key_end);
            let v = value_after(hay, key_end);
            let public = matches!(v.as_str(), "public" | "internal")
                || (key == "visibilitylevel" && matches!(v.as_str(), "20" | "10"));
            let flag = slice(hay, pos.saturating_sub(2), pos) == b"--";
            let assigns =
                flag || sep == Some(b'=') || (sep == Some(b':') && write_context(hay, pos));
            return (public && assigns).then_some((key_end, "repository made public"));
        }
        if w(b"unauthenticated") {
            let before = lower(slice(hay, pos.saturating_sub(9), pos));
            return ((before.ends_with("allow-") || before.ends_with("allow_"))
                && !before.contains("no-allow"))
            .then_some((end, "unauthenticated access allowed"));
        }
        if w(b"0.0.0.0/0") || w(b"::/0") {
            let key = key_before(hay, pos);
            let ingress = {
                let back = lower(slice(hay, pos.saturating_sub(WINDOW), pos));
                back.rfind("ingress").unwrap_or(0) > back.rfind("egress").map_or(0, |e| e + 1)
                    || back.rfind("ingress").is_some() && back.rfind("egress").is_none()
            };
            let open = [
                "sourcerange",
                "authorizednetwork",
                "sourceaddressprefix",
                "cidrip",
                "allowedips",
                "ipallowlist",
                "whitelist",
                "allowlist",
            ]
            .iter()
            .any(|k| key.contains(k))
                || (key.contains("cidr") && ingress);
            return open.then_some((end, "open to any address"));
        }
        if w(b"public") || w(b"block") || w(b"ignore") || w(b"restrict") || w(b"allow") {
            if let Some(found) = public_key(hay, pos) {
                return Some(found);
            }
        }
        // SQL and sudoers, only at their own words: ordinary prose costs nothing more.
        let before = slice(hay, pos.saturating_sub(3), pos);
        let after = slice(hay, end, hay.len().min(end + 12)).trim_ascii_start();
        let sql = (w(b"public")
            && before.len() == 3
            && starts_with_ci(before, b"to")
            && before.ends_with(b" "))
            || (w(b"admin") && word.len() == 5 && starts_with_ci(after, b"option"))
            || (w(b"all") && word.contains(&b'='))
            || [
                &b"nopasswd"[..],
                b"grant",
                b"superuser",
                b"createrole",
                b"bypassrls",
                b"sysadmin",
                b"db_owner",
                b"rds_superuser",
                b"cloudsqlsuperuser",
                b"azure_pg_admin",
                b"pg_read_all",
                b"pg_write_all",
                b"sp_add",
            ]
            .iter()
            .any(|p| w(p));
        if !sql {
            return None;
        }
        self.sql_or_sudoers(hay, pos, word)
    }

    /// `"*"` as the value of an action, verb or principal key.
    fn star(&self, hay: &[u8], pos: usize, end: usize) -> Option<(usize, &'static str)> {
        let key = key_before(hay, pos);
        let key = if key.is_empty() {
            canon(slice(hay, pos, end))
        } else {
            key
        };
        if matches!(
            key.as_str(),
            "identifiers" | "principals" | "aws" | "principal"
        ) {
            return Some((end, "permission for any principal"));
        }
        let wide = key.ends_with("action") || key.ends_with("actions") || key.starts_with("verb");
        (wide && self.any_resource.is_match(window(hay, pos, WINDOW)))
            .then_some((end, "all actions on all resources"))
    }

    /// SQL grants and sudoers lines.
    fn sql_or_sudoers(&self, hay: &[u8], pos: usize, word: &[u8]) -> Option<(usize, &'static str)> {
        let end = pos + word.len();
        let w = |p: &[u8]| starts_with_ci(word, p);
        if w(b"nopasswd") || w(b"all") {
            let (ls, le) = line(hay, pos);
            let m = self.sudoers.captures(slice(hay, ls, le))?;
            let user = lower(m.get(1).map_or(&b""[..], |u| u.as_bytes()));
            let nopasswd = m.get(2).is_some();
            let default = matches!(
                user.as_str(),
                "root" | "%sudo" | "%admin" | "%wheel" | "%root"
            );
            return (nopasswd || !default).then_some((le, "full root in sudoers"));
        }
        let back = lower(statement_before(hay, pos));
        if back.contains("revoke") || back.contains("deny") {
            return None;
        }
        let grant = back.contains("grant");
        if w(b"public") {
            let to = back.trim_end().ends_with(" to") || back.trim_end().ends_with("\tto");
            return (grant && to).then_some((end, "granted to PUBLIC"));
        }
        if w(b"grant") && starts_with_ci(word.get(6..).unwrap_or(&[]).trim_ascii_start(), b"all") {
            let next = value_after(hay, end);
            return matches!(next.as_str(), "privileges" | "on" | "to")
                .then_some((end, "GRANT ALL"));
        }
        if w(b"grant") || w(b"admin") {
            let after = lower(slice(hay, end, hay.len().min(end + 8)));
            let with_option = back.trim_end().ends_with("with")
                && (w(b"grant") || after.trim_start().starts_with("option"));
            return with_option.then_some((end, "grant option"));
        }
        if w(b"superuser") || w(b"createrole") || w(b"bypassrls") {
            let alter = ["alter role", "alter user", "create role", "create user"]
                .iter()
                .any(|a| back.contains(a));
            return (alter || grant).then_some((end, "role given superuser powers"));
        }
        if w(b"sp_add") {
            let after = lower(slice(hay, end, hay.len().min(end + 80)));
            return [
                "sysadmin",
                "securityadmin",
                "serveradmin",
                "db_owner",
                "db_securityadmin",
            ]
            .iter()
            .any(|r| after.contains(r))
            .then_some((end, "admin role membership"));
        }
        // sysadmin, db_owner, rds_superuser, pg_read_all_data, …
        let after = lower(slice(hay, end, hay.len().min(end + 24)));
        let member = grant
            || back.contains("alter server role")
            || back.contains("alter role")
            || back.contains("sp_add")
            || after.trim_start().starts_with("add member");
        member.then_some((end, "admin role membership"))
    }
}

/// A public-access key and its value: `--public-access blob`, `block_public_acls = false`,
/// `predefinedAcl: publicRead`, `allowBlobPublicAccess: true`, `publicly_accessible = true`.
fn public_key(hay: &[u8], pos: usize) -> Option<(usize, &'static str)> {
    let (start, tend) = token(hay, pos);
    let key = canon(slice(hay, start, tend));
    let v = canon(value_after(hay, tend).as_bytes());
    let truthy = matches!(v.as_str(), "true" | "enabled" | "yes" | "on" | "1");
    let falsy = matches!(v.as_str(), "false" | "disabled" | "no" | "off" | "0");
    if is_public_acl(&key) {
        let k = key_before(hay, start);
        return k.contains("acl").then_some((tend, "public ACL"));
    }
    let why = match key.as_str() {
        "publicaccess" | "containeraccesstype" if matches!(v.as_str(), "blob" | "container") => {
            "public container"
        }
        "allowblobpublicaccess"
        | "publicnetworkaccess"
        | "publicnetworkaccessenabled"
        | "publiclyaccessible"
        | "ispublic"
        | "public"
        | "makepublic"
        | "publicaccessenabled"
            if truthy =>
        {
            "public access allowed"
        }
        "blockpublicacls"
        | "blockpublicpolicy"
        | "ignorepublicacls"
        | "restrictpublicbuckets"
        | "blockpublicaccess"
            if falsy =>
        {
            "public access block turned off"
        }
        "deletepublicaccessblock" | "noblockpublicaccess" => "public access block turned off",
        _ => return None,
    };
    if removing(hay, pos) && why == "public access allowed" {
        return None;
    }
    Some((tend, why))
}

/// True when a cloud role is an owner, editor or administrator role.
fn is_admin_role(role: &str) -> bool {
    let r = role.trim_matches(['"', '\'']).trim_start_matches("roles/");
    matches!(r, "owner" | "editor")
        || r.contains("admin")
        || r.ends_with(".owner")
        || r.contains("serviceaccounttokencreator")
}

/// True when the line before `pos` reads or removes rather than grants.
pub(super) fn removing(hay: &[u8], pos: usize) -> bool {
    let (ls, _) = line(hay, pos);
    let back = lower(slice(hay, ls, pos));
    [
        "remove", "revoke", "delete", "detach", "get ", "get-iam", "describe", " -d ", "deny",
    ]
    .iter()
    .any(|r| back.contains(r))
}

/// True when the text around `pos` changes something (an API update, an edit command).
fn write_context(hay: &[u8], pos: usize) -> bool {
    let around = lower(window(hay, pos, 300));
    [
        "patch",
        "-x put",
        "--method put",
        "request put",
        "edit",
        "update",
        "--field",
        "-f ",
        "set ",
    ]
    .iter()
    .any(|c| around.contains(c))
}

/// The bytes within `n` of `pos`, each way.
fn window(hay: &[u8], pos: usize, n: usize) -> &[u8] {
    slice(
        hay,
        pos.saturating_sub(n),
        hay.len().min(pos.saturating_add(n)),
    )
}

/// The line around `pos` (a backslash before a newline continues it), at most 300 bytes each way.
fn line(hay: &[u8], pos: usize) -> (usize, usize) {
    let lo = pos.saturating_sub(300);
    let hi = hay.len().min(pos.saturating_add(300));
    let newline = |i: usize| {
        hay.get(i) == Some(&b'\n') && i.checked_sub(1).and_then(|j| hay.get(j)) != Some(&b'\\')
    };
    let start = (lo..pos).rev().find(|&i| newline(i)).map_or(lo, |i| i + 1);
    let end = (pos..hi).find(|&i| newline(i)).unwrap_or(hi);
    (start, end)
}

/// The statement before `pos` (since the last `;` or blank line), at most 200 bytes.
fn statement_before(hay: &[u8], pos: usize) -> &[u8] {
    let back = slice(hay, pos.saturating_sub(200), pos);
    let start = back.iter().rposition(|&b| b == b';').map_or(0, |i| i + 1);
    slice(back, start, back.len())
}

/// The key-like token around `pos`: letters, digits, `_`, `-` and `.`.
fn token(hay: &[u8], pos: usize) -> (usize, usize) {
    let key = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b':');
    let lo = pos.saturating_sub(48);
    let start = (lo..pos)
        .rev()
        .find(|&i| !hay.get(i).is_some_and(key))
        .map_or(lo, |i| i + 1);
    let hi = hay.len().min(pos + 64);
    let end = (pos..hi)
        .find(|&i| !hay.get(i).is_some_and(key))
        .unwrap_or(hi);
    (start, end)
}

/// The separator after a key at `end` (`=` or `:`), skipping quotes and spaces.
fn separator(hay: &[u8], end: usize) -> Option<u8> {
    slice(hay, end, hay.len().min(end + 8))
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'"' | b'\''))
        .copied()
        .filter(|b| matches!(b, b'=' | b':'))
}

/// The value after a key ending at `end`: separators, quotes and brackets skipped, then a
/// token, lower-cased.
fn value_after(hay: &[u8], end: usize) -> String {
    let rest = slice(hay, end, hay.len().min(end + 80));
    let skip = rest
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'"' | b'\'' | b'=' | b':' | b'[' | b'{'))
        .unwrap_or(rest.len());
    let rest = slice(rest, skip, rest.len());
    let len = rest
        .iter()
        .position(|b| {
            !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b':' | b'*'))
        })
        .unwrap_or(rest.len());
    lower(slice(rest, 0, len))
}

/// The key before a value at `pos`, reduced to lower-case letters and digits: `"Action": "*"`
/// gives `action`, `--member=allUsers` gives `member`, `cidr_blocks = ["0.0.0.0/0"]` gives
/// `cidrblocks`.
fn key_before(hay: &[u8], pos: usize) -> String {
    let back = slice(hay, pos.saturating_sub(64), pos);
    let mut i = back.len();
    let mut seps = 0;
    while i > 0 && seps < 16 {
        match back.get(i - 1) {
            Some(
                b' ' | b'\t' | b'"' | b'\'' | b':' | b'=' | b'[' | b',' | b'{' | b'\n' | b'\r',
            ) => {
                i -= 1;
                seps += 1;
            }
            _ => break,
        }
    }
    let end = i;
    while i > 0
        && back
            .get(i - 1)
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        i -= 1;
    }
    // A separator must have been crossed: a key is not the value's own first half.
    if end == back.len() {
        return String::new();
    }
    canon(slice(back, i, end))
}

/// ASCII lower case of `b`, lossy.
fn lower(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_lowercase()
}

/// Only the letters and digits of `b`, lower-cased: keys in any spelling compare equal.
fn canon(b: &[u8]) -> String {
    b.iter()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| char::from(c.to_ascii_lowercase()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::is_broad_principal;
    use super::*;

    #[test]
    fn keys_and_values_in_any_spelling() {
        assert_eq!(key_before(br#"{"Action": "*"}"#, 11), "action");
        assert_eq!(key_before(b"--member=allUsers", 9), "member");
        assert_eq!(key_before(b"x", 0), "");
        assert_eq!(value_after(br#" = "public-read""#, 0), "public-read");
        assert_eq!(canon(b"block_public_acls"), canon(b"BlockPublicAcls"));
        assert!(is_broad_principal("allUsers"));
    }
}
