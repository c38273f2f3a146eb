//! Resources, resource templates, prompts and completions.
//!
//! A `resources/read` is decided as a call of `server.resources/read` with `{"uri"}`, a
//! `prompts/get` as a call of `server.prompts/get` with `{"name", "arguments"}`; the catalog's
//! label rules on `uri` (`glob`, `equals`) label what they return. Any URI an upstream serves can
//! be read, not only those it lists: a URI goes to the upstream that lists it, else to the one
//! with a resource template it fits, else to the one whose results named it (a `resource_link`
//! or an embedded resource), else to the only upstream the session may read resources of.
//!
//! Completions are forwarded to the upstream of the prompt or resource template they complete,
//! when the session may use it, and refused otherwise; never answered by Warden itself.

use std::sync::Arc;

use rmcp::model::{
    CompleteRequestParams, CompleteResult, ContentBlock, GetPromptResult, JsonObject, Prompt,
    ReadResourceResult, Reference, Resource, ResourceContents, ResourceTemplate,
};
use rmcp::ErrorData;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use warden_core::Call;
use warden_enforce::Permitted;

use super::pipeline::SendFut;

use super::pipeline::Caller;
use super::text::push_line;
use super::{Gateway, Session, PROMPTS_GET, RESOURCES_READ};
use crate::upstream::{Relay, Upstream};

/// At most this many URIs named in results are remembered (per gateway) for routing reads.
const MAX_NAMED: usize = 100_000;

/// Whether `uri` fits the RFC 6570 `template`: literal text must match exactly; an expression
/// `{x}` matches text without `/`, `?` or `#`; `{+x}` and `{#x}` match any text; `{?x}` and
/// `{&x}` match a query part; `{/x}` a path segment.
pub fn template_matches(template: &str, uri: &str) -> bool {
    fn go(t: &[u8], u: &[u8], depth: usize) -> bool {
        if depth > 64 {
            return false;
        }
        let Some(open) = t.iter().position(|&b| b == b'{') else {
            return t == u;
        };
        let Some(close) = t[open..].iter().position(|&b| b == b'}').map(|c| open + c) else {
            return t == u;
        };
        let (lit, expr, rest) = (&t[..open], &t[open + 1..close], &t[close + 1..]);
        let Some(u) = u.strip_prefix(lit) else {
            return false;
        };
        let stop: &[u8] = match expr.first() {
            Some(b'+' | b'#') => b"",
            Some(b'?' | b'&') => b"#",
            Some(b'/') => b"?#",
            _ => b"/?#",
        };
        let max = u.iter().position(|b| stop.contains(b)).unwrap_or(u.len());
        (0..=max).rev().any(|n| go(rest, &u[n..], depth + 1))
    }
    go(template.as_bytes(), uri.as_bytes(), 0)
}

impl Gateway {
    fn reads_resources(&self, session: &Session, server: &str) -> bool {
        session
            .visible
            .contains(&format!("{server}.{RESOURCES_READ}"))
    }

    /// The upstream `uri` is read from, for `session` (see the module's documentation).
    pub(crate) fn server_of_resource(&self, session: &Session, uri: &str) -> Option<String> {
        let mine: Vec<(&String, &Upstream)> = self
            .upstreams
            .iter()
            .filter(|(name, _)| self.reads_resources(session, name))
            .collect();
        let listed = mine
            .iter()
            .find(|(_, u)| u.resources().iter().any(|r| r.uri == uri));
        let fits = || {
            mine.iter()
                .find(|(_, u)| {
                    u.templates()
                        .iter()
                        .any(|t| template_matches(&t.uri_template, uri))
                })
                .copied()
        };
        let named = || {
            let server = super::lock(&self.named_uris).get(uri).cloned()?;
            mine.iter().find(|(name, _)| **name == server).copied()
        };
        let only = || (mine.len() == 1).then(|| mine[0]);
        listed
            .copied()
            .or_else(fits)
            .or_else(named)
            .or_else(only)
            .map(|(name, _)| name.clone())
    }

