//! Privileged advice written as a command: `gsutil iam ch allUsers:objectViewer gs://b`,
//! `kubectl create clusterrolebinding … --clusterrole=cluster-admin`, `usermod -aG sudo bob`,
//! `chmod -R o+w /srv`, `gh repo edit --visibility public`, `az role assignment create
//! --role Owner`, `aws s3api put-bucket-acl --acl public-read`, …
//!
//! A command word found by the combined scan starts a command: its words are read by a
//! small shell-like tokenizer (quotes, backslash escapes and continuations; the command
//! ends at an unescaped newline, `;`, `|`, `&` or a backtick, and after [`MAX_BYTES`]),
//! and the recogniser of that tool looks for the subcommand and the flag or value that
//! widens access: a broad principal, a public ACL, an admin role, a world-writable mode,
//! a privileged group. Reading and removing (`get`, `describe`, `remove-iam-policy-binding`,
//! `gpasswd -d`, `setfacl -x`, `chmod go-w`) never widen.
//!
//! The tokenizer is hand-written rather than taken from `shlex`: it must stop at the end
//! of one command inside prose, keep byte offsets, and never fail on unbalanced quotes.

use super::{is_broad_principal, is_priv_group, is_secret_path, is_system_path};

/// The most bytes one command may span.
pub(super) const MAX_BYTES: usize = 600;
/// The most words of one command that are looked at.
const MAX_WORDS: usize = 64;

/// The tools whose commands are recognised (lower case).
pub(super) fn is_command(word: &[u8]) -> bool {
    const COMMANDS: &[&[u8]] = &[
        b"gcloud",
        b"gsutil",
        b"aws",
        b"az",
        b"kubectl",
        b"oc",
        b"chmod",
        b"chown",
        b"chgrp",
        b"setfacl",
        b"usermod",
        b"useradd",
        b"gpasswd",
        b"adduser",
        b"addgroup",
        b"gh",
        b"glab",
        b"localgroup",
        b"add-localgroupmember",
    ];
    COMMANDS.iter().any(|c| c.eq_ignore_ascii_case(word))
}

/// The words of the command starting at `pos`, lower-cased, and the end of the command.
pub(super) fn words(hay: &[u8], pos: usize) -> (Vec<String>, usize) {
    let mut out: Vec<String> = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut in_word = false;
    let mut word_start = pos;
    let mut quote: Option<u8> = None;
    let end_max = hay.len().min(pos.saturating_add(MAX_BYTES));
    let mut i = pos;
    // Ends the current word; true when it names another tool, which starts another
    // command ("chmod 644 a and chmod 777 b").
    let push = |cur: &mut Vec<u8>, out: &mut Vec<String>| -> bool {
        let w = String::from_utf8_lossy(cur).to_ascii_lowercase();
        cur.clear();
        if !out.is_empty() && is_command(w.as_bytes()) {
            return true;
        }
        out.push(w);
        false
    };
    let begin = |in_word: &mut bool, at: usize, word_start: &mut usize| {
        if !*in_word {
            *in_word = true;
            *word_start = at;
        }
    };
    while i < end_max && out.len() < MAX_WORDS {
        let Some(&b) = hay.get(i) else { break };
        match quote {
            Some(q) if b == q => quote = None,
            Some(b'"') if b == b'\\' => {
                i += 1;
                if let Some(&n) = hay.get(i) {
                    cur.push(n);
                }
            }
            Some(_) => cur.push(b),
            None => match b {
                b'\'' | b'"' => {
                    quote = Some(b);
                    begin(&mut in_word, i, &mut word_start);
                }
                b'\\' => {
                    i += 1;
                    match hay.get(i) {
                        // A continuation: the command goes on on the next line.
                        Some(b'\n') | Some(b'\r') if in_word => {
                            in_word = false;
                            if push(&mut cur, &mut out) {
                                return (out, word_start);
                            }
                        }
                        Some(&n) => {
                            begin(&mut in_word, i - 1, &mut word_start);
                            cur.push(n);
                        }
                        None => {}
                    }
                }
                b'\n' | b';' | b'|' | b'&' | b'`' => break,
                b' ' | b'\t' | b'\r' => {
                    if in_word {
                        in_word = false;
                        if push(&mut cur, &mut out) {
                            return (out, word_start);
                        }
                    }
                }
                _ => {
                    begin(&mut in_word, i, &mut word_start);
                    cur.push(b);
                }
            },
        }
        i += 1;
    }
    if in_word && out.len() < MAX_WORDS && push(&mut cur, &mut out) {
        return (out, word_start);
    }
    (out, i)
}

