//! The requests Warden forwards to an upstream on an agent's behalf: tool calls, resource
//! reads, prompts, completions, subscriptions and log levels. Each is sent on the current
//! connection and bounded by its deadline (see [`Upstream::deadline`]); what the upstream says
//! about it on the way goes to its [`Relay`].

#![allow(deprecated)]

use super::*;

/// When the upstream forgot the session, any request of the supervisor's client meets the 404
/// and opens a new one: send a `ping` for that, in the background.
pub(super) fn renew_session(peer: &Peer<RoleClient>) {
    let peer = peer.clone();
    tokio::spawn(async move {
        let ping = ClientRequest::PingRequest(PingRequest::default());
        let _ = tokio::time::timeout(HEALTH_DEADLINE, peer.send_request(ping)).await;
    });
}

impl Upstream {
    /// Subscribe to (`on`) or unsubscribe from `uri` (`resources/subscribe`, `…/unsubscribe`).
    ///
    /// # Errors
    /// As [`Upstream::call`].
    pub async fn subscribe(
        &self,
        uri: &str,
        on: bool,
        cancel: &CancellationToken,
    ) -> Result<(), UpstreamError> {
        let live = self.peer()?;
        let request = if on {
            ClientRequest::SubscribeRequest(SubscribeRequest::new(SubscribeRequestParams::new(uri)))
        } else {
            ClientRequest::UnsubscribeRequest(UnsubscribeRequest::new(
                UnsubscribeRequestParams::new(uri),
            ))
        };
        let relay = Relay::cancel_only(cancel.clone());
        self.request(&live, request, &relay, self.deadline(None))
            .await
            .map(|_| ())
    }

    /// Forward an authorized tool call. The upstream's result is returned unchanged, but for
    /// `resultType`, which is filled in for older upstreams (downstream peers on 2026-07-28
    /// require it; rmcp strips it again for older ones).
    ///
    /// A tool the upstream runs only as a task is called as one (see `upstream/raw.rs`).
    ///
    /// # Errors
    /// When the upstream is down, times out, closes, answers with a JSON-RPC error or asks for
    /// client input; or when the relay's agent cancels (the request is then cancelled upstream).
    pub async fn call(
        &self,
        permitted: Permitted<Call>,
        relay: &Relay,
    ) -> Result<CallToolResult, UpstreamError> {
        let call = permitted.into_inner();
        let live = self.peer()?;
        if self.task_support(&call.tool).await == TaskSupport::Required {
            return self.call_as_task(&call.tool, &call.args, relay).await;
        }
        let deadline = self.deadline(Some(&call.tool));
        let mut r = if let Some(raw) = &self.raw {
            let empty = JsonObject::new();
            let args = match &call.args {
                serde_json::Value::Object(m) => m,
                _ => &empty,
            };
            // When the upstream forgot the session, any request of the supervisor's client
            // meets the 404 and opens a new one, which the call then waits for.
            let renew = || renew_session(&live.0);
            // Dropping the call (timeout or cancellation) sends `notifications/cancelled`.
            self.bounded(
                raw.call(&call.tool, args, relay, renew),
                &live,
                relay,
                deadline,
                |e| e,
            )
            .await?
        } else {
            let mut params = CallToolRequestParams::new(call.tool.clone());
            if let serde_json::Value::Object(m) = &call.args {
                params = params.with_arguments(JsonObject::clone(m));
            }
            let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
            match self.request(&live, request, relay, deadline).await? {
                ServerResult::CallToolResult(r) => r,
                ServerResult::InputRequiredResult(_) => {
                    return Err(self.unsupported("asked for input from the client"))
                }
                ServerResult::CreateTaskResult(_) => {
                    return Err(self.unsupported("answered with a task"))
                }
                _ => return Err(self.not_asked_for()),
            }
        };
        if r.result_type.is_none() {
            r.result_type = Some(ResultType::COMPLETE);
        }
        Ok(r)
    }

    pub(super) fn unsupported(&self, what: &str) -> UpstreamError {
        UpstreamError::Unsupported {
            name: self.name.clone(),
            what: what.into(),
        }
    }