    /// Remember that `server` named the resources in `content` (links, embedded resources), so
    /// that reads of them go to it.
    pub(crate) fn note_named(&self, server: &str, content: &[ContentBlock]) {
        let uris: Vec<&str> = content
            .iter()
            .filter_map(|c| match c {
                ContentBlock::ResourceLink(l) => Some(l.uri.as_str()),
                ContentBlock::Resource(e) => match &e.resource {
                    ResourceContents::TextResourceContents { uri, .. }
                    | ResourceContents::BlobResourceContents { uri, .. } => Some(uri.as_str()),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        if uris.is_empty() {
            return;
        }
        let mut named = super::lock(&self.named_uris);
        if named.len() + uris.len() > MAX_NAMED {
            named.clear();
        }
        for u in uris {
            named.insert(u.to_string(), server.to_string());
        }
    }

    /// The resources `session` may read: those of upstreams whose `server.resources/read` the
    /// mission may use.
    pub fn list_resources(&self, session: &Session) -> Vec<Resource> {
        let mut out = Vec::new();
        for (name, u) in &self.upstreams {
            if self.reads_resources(session, name) {
                out.extend(u.resources().iter().cloned());
            }
        }
        out
    }

    /// The resource templates of the upstreams `session` may read resources of.
    pub fn list_resource_templates(&self, session: &Session) -> Vec<ResourceTemplate> {
        let mut out = Vec::new();
        for (name, u) in &self.upstreams {
            if self.reads_resources(session, name) {
                out.extend(u.templates().iter().cloned());
            }
        }
        out
    }

    /// The prompts `session` may get, named `server.prompt`.
    pub fn list_prompts(&self, session: &Session) -> Vec<Prompt> {
        let mut out = Vec::new();
        for (name, u) in &self.upstreams {
            if session.visible.contains(&format!("{name}.{PROMPTS_GET}")) {
                for p in u.prompts().iter() {
                    let mut p = p.clone();
                    p.name = format!("{name}.{}", p.name);
                    out.push(p);
                }
            }
        }
        out
    }

    /// Handle `resources/read`: decided as a call of `server.resources/read` with `{"uri"}`.
    ///
    /// # Errors
    /// A JSON-RPC error with the reason when the read is not allowed or fails.
    pub async fn read_resource(
        self: &Arc<Self>,
        session: &Arc<Session>,
        uri: &str,
        caller: &Caller,
    ) -> Result<ReadResourceResult, ErrorData> {
        // A URI no upstream serves is still decided (and logged): denied, with the reason.
        let server = self.server_of_resource(session, uri).unwrap_or_default();
        let call = Call::new(server, RESOURCES_READ, serde_json::json!({ "uri": uri }));
        fn send<'u>(
            up: &'u Upstream,
            p: Permitted<Call>,
            relay: &'u Relay,
        ) -> SendFut<'u, ReadResourceResult> {
            Box::pin(up.read_resource(p, relay))
        }
        self.forward_read(
            session,
            call,
            caller,
            "resource",
            send,
            |r: &ReadResourceResult, _| {
                let mut text = String::new();
                for c in &r.contents {
                    if let ResourceContents::TextResourceContents { text: t, .. } = c {
                        push_line(&mut text, t);
                    }
                }
                text
            },
        )
        .await
    }

    /// Handle `prompts/get` of `server.prompt`: decided as a call of `server.prompts/get` with
    /// `{"name", "arguments"}`.
    ///
    /// # Errors
    /// A JSON-RPC error with the reason when the prompt is not allowed or fails.
    pub async fn get_prompt(
        self: &Arc<Self>,
        session: &Arc<Session>,
        name: &str,
        arguments: Option<JsonObject>,
        caller: &Caller,
    ) -> Result<GetPromptResult, ErrorData> {
        let (server, prompt) = name.split_once('.').unwrap_or(("", name));
        let mut args = serde_json::Map::new();
        args.insert("name".into(), Value::String(prompt.to_string()));
        if let Some(a) = arguments {
            args.insert("arguments".into(), Value::Object(a));
        }
        let call = Call::new(server, PROMPTS_GET, Value::Object(args));
        fn send<'u>(
            up: &'u Upstream,
            p: Permitted<Call>,
            relay: &'u Relay,
        ) -> SendFut<'u, GetPromptResult> {
            Box::pin(up.get_prompt(p, relay))
        }
        self.forward_read(
            session,
            call,
            caller,
            "prompt",
            send,
            |r: &GetPromptResult, _| {
                let mut text = String::new();
                for m in &r.messages {
                    match &m.content {
                        ContentBlock::Text(t) => push_line(&mut text, &t.text),
                        ContentBlock::Resource(e) => {
                            if let ResourceContents::TextResourceContents { text: t, .. } =
                                &e.resource
                            {
                                push_line(&mut text, t);
                            }
                        }
                        _ => {}
                    }
                }
                text
            },
        )
        .await
    }

    /// Handle `completion/complete`: forwarded to the upstream of the prompt (`server.prompt`)
    /// or resource template it completes, when the session may get that prompt or read that
    /// upstream's resources.
    ///
    /// # Errors
    /// A JSON-RPC error when the session may not use what is completed, no upstream serves
    /// it, or the upstream fails.
    pub async fn complete(
        &self,
        session: &Session,
        mut params: CompleteRequestParams,
        cancel: &CancellationToken,
    ) -> Result<CompleteResult, ErrorData> {
        let server = match &mut params.r#ref {
            Reference::Prompt(p) => {
                let full = p.name.clone();
                let Some((server, prompt)) = full.split_once('.') else {
                    return Err(ErrorData::invalid_params(
                        format!(
                            "no prompt `{full}` is offered (prompts are named `server.prompt`)"
                        ),
                        None,
                    ));
                };
                if !session.visible.contains(&format!("{server}.{PROMPTS_GET}")) {
                    return Err(ErrorData::invalid_params(
                        format!("prompt `{full}` is not offered to this session"),
                        None,
                    ));
                }
                p.name = prompt.to_string();
                server.to_string()
            }
            Reference::Resource(r) => {
                let uri = r.uri.clone();
                self.upstreams
                    .iter()
                    .filter(|(name, _)| self.reads_resources(session, name))
                    .find(|(_, u)| u.templates().iter().any(|t| t.uri_template == uri))
                    .map(|(name, _)| name.clone())
                    .ok_or_else(|| {
                        ErrorData::invalid_params(
                            format!("no resource template `{uri}` is offered to this session"),
                            None,
                        )
                    })?
            }
            _ => {
                return Err(ErrorData::invalid_params(
                    "Warden completes prompt and resource template arguments only",
                    None,
                ))
            }
        };
        let up = self.upstreams.get(&server).ok_or_else(|| {
            ErrorData::invalid_params(format!("no upstream server `{server}`"), None)
        })?;
        up.complete(params, &Relay::cancel_only(cancel.clone()))
            .await
            .map_err(|e| match e {
                crate::UpstreamError::Protocol { error, .. } => *error,
                other => ErrorData::internal_error(other.to_string(), None),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::template_matches;

    #[test]
    fn uris_fit_templates_by_their_expressions() {
        let t = "demo://resource/dynamic/text/{index}";
        assert!(template_matches(t, "demo://resource/dynamic/text/7"));
        assert!(!template_matches(t, "demo://resource/dynamic/text/7/x"));
        assert!(!template_matches(t, "demo://resource/dynamic/blob/7"));
        assert!(template_matches("file:///{+path}", "file:///a/b/c.txt"));
        assert!(template_matches("db://{table}/{id}", "db://users/42"));
        assert!(!template_matches("db://{table}/{id}", "db://users"));
        assert!(template_matches(
            "search://q{?term,limit}",
            "search://q?term=a&limit=2"
        ));
        assert!(template_matches("plain://fixed", "plain://fixed"));
        assert!(!template_matches("plain://fixed", "plain://fixed2"));
    }
}
