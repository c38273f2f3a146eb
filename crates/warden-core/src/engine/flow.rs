//! The information-flow facts of a call: the labels flowing in, the exposure of its audience,
//! whether it fetches, and the provenance of what directs it.

use std::collections::BTreeSet;

use serde_json::Value;

use super::types::{Ctx, PRIVILEGED_ADVICE};
use super::Engine;
use crate::catalog::{Resolved, ToolSpec};
use crate::detect::Scan;
use crate::directory::Audience;
use crate::model::{Effect, Exposure, FlowFacts, Label, LabelSource};

/// Collect the string leaves of a JSON value, bounded in bytes.
fn strings_of(v: &Value, out: &mut String, budget: usize) {
    if out.len() >= budget {
        return;
    }
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(a) => a.iter().for_each(|x| strings_of(x, out, budget)),
        Value::Object(m) => m.values().for_each(|x| strings_of(x, out, budget)),
        Value::Number(n) => {
            out.push_str(&n.to_string());
            out.push('\n');
        }
        _ => {}
    }
}

/// The content arguments of a call (not those that say where it goes), each as its text.
fn argument_parts(spec: &ToolSpec, args: &Value, budget: usize) -> Vec<(String, String)> {
    let Value::Object(m) = args else {
        return Vec::new();
    };
    m.iter()
        .filter(|(k, _)| !spec.is_addressing_arg(k))
        .map(|(k, v)| {
            let mut text = String::new();
            strings_of(v, &mut text, budget);
            (k.clone(), text)
        })
        .collect()
}

impl Engine {
    /// Scan the content of a call's arguments. Arguments that say where the call goes
    /// (recipients, channels, paths, the act-as name) are addresses, not content: they are
    /// checked by exposure and provenance instead.
    fn scan_arguments(&self, spec: &ToolSpec, args: &Value) -> (Scan, String) {
        let budget = self.config.detectors.limits().max_bytes;
        let mut text = String::new();
        match args {
            Value::Object(m) => {
                for (k, v) in m {
                    if spec.is_addressing_arg(k) {
                        continue;
                    }
                    strings_of(v, &mut text, budget);
                }
            }
            other => strings_of(other, &mut text, budget),
        }
        (self.config.detectors.scan(&text), text)
    }

    /// True when a URL argument of the call holds text the session read from a trusted source
    /// (a part of at least [`URL_TOKEN_MIN`] characters).
    fn url_carries_session_data(&self, spec: &ToolSpec, cx: &Ctx<'_>) -> bool {
        spec.audience.iter().any(|r| {
            let crate::catalog::AudienceRule::Url(arg) = r else {
                return false;
            };
            cx.call
                .args
                .get(arg)
                .and_then(Value::as_str)
                .is_some_and(|url| crate::links::url_carries_session_text(url, cx.session))
        })
    }

    /// True when every URL the call reaches (its URL audience arguments) is, as a whole, a link
    /// the person wrote in the purpose or a trusted output showed: nothing the mission composed.
    fn links_as_seen(&self, spec: &ToolSpec, cx: &Ctx<'_>) -> bool {
        let mut urls = spec
            .audience
            .iter()
            .filter_map(|r| match r {
                crate::catalog::AudienceRule::Url(arg) => Some(cx.call.args.get(arg)),
                _ => None,
            })
            .peekable();
        urls.peek().is_some()
            && urls.all(|v| {
                v.and_then(Value::as_str).is_some_and(|url| {
                    matches!(
                        crate::provenance::origin_as_written(
                            &self.config,
                            cx.mission,
                            cx.session,
                            url
                        ),
                        crate::provenance::Origin::Principal | crate::provenance::Origin::Trusted
                    )
                })
            })
    }