/// The values given to a flag: `--name=v`, `--name v`, `-x v`, `-xv`, `-ax v`.
fn values<'t>(t: &'t [String], long: &[&str], short: Option<char>) -> Vec<&'t str> {
    let mut out = Vec::new();
    for (i, tok) in t.iter().enumerate() {
        let next = t.get(i + 1).map(String::as_str);
        if let Some(rest) = tok.strip_prefix("--") {
            let (name, val) = match rest.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (rest, None),
            };
            if long.contains(&name) {
                out.extend(val.or(next));
            }
        } else if let (Some(rest), Some(c)) = (tok.strip_prefix('-'), short) {
            if rest.is_empty() || !rest.starts_with(|ch: char| ch.is_ascii_alphabetic()) {
                continue;
            }
            if let Some(k) = rest.find(c) {
                let after = rest.get(k + c.len_utf8()..).unwrap_or("");
                if after.is_empty() {
                    out.extend(next);
                } else {
                    out.push(after);
                }
            }
        }
    }
    out
}

/// True when some word is `w`.
fn has(t: &[String], w: &str) -> bool {
    t.iter().any(|x| x == w)
}

/// The words that are not flags (nor flag values, for the flags in `with_value`).
fn positional<'t>(t: &'t [String], with_value: &[&str]) -> Vec<&'t str> {
    let mut out = Vec::new();
    let mut skip = false;
    for tok in t.iter().skip(1) {
        if skip {
            skip = false;
            continue;
        }
        if tok.starts_with('-') && tok.len() > 1 {
            skip = with_value.iter().any(|f| tok == f);
            continue;
        }
        out.push(tok.as_str());
    }
    out
}

/// Why the command `t` widens access, if it does.
pub(super) fn widens(t: &[String]) -> Option<&'static str> {
    let tool = t.first()?.as_str();
    match tool {
        "chmod" => chmod(t),
        "chown" | "chgrp" => chown(t),
        "setfacl" => setfacl(t),
        "usermod" | "useradd" => usermod(t),
        "gpasswd" => gpasswd(t),
        "adduser" | "addgroup" => adduser(t),
        "localgroup" | "add-localgroupmember" => localgroup(t),
        "gcloud" => gcloud(t),
        "gsutil" => gsutil(t),
        "aws" => aws(t),
        "az" => az(t),
        "kubectl" | "oc" => kubectl(t),
        "gh" | "glab" => repo(t),
        _ => None,
    }
}

/// An octal mode's digits (`0777` → `[0, 7, 7, 7]`), or `None`.
fn octal(mode: &str) -> Option<Vec<u32>> {
    if !(3..=4).contains(&mode.len()) {
        return None;
    }
    mode.chars().map(|c| c.to_digit(8)).collect()
}