    fn not_asked_for(&self) -> UpstreamError {
        UpstreamError::Malformed {
            name: self.name.clone(),
            detail: "it is not the kind of result that was asked for".into(),
        }
    }

    /// Forward an authorized `resources/read` (the call's `uri` argument).
    ///
    /// # Errors
    /// As [`Upstream::call`].
    pub async fn read_resource(
        &self,
        permitted: Permitted<Call>,
        relay: &Relay,
    ) -> Result<ReadResourceResult, UpstreamError> {
        let uri = permitted
            .get()
            .args
            .get("uri")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let live = self.peer()?;
        let request = ClientRequest::ReadResourceRequest(ReadResourceRequest::new(
            ReadResourceRequestParams::new(uri),
        ));
        match self
            .request(&live, request, relay, self.deadline(None))
            .await?
        {
            ServerResult::ReadResourceResult(mut r) => {
                if r.result_type.is_none() {
                    r.result_type = Some(ResultType::COMPLETE);
                }
                Ok(r)
            }
            ServerResult::InputRequiredResult(_) => {
                Err(self.unsupported("asked for input from the client"))
            }
            _ => Err(self.not_asked_for()),
        }
    }

    /// Forward an authorized `prompts/get` (the call's `name` and `arguments` arguments).
    ///
    /// # Errors
    /// As [`Upstream::call`].
    pub async fn get_prompt(
        &self,
        permitted: Permitted<Call>,
        relay: &Relay,
    ) -> Result<GetPromptResult, UpstreamError> {
        let args = &permitted.get().args;
        let name = args
            .get("name")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let mut params = GetPromptRequestParams::new(name);
        if let Some(serde_json::Value::Object(m)) = args.get("arguments") {
            params = params.with_arguments(m.clone());
        }
        let live = self.peer()?;
        let request = ClientRequest::GetPromptRequest(GetPromptRequest::new(params));
        match self
            .request(&live, request, relay, self.deadline(None))
            .await?
        {
            ServerResult::GetPromptResult(mut r) => {
                if r.result_type.is_none() {
                    r.result_type = Some(ResultType::COMPLETE);
                }
                Ok(r)
            }
            ServerResult::InputRequiredResult(_) => {
                Err(self.unsupported("asked for input from the client"))
            }
            _ => Err(self.not_asked_for()),
        }
    }

    /// Forward `completion/complete` (already routed and allowed by the gateway).
    ///
    /// # Errors
    /// As [`Upstream::call`].
    pub async fn complete(
        &self,
        params: CompleteRequestParams,
        relay: &Relay,
    ) -> Result<CompleteResult, UpstreamError> {
        let live = self.peer()?;
        let request = ClientRequest::CompleteRequest(CompleteRequest::new(params));
        match self
            .request(&live, request, relay, self.deadline(None))
            .await?
        {
            ServerResult::CompleteResult(mut r) => {
                if r.result_type.is_none() {
                    r.result_type = Some(ResultType::COMPLETE);
                }
                Ok(r)
            }
            _ => Err(self.not_asked_for()),
        }
    }

    /// Whether the upstream serves log messages (it has the `logging` capability).
    pub fn logs(&self) -> bool {
        self.peer().is_ok_and(|(p, _)| {
            p.peer_info()
                .is_some_and(|i| i.capabilities.logging.is_some())
        })
    }

    /// Ask the upstream for log messages at `level` and above, unless it was already asked for
    /// as much on this connection. The upstream session is shared by every agent: it is asked
    /// for the most any agent asked for, and each agent gets what it asked for.
    pub async fn want_logs(&self, level: LoggingLevel) {
        let Ok(live) = self.peer() else { return };
        {
            let mut asked = self
                .shared
                .log_level
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let rank = super::relay::severity(level);
            match *asked {
                Some((connects, r)) if connects == live.1 && r <= rank => return,
                _ => *asked = Some((live.1, rank)),
            }
        }
        let request =
            ClientRequest::SetLevelRequest(SetLevelRequest::new(SetLevelRequestParams::new(level)));
        let relay = Relay::cancel_only(CancellationToken::new());
        if let Err(e) = self
            .request(&live, request, &relay, self.deadline(None))
            .await
        {
            tracing::warn!(upstream = %self.name, "logging/setLevel failed: {e}");
        }
    }
}
