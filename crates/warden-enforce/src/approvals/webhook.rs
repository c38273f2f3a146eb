//! Telling approvers: a webhook posts every new approval request.
//!
//! `[approvals.webhook]`:
//!
//! ```toml
//! [approvals.webhook]
//! url = "https://hooks.example/warden"   # http:// only for loopback hosts
//! secret_env = "WARDEN_WEBHOOK_SECRET"    # the HMAC key, from the environment
//! format = "json"                         # or "slack": {"text": …} with the same fields
//! retries = 5                             # attempts after the first, with backoff
//! ```
//!
//! Each POST carries `X-Warden-Timestamp` (Unix seconds) and `X-Warden-Signature:
//! sha256=HEX`, the HMAC-SHA256 under the secret of `TIMESTAMP.BODY` (the timestamp, a dot,
//! the exact body bytes). A receiver recomputes it, compares in constant time, and refuses old
//! timestamps. Failed posts (a network error, a 5xx or 429) are retried with exponential
//! backoff from 500 ms, in the background: a request never waits for its webhook.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;
use warden_core::config::Config;

use super::Request;

/// Why the webhook cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The table is malformed.
    #[error("approvals.webhook: {0}")]
    Invalid(String),
}

/// How messages are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The request as JSON: `{"event": "approval.requested", "request": …}`.
    #[default]
    Json,
    /// A Slack incoming-webhook message: `{"text": …}`, with the same fields beside it.
    Slack,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    url: String,
    secret_env: String,
    #[serde(default)]
    format: Format,
    #[serde(default = "default_retries")]
    retries: u32,
}

fn default_retries() -> u32 {
    5
}

/// The webhook in force.
#[derive(Debug, Clone)]
pub struct Webhook {
    url: reqwest::Url,
    secret: Vec<u8>,
    format: Format,
    retries: u32,
    client: reqwest::Client,
}

impl Webhook {
    /// The webhook `[approvals.webhook]` describes, if any; its secret is read now.
    ///
    /// # Errors
    /// A malformed table, a URL that is not https (http only for loopback), or a secret that
    /// is not set.
    pub fn from_config(config: &Config) -> Result<Option<Webhook>, WebhookError> {
        let Some(table) = &config.approvals.webhook else {
            return Ok(None);
        };
        let raw: Raw = table
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| WebhookError::Invalid(e.message().to_string()))?;
        let url = reqwest::Url::parse(&raw.url)
            .map_err(|e| WebhookError::Invalid(format!("url `{}`: {e}", raw.url)))?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
            return Err(WebhookError::Invalid(format!(
                "url `{}` must be https (http only for a loopback host)",
                raw.url
            )));
        }
        let secret = std::env::var(&raw.secret_env).map_err(|_| {
            WebhookError::Invalid(format!(
                "secret_env: the environment variable `{}` is not set",
                raw.secret_env
            ))
        })?;
        if secret.len() < 16 {
            return Err(WebhookError::Invalid(format!(
                "the secret in `{}` is shorter than 16 bytes",
                raw.secret_env
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| WebhookError::Invalid(format!("cannot build the client: {e}")))?;
        Ok(Some(Webhook {
            url,
            secret: secret.into_bytes(),
            format: raw.format,
            retries: raw.retries.min(20),
            client,
        }))
    }

    /// Post `request` in the background, retrying with backoff.
    pub fn notify(&self, request: &Request) {
        let body = message(self.format, request).to_string();
        let hook = self.clone();
        let id = request.id.clone();
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(500);
            for attempt in 0..=hook.retries {
                match hook.post(&body).await {
                    Ok(()) => return,
                    Err(e) if attempt == hook.retries => {
                        tracing::warn!(
                            "approvals: webhook for request {id} failed, giving up: {e}"
                        );
                    }
                    Err(e) => {
                        tracing::info!("approvals: webhook for request {id} failed, retrying: {e}");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(60));
                    }
                }
            }
        });
    }

    async fn post(&self, body: &str) -> Result<(), String> {
        let ts = crate::now_ms() / 1000;
        let r = self
            .client
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header("x-warden-timestamp", ts.to_string())
            .header("x-warden-signature", signature(&self.secret, ts, body))
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status();
        if status.is_success() {
            Ok(())
        } else if status.is_server_error() || status.as_u16() == 429 {
            Err(format!("HTTP {status}"))
        } else {
            // A 4xx other than 429 will not change by retrying.
            tracing::warn!("approvals: webhook refused with HTTP {status}");
            Ok(())
        }
    }
}

/// `sha256=HEX`: the HMAC-SHA256 under `secret` of `TIMESTAMP.BODY`.
pub fn signature(secret: &[u8], timestamp: i64, body: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The message for a new request.
pub fn message(format: Format, r: &Request) -> Value {
    let holds: Vec<Value> = r
        .holds
        .iter()
        .map(|h| json!({"policy": h.facts.policy, "kind": h.facts.kind, "needs": h.needs, "text": h.text}))
        .collect();
    let base = json!({
        "event": "approval.requested",
        "request": r.id,
        "agent": r.agent,
        "principal": r.principal,
        "mission": r.mission,
        "tool": r.call.name(),
        "holds": holds,
        "exposure": r.exposure.as_ref().map(|e| json!({"count": e.count, "audience": e.audience, "sample": e.sample, "labels": e.labels})),
        "alternative": r.alternative.as_ref().map(|a| &a.text),
        "expires_at_ms": r.expires_at_ms,
        "approve": format!("warden approvals approve {}", r.id),
    });
    match format {
        Format::Json => base,
        Format::Slack => {
            let reasons: Vec<String> = r.holds.iter().map(|h| format!("• {}", h.text)).collect();
            let exposure = r
                .exposure
                .as_ref()
                .map(|e| {
                    format!(
                        "\nWould expose data to {} of {} people.",
                        e.count, e.audience
                    )
                })
                .unwrap_or_default();
            let text = format!(
                "*{}* wants to run `{}` for *{}* (request `{}`).\n{}{}\nApprove: `warden approvals approve {}`",
                r.agent,
                r.call.name(),
                r.principal,
                r.id,
                reasons.join("\n"),
                exposure,
                r.id
            );
            let mut v = base;
            if let Value::Object(m) = &mut v {
                m.insert("text".into(), Value::String(text));
            }
            v
        }
    }
}