fn chmod(t: &[String]) -> Option<&'static str> {
    let args = positional(t, &["--reference"]);
    let (mode, paths) = args.split_first()?;
    let sensitive = paths.iter().any(|p| is_secret_path(p));
    let tmp = paths
        .iter()
        .all(|p| matches!(p.trim_end_matches('/'), "/tmp" | "/var/tmp" | "/dev/shm"));
    if let Some(d) = octal(mode) {
        let (special, other) = match d.as_slice() {
            [s, _, _, o] => (*s, *o),
            [_, _, o] => (0, *o),
            _ => return None,
        };
        let group = d.get(d.len() - 2).copied().unwrap_or(0);
        if other & 2 != 0 && !(tmp && special & 1 != 0) {
            return Some("world-writable mode");
        }
        if special & 6 != 0 {
            return Some("setuid or setgid mode");
        }
        if sensitive && (other & 4 != 0 || group & 2 != 0) {
            return Some("sensitive file opened to others");
        }
        return None;
    }
    // Symbolic: `u+x,go-w`, `a+rwx`, `o=rw`, `+w`.
    for clause in mode.split(',') {
        let Some(op) = clause.find(['+', '=']) else {
            continue;
        };
        let (who, perms) = clause.split_at(op);
        let perms = perms.get(1..).unwrap_or("");
        if !who.chars().all(|c| "ugoa".contains(c)) {
            return None;
        }
        let others = who.is_empty() || who.contains(['o', 'a']);
        if others && perms.contains('w') {
            return Some("world-writable mode");
        }
        if perms.contains('s') && (who.is_empty() || who.contains(['u', 'g', 'a'])) {
            return Some("setuid or setgid mode");
        }
        if sensitive && others && perms.contains('r') {
            return Some("sensitive file opened to others");
        }
    }
    None
}

fn chown(t: &[String]) -> Option<&'static str> {
    let args = positional(t, &["--reference", "--from"]);
    let (owner, paths) = args.split_first()?;
    let user = owner.split([':', '.']).next().unwrap_or("");
    let to_root = matches!(user, "root" | "0" | "") && t.first().is_some_and(|c| c == "chown");
    if to_root {
        return None;
    }
    let broad = matches!(user, "nobody" | "everyone" | "guest" | "users" | "nogroup");
    let root_tree = paths.contains(&"/") && has(t, "-r");
    if paths.iter().any(|p| is_secret_path(p) || is_system_path(p))
        || root_tree
        || (broad && !paths.is_empty())
    {
        return Some("ownership of a sensitive path given away");
    }
    None
}

fn setfacl(t: &[String]) -> Option<&'static str> {
    let mut specs = values(t, &["modify", "set"], Some('m'));
    specs.extend(values(t, &["modify-file", "set-file"], Some('M')));
    specs.extend(values(t, &[], Some('s')));
    let paths: Vec<&str> = positional(t, &["-m", "-M", "-x", "-X", "-s", "--modify", "--set"]);
    let sensitive = paths.iter().any(|p| is_secret_path(p));
    for spec in specs {
        for entry in spec.split(',') {
            let parts: Vec<&str> = entry.split(':').collect();
            // `[d[efault]:]type:qualifier:perms`
            let parts = match parts.first() {
                Some(&"d" | &"default") => parts.get(1..).unwrap_or(&[]),
                _ => &parts[..],
            };
            let (kind, qual, perms) = match parts {
                [k, q, p] => (*k, *q, *p),
                [k, p] => (*k, "", *p),
                _ => continue,
            };
            let grants =
                perms.contains(['r', 'w', 'x']) || perms.chars().any(|c| c != '-' && c != '0');
            match kind {
                "o" | "other" if perms.contains('w') || perms.contains('7') => {
                    return Some("world-writable ACL")
                }
                "o" | "other" if sensitive && (perms.contains('r') || perms.contains('4')) => {
                    return Some("sensitive file opened to others")
                }
                "u" | "user" | "g" | "group" if grants && is_broad_principal(qual) => {
                    return Some("ACL entry for everyone")
                }
                "u" | "user" | "g" | "group" if grants && sensitive && !qual.is_empty() => {
                    return Some("sensitive file opened by ACL")
                }
                _ => {}
            }
        }
    }
    None
}

fn usermod(t: &[String]) -> Option<&'static str> {
    let mut groups = values(t, &["groups", "gid"], Some('G'));
    groups.extend(values(t, &["gid"], Some('g')));
    if groups.iter().flat_map(|g| g.split(',')).any(is_priv_group) {
        return Some("user added to a privileged group");
    }
    if values(t, &["uid"], Some('u')).contains(&"0") {
        return Some("user given uid 0");
    }
    None
}