    /// The information-flow facts of a call: labels in, exposure, provenance.
    pub(super) fn flow(
        &self,
        cx: &Ctx<'_>,
        spec: &ToolSpec,
        resolved: &Resolved,
        template: &crate::mission::MissionTemplate,
    ) -> (FlowFacts, Option<Exposure>, bool) {
        let cfg = &self.config;
        let s = cx.session;
        let mut f = FlowFacts {
            resource_labels: resolved.labels.clone(),
            untrusted_input: crate::holds::untrusted_counts(s, spec, resolved),
            ..Default::default()
        };
        let (scan, scanned) = self.scan_arguments(spec, &cx.call.args);
        let advice = scan.labels.contains(PRIVILEGED_ADVICE);
        // A part of a secret the mission read, or the rest of one it began sending.
        let parts = argument_parts(spec, &cx.call.args, cfg.detectors.limits().max_bytes);
        if crate::detect::fingerprint::carried(&cfg.detectors, s, &scanned, &parts) {
            f.argument_labels.insert("secret".into());
        }
        if spec.effect != Effect::Read {
            f.sent_tails = s.sent_tails.after(&parts);
        }
        let max_findings = self.config.detectors.limits().max_findings;
        for l in &crate::holds::argument_labels(&scan, &scanned, max_findings, s) {
            f.argument_labels.insert(l.clone());
        }
        if scan.truncated {
            // What was not scanned is treated as the most sensitive thing an argument can hold.
            f.argument_labels.insert("secret".into());
        }
        // What the session holds flows into every call that reaches people. A read that reaches
        // a host outside (a fetch) sends it there, unless the mission names the host; so does
        // one whose URL holds some of it.
        // A fetch of links exactly as the person wrote them or a trusted output showed them
        // sends nothing the mission composed: their hosts learn only their own addresses.
        let links_as_seen = spec.effect == Effect::Read && self.links_as_seen(spec, cx);
        let url_data = !links_as_seen && self.url_carries_session_data(spec, cx);
        let fetch = spec.effect == Effect::Read
            && crate::links::fetched_hosts(cfg, spec, &cx.call.args)
                .iter()
                .any(|h| !template.names_host(h));
        f.fetch = fetch && !url_data;
        // Provenance of the values that direct the call.
        let call = crate::provenance::Call {
            spec,
            args: &cx.call.args,
            directing: &resolved.directing,
            to_principal_only: resolved
                .audience
                .as_ref()
                .is_some_and(|a| a.only(&cx.mission.principal)),
        };
        let p = crate::provenance::assess(cfg, call, cx.mission, s);
        f.untrusted_direction = p.untrusted;
        f.provenance = p.provenance;
        // A call that sends only the person's own words carries nothing the mission read, when
        // it goes where the person or a trusted output pointed (not to a destination nobody
        // named, which a filled placeholder could still reach).
        let persons_words = spec.effect != Effect::Read
            && f.provenance
                .args
                .values()
                .all(|o| *o >= crate::provenance::Origin::Trusted)
            && content_is_the_persons(spec, &cx.call.args, &cx.mission.purpose);
        let taint_flows = (spec.effect != Effect::Read && !persons_words)
            || url_data
            || (fetch && !links_as_seen);
        let mut labels: BTreeSet<Label> = BTreeSet::new();
        if taint_flows {
            // One pass over the taint for the labels and their first sources. The taint is
            // sorted already: collecting it builds the set without reordering. Labels are
            // shared, so this copies no text.
            let mut names: Vec<Label> = Vec::with_capacity(s.taint.len());
            for (l, src) in s.taint.iter().filter(|(l, _)| cfg.is_confidentiality(l)) {
                if f.sources.len() < MAX_SOURCES {
                    let mut src = src.clone();
                    // The deciding session is not named; another session of the mission is.
                    if src.session.as_deref() == Some(s.id.as_str()) {
                        src.session = None;
                    }
                    f.sources.push(src);
                }
                names.push(l.clone());
            }
            labels = names.into_iter().collect();
        }
        if s.taint_overflow && taint_flows {
            labels.extend(cfg.sensitive.iter().map(|l| Label::from(l.as_str())));
        }
        // The labels the call brings itself: its arguments' always, its resource's when it
        // writes there.
        let from_resource = spec.effect != Effect::Read;
        let brought = f.argument_labels.iter().map(|l| (l, false)).chain(
            resolved
                .labels
                .iter()
                .filter(|_| from_resource)
                .map(|l| (l, true)),
        );
        for (l, in_resource) in brought {
            if !cfg.is_confidentiality(l) || labels.contains(l.as_str()) {
                continue;
            }
            let l = Label::from(l.as_str());
            labels.insert(l.clone());
            f.sources.push(LabelSource {
                label: l,
                source: if in_resource {
                    format!("resource {}", resolved.resource_id).into()
                } else {
                    "arguments".into()
                },
                call: s.calls + 1,
                at_ms: cx.now_ms,
                session: None,
            });
        }
        f.labels = labels;
        f.sensitive = cfg.sensitive.iter().any(|l| f.labels.contains(l.as_str()))
            || (spec.effect == Effect::Read
                && resolved.labels.iter().any(|l| cfg.sensitive.contains(l)));
        // Exposure: of the audience to everything flowing in, and of each host a link reaches
        // to what its URL carries.
        let mut exposure = resolved
            .audience
            .as_ref()
            .map(|aud| crate::own::exposure(&cfg.directory, aud, &f.labels, s));
        let links = if spec.effect == Effect::Read {
            Vec::new()
        } else {
            crate::links::link_exits(cfg, spec, &cx.call.args, s, &f.labels)
        };
        if let Some(more) = crate::links::links_exposure(cfg, &links) {
            exposure.get_or_insert_with(Exposure::default).add(more);
        }
        f.external_action = !links.is_empty()
            || match spec.effect {
                Effect::Read => false,
                Effect::Egress => true,
                _ => !resolved
                    .audience
                    .as_ref()
                    .is_some_and(|a: &Audience| a.only(&cx.mission.principal)),
            };
        (f, exposure, advice)
    }
}

/// The most label sources a decision carries for explanation.
pub const MAX_SOURCES: usize = 32;

/// The shortest URL component that counts as carrying session data.
pub const URL_TOKEN_MIN: usize = 8;

/// True when the call's content (every argument that neither directs nor addresses it) is text
/// made of the person's own words ([`crate::words::from_purpose`]), and there is some.
fn content_is_the_persons(spec: &ToolSpec, args: &Value, purpose: &str) -> bool {
    let Value::Object(map) = args else {
        return false;
    };
    let mut any = false;
    for (k, v) in map {
        if spec.directs.iter().any(|d| d == k) || spec.is_addressing_arg(k) {
            continue;
        }
        match v {
            Value::String(s) if crate::words::from_purpose(s, purpose) => any = true,
            _ => return false,
        }
    }
    any
}
