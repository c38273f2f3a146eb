//! URLs are exits. A URL inside any argument of a call that acts (a message body, a Markdown
//! image, an HTML attribute, a file written) reaches its host when a client renders, previews
//! or follows it, and the host receives what the URL carries. A fetch reaches its host at once.
//!
//! Each host outside the organisation is one more outside reader of the call, cleared for
//! `public` only, and it sees what its own URL carries: the labels detectors find in the URL's
//! decoded parts, and everything the call holds when a part of it repeats text the session
//! read ([`crate::engine::URL_TOKEN_MIN`] characters or more). A link that carries nothing
//! counts in the audience and exposes no one.
//!
//! Fetching is sending: a read that reaches a host outside the organisation carries what the
//! mission holds, unless the mission's template names the host (`hosts`). The policy decides
//! (`context.flow.fetch`); the default pack asks.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::catalog::{
    find_urls, url_host, url_payload_text, url_payload_tokens, AudienceRule, ToolSpec,
};
use crate::config::Config;
use crate::directory::Audience;
use crate::engine::{content_labels, URL_TOKEN_MIN};
use crate::model::{Exposure, Label};
use crate::session::SessionState;

/// The most bytes of arguments searched for links; past it, the call is taken to hold a link
/// that carries everything.
const MAX_LINK_TEXT: usize = 256 * 1024;

/// One host a call's links reach, and what its URL carries there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkExit {
    /// The host, as the URL parser reads it.
    pub host: String,
    /// The argument the link is in.
    pub arg: String,
    /// The confidentiality labels the URL carries to the host.
    pub carried: BTreeSet<Label>,
}

/// Whether a part of `url` repeats text the session read from a trusted source, as written or
/// base64-, base64url- or hex-encoded.
pub fn url_carries_session_text(url: &str, session: &SessionState) -> bool {
    let repeats = |t: &str| t.chars().count() >= URL_TOKEN_MIN && session.trusted_text.contains(t);
    url_payload_tokens(url)
        .iter()
        .any(|t| repeats(t) || decodings(t).iter().any(|d| repeats(d)))
}

/// `token` decoded from base64 (standard or URL-safe, padded or not) and from hex, where that
/// gives text.
fn decodings(token: &str) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    if token.len() < URL_TOKEN_MIN {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut keep = |bytes: Vec<u8>| {
        if let Ok(s) = String::from_utf8(bytes) {
            if !out.contains(&s) {
                out.push(s);
            }
        }
    };
    for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
        if let Ok(b) = engine.decode(token) {
            keep(b);
        }
    }
    if let Ok(b) = hex::decode(token) {
        keep(b);
    }
    out
}

/// The hosts outside the organisation that the links in a call's arguments reach, and what
/// each carries. `held` is what flows into the call (it leaves with a link that repeats the
/// session's text). Arguments a URL audience rule reads are left out: their rule counts them.
pub fn link_exits(
    cfg: &Config,
    spec: &ToolSpec,
    args: &Value,
    session: &SessionState,
    held: &BTreeSet<Label>,
) -> Vec<LinkExit> {
    let Value::Object(map) = args else {
        return Vec::new();
    };
    let url_args: Vec<&str> = spec
        .audience
        .iter()
        .filter_map(|r| match r {
            AudienceRule::Url(a) => Some(a.as_str()),
            _ => None,
        })
        .collect();
    let mut out: Vec<LinkExit> = Vec::new();
    let mut budget = MAX_LINK_TEXT;
    let mut overflow = false;
    for (arg, v) in map {
        if url_args.contains(&arg.as_str()) {
            continue;
        }
        let mut texts = Vec::new();
        strings(v, &mut texts, &mut budget, &mut overflow);
        for text in texts {
            let (urls, more) = find_urls(text);
            overflow |= more;
            for url in urls {
                let host = url_host(&url);
                if host.is_empty() || cfg.directory.is_internal_host(&host) {
                    continue;
                }
                let carried = carried_by(cfg, &url, session, held);
                match out.iter_mut().find(|e| e.host == host) {
                    Some(e) => e.carried.extend(carried),
                    None => out.push(LinkExit {
                        host,
                        arg: arg.clone(),
                        carried,
                    }),
                }
                if out.len() > crate::catalog::MAX_URLS {
                    overflow = true;
                    break;
                }
            }
        }
    }
    if overflow {
        // What was not read is taken to carry everything the call holds, and the most
        // sensitive labels there are.
        let mut carried = held.clone();
        carried.extend(cfg.sensitive.iter().map(|l| Label::from(l.as_str())));
        out.push(LinkExit {
            host: "links not read (too many)".into(),
            arg: String::new(),
            carried,
        });
    }
    out
}

/// The confidentiality labels `url` carries: what detectors find in its decoded parts, and
/// `held` when a part repeats the session's text.
fn carried_by(
    cfg: &Config,
    url: &str,
    session: &SessionState,
    held: &BTreeSet<Label>,
) -> BTreeSet<Label> {
    let scan = cfg.detectors.scan(&url_payload_text(url));
    let mut carried: BTreeSet<Label> = content_labels(&scan, cfg.detectors.limits().max_findings)
        .into_iter()
        .filter(|l| cfg.is_confidentiality(l) && l != "public")
        .map(|l| Label::from(l.as_str()))
        .collect();
    if url_carries_session_text(url, session) {
        carried.extend(held.iter().cloned());
    }
    carried
}

/// The string values of `v`, up to `budget` bytes in all.
fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>, budget: &mut usize, overflow: &mut bool) {
    match v {
        Value::String(s) => {
            if s.len() > *budget {
                *overflow = true;
                *budget = 0;
            } else {
                *budget -= s.len();
                out.push(s);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| strings(x, out, budget, overflow)),
        Value::Object(m) => m.values().for_each(|x| strings(x, out, budget, overflow)),
        _ => {}
    }
}

/// The exposure of a call's links: each host one outside reader, exposed to what its URL
/// carries. `None` without links.
pub fn links_exposure(cfg: &Config, exits: &[LinkExit]) -> Option<Exposure> {
    if exits.is_empty() {
        return None;
    }
    let mut total = Exposure::default();
    for e in exits {
        let audience = Audience {
            external: vec![if e.arg.is_empty() {
                e.host.clone()
            } else {
                format!("{} (a link in `{}`)", e.host, e.arg)
            }],
            ..Default::default()
        };
        total.add(cfg.directory.exposure(&audience, &e.carried));
    }
    Some(total)
}

/// The hosts outside the organisation that a call's URL audience arguments reach.
pub fn fetched_hosts(cfg: &Config, spec: &ToolSpec, args: &Value) -> Vec<String> {
    spec.audience
        .iter()
        .filter_map(|r| match r {
            AudienceRule::Url(a) => args.get(a).and_then(Value::as_str),
            _ => None,
        })
        .map(url_host)
        .filter(|h| !h.is_empty() && !cfg.directory.is_internal_host(h))
        .collect()
}