fn gpasswd(t: &[String]) -> Option<&'static str> {
    // `gpasswd -a user group`, `-M a,b group`, `-A user group` (group administrator).
    // Words are lower-cased: `-A` (administrators) reads `-a`, `-M` (members) reads `-m`.
    let adds = ["-a", "--add", "-m", "--members", "--administrators"];
    let adding = t.iter().any(|w| adds.contains(&w.as_str()));
    let group = t.last().map(String::as_str).unwrap_or("");
    if t.iter().any(|w| w == "-d" || w == "--delete") {
        return None;
    }
    (adding && is_priv_group(group)).then_some("user added to a privileged group")
}

fn adduser(t: &[String]) -> Option<&'static str> {
    if values(t, &["ingroup"], None)
        .iter()
        .any(|g| is_priv_group(g))
    {
        return Some("user added to a privileged group");
    }
    let args = positional(
        t,
        &[
            "--ingroup",
            "--home",
            "--shell",
            "--gecos",
            "--uid",
            "--gid",
        ],
    );
    match args.as_slice() {
        [_user, group] if is_priv_group(group) => Some("user added to a privileged group"),
        _ => None,
    }
}

fn localgroup(t: &[String]) -> Option<&'static str> {
    let admin = t.iter().any(|w| {
        w.contains("administrators") || w.contains("admins") || w == "remote desktop users"
    });
    let adding = t.first().is_some_and(|w| w == "add-localgroupmember") || has(t, "/add");
    (admin && adding).then_some("user added to the administrators")
}

/// True when a cloud role is an owner, editor or administrator role.
fn is_admin_role(role: &str) -> bool {
    let r = role.trim_start_matches("roles/");
    matches!(
        r,
        "owner" | "editor" | "contributor" | "cluster-admin" | "user access administrator"
    ) || r.contains("admin")
        || r.ends_with(".owner")
        || r.contains("serviceaccounttokencreator")
        || r.contains("serviceaccountuser")
        || r.contains("fullaccess")
        || r.contains("legacybucketowner")
}

/// True when a read-only or removing subcommand is among the words.
fn reads_or_removes(t: &[String]) -> bool {
    t.iter().take(6).any(|w| {
        matches!(
            w.as_str(),
            "get"
                | "describe"
                | "list"
                | "ls"
                | "show"
                | "get-iam-policy"
                | "remove-iam-policy-binding"
                | "revoke"
                | "delete"
                | "remove"
                | "rm"
                | "can-i"
                | "view"
        )
    })
}

fn gcloud(t: &[String]) -> Option<&'static str> {
    if reads_or_removes(t) {
        return None;
    }
    if has(t, "--allow-unauthenticated") {
        return Some("unauthenticated invocations allowed");
    }
    let binding = t
        .iter()
        .any(|w| w == "add-iam-policy-binding" || w == "set-iam-policy");
    if binding {
        if values(t, &["member", "members"], None)
            .iter()
            .flat_map(|m| m.split(','))
            .any(is_broad_principal)
        {
            return Some("IAM binding for everyone");
        }
        if values(t, &["role"], None).iter().any(|r| is_admin_role(r)) {
            return Some("IAM binding of an admin role");
        }
    }
    let acl = values(
        t,
        &["predefined-acl", "predefined-default-object-acl"],
        None,
    );
    if acl.iter().any(|a| is_public_acl(a)) {
        return Some("public ACL");
    }
    let ranges = values(t, &["source-ranges", "authorized-networks"], None);
    if ranges.iter().flat_map(|r| r.split(',')).any(is_any_ip) {
        return Some("open to any address");
    }
    None
}

/// True for a canned ACL that lets everyone (or every signed-in user) read.
pub(super) fn is_public_acl(acl: &str) -> bool {
    let c: String = acl
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    matches!(
        c.as_str(),
        "publicread" | "publicreadwrite" | "authenticatedread" | "allusersread"
    )
}

/// True for a network range that is every address.
pub(super) fn is_any_ip(r: &str) -> bool {
    matches!(
        r.trim_matches(['"', '\'', '[', ']']),
        "0.0.0.0/0" | "::/0" | "*" | "internet" | "any"
    )
}

fn gsutil(t: &[String]) -> Option<&'static str> {
    let pos = positional(t, &["-u", "-g", "-p", "-d"]);
    let sub: Vec<&str> = pos.iter().take(2).copied().collect();
    match sub.as_slice() {
        ["iam", "ch", ..] => {
            let mut skip = false;
            for w in t.iter().skip(1) {
                if skip {
                    skip = false;
                    continue;
                }
                if w == "-d" {
                    skip = true;
                    continue;
                }
                let member = w.rsplit_once(':').map_or(w.as_str(), |(m, _)| m);
                let role = w.rsplit(':').next().unwrap_or("");
                if w.contains(':')
                    && (is_broad_principal(member)
                        || member.starts_with("domain:")
                        || is_admin_role(role)
                        || role == "objectadmin")
                {
                    return Some("IAM binding for everyone");
                }
            }
            None
        }
        ["acl" | "defacl", "set", ..] => pos
            .get(2)
            .filter(|a| is_public_acl(a))
            .map(|_| "public ACL"),
        ["acl" | "defacl", "ch", ..] => {
            let grants = values(t, &[], Some('u'))
                .into_iter()
                .chain(values(t, &[], Some('g')))
                .chain(values(t, &[], Some('p')));
            for g in grants {
                let who = g.split(':').next().unwrap_or("");
                if is_broad_principal(who) || who == "domain" || g.starts_with("domain") {
                    return Some("public ACL");
                }
            }
            None
        }
        _ => None,
    }
}

fn aws(t: &[String]) -> Option<&'static str> {
    if values(t, &["acl"], None).iter().any(|a| is_public_acl(a)) {
        return Some("public ACL");
    }
    let grants = values(
        t,
        &[
            "grant-read",
            "grant-write",
            "grant-full-control",
            "grant-read-acp",
            "grant-write-acp",
        ],
        None,
    );
    if grants
        .iter()
        .any(|g| g.contains("allusers") || g.contains("authenticatedusers"))
    {
        return Some("public ACL");
    }
    if t.iter().any(|w| {
        w == "delete-public-access-block"
            || w == "--no-block-public-access"
            || w == "--publicly-accessible"
    }) {
        return Some("public access block removed");
    }
    if t.iter().any(|w| {
        let c: String = w
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '=')
            .collect();
        [
            "blockpublicacls=false",
            "blockpublicpolicy=false",
            "ignorepublicacls=false",
            "restrictpublicbuckets=false",
        ]
        .iter()
        .any(|k| c.contains(k))
    }) {
        return Some("public access block removed");
    }
    if values(t, &["policy-arn"], None).iter().any(|a| {
        a.ends_with("/administratoraccess")
            || a.ends_with("/iamfullaccess")
            || a.ends_with("/poweruseraccess")
    }) {
        return Some("admin policy attached");
    }
    if values(t, &["principal"], None).contains(&"*") {
        return Some("permission for any principal");
    }
    if values(t, &["cidr", "cidr-ip", "cidr-ipv6"], None)
        .iter()
        .any(|c| is_any_ip(c))
        || t.iter().any(|w| w.contains("cidrip=0.0.0.0/0"))
    {
        return Some("open to any address");
    }
    let shares = has(t, "modify-snapshot-attribute")
        || has(t, "modify-image-attribute")
        || has(t, "modify-db-snapshot-attribute");
    if shares
        && t.iter()
            .any(|w| w.contains("group=all") || w == "all" || w.contains("\"group\":\"all\""))
        && !t.iter().any(|w| w.contains("remove"))
    {
        return Some("snapshot shared with everyone");
    }
    if has(t, "add-user-to-group")
        && values(t, &["group-name"], None)
            .iter()
            .any(|g| g.contains("admin"))
    {
        return Some("user added to a privileged group");
    }
    None
}

fn az(t: &[String]) -> Option<&'static str> {
    if reads_or_removes(t) {
        return None;
    }
    let role_assignment = has(t, "role") && has(t, "assignment") && has(t, "create");
    if role_assignment {
        let roles = values(t, &["role"], None);
        if roles.iter().any(|r| is_admin_role(r)) {
            return Some("admin role assigned");
        }
        if values(t, &["assignee", "assignee-object-id"], None)
            .iter()
            .any(|a| is_broad_principal(a))
        {
            return Some("role assigned to everyone");
        }
    }
    if values(t, &["public-access"], None)
        .iter()
        .any(|v| matches!(*v, "blob" | "container"))
    {
        return Some("public container");
    }
    if values(
        t,
        &["allow-blob-public-access", "public-network-access"],
        None,
    )
    .iter()
    .any(|v| matches!(*v, "true" | "enabled"))
    {
        return Some("public blob access allowed");
    }
    if values(t, &["default-action"], None).contains(&"allow") {
        return Some("open to any network");
    }
    if values(
        t,
        &["source-address-prefixes", "source-address-prefix"],
        None,
    )
    .iter()
    .any(|v| is_any_ip(v))
        && values(t, &["access"], None).contains(&"allow")
    {
        return Some("open to any address");
    }
    if has(t, "member")
        && has(t, "add")
        && values(t, &["group"], None)
            .iter()
            .any(|g| g.contains("admin"))
    {
        return Some("user added to a privileged group");
    }
    None
}

fn kubectl(t: &[String]) -> Option<&'static str> {
    if reads_or_removes(t) {
        return None;
    }
    let binds = t.iter().any(|w| {
        matches!(w.as_str(), "clusterrolebinding" | "rolebinding")
            || w.starts_with("add-cluster-role-to-")
            || w.starts_with("add-role-to-")
            || w == "add-scc-to-user"
            || w == "add-scc-to-group"
    });
    if binds {
        let roles = values(t, &["clusterrole", "role"], None);
        let positional_role = t.iter().any(|w| {
            matches!(
                w.as_str(),
                "cluster-admin" | "admin" | "privileged" | "anyuid"
            )
        });
        if roles
            .iter()
            .any(|r| matches!(*r, "cluster-admin" | "admin" | "edit" | "system:masters"))
            || positional_role
        {
            return Some("admin role bound");
        }
        let subjects = values(t, &["group", "user", "serviceaccount"], None);
        if subjects.iter().any(|s| is_broad_principal(s)) || t.iter().any(|w| is_broad_principal(w))
        {
            return Some("role bound to everyone");
        }
    }
    if has(t, "clusterrole") || has(t, "role") {
        let verbs = values(t, &["verb"], None);
        let res = values(t, &["resource"], None);
        if verbs.iter().any(|v| v.split(',').any(|x| x == "*"))
            && res.iter().any(|r| r.split(',').any(|x| x == "*"))
        {
            return Some("wildcard role");
        }
    }
    None
}

fn repo(t: &[String]) -> Option<&'static str> {
    if values(t, &["visibility"], None)
        .iter()
        .any(|v| matches!(*v, "public" | "internal"))
    {
        return Some("repository made public");
    }
    if has(t, "create") && has(t, "--public") {
        return Some("repository made public");
    }
    // Words are lower-cased: `-F` reads `-f`, `-X` reads `-x`.
    for f in values(t, &["field", "raw-field"], Some('f')) {
        match f.split_once('=') {
            Some(("private", "false")) | Some(("visibility", "public" | "internal")) => {
                return Some("repository made public")
            }
            Some(("permission", "admin" | "maintain")) => return Some("admin access granted"),
            _ => {}
        }
    }
    let delete = values(t, &["method"], Some('x')).contains(&"delete");
    if delete && t.iter().any(|w| w.ends_with("/protection")) {
        return Some("branch protection removed");
    }
    None
}
