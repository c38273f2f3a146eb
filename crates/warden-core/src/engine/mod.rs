//! `decide`: one pure function of (call, mission, session, breakers, clock) → decision.
//!
//! The steps follow DESIGN §3: breakers, resolve, ceiling, mission, flow, policy (Cedar twice:
//! the agent, then the person it acts for), combine (deny overrides ask overrides allow; no
//! permit denies; any error denies). An allowed call comes back as an [`Allowed`] value, which the
//! enforcement pipeline turns into the only thing an upstream takes once the decision is durably
//! logged; after it returns, [`Engine::absorb`] labels its output and feeds the session.
//!
//! The engine is split by concern, one file each:
//!
//! - `types`: what goes in and comes out ([`Call`], [`Allowed`], [`Receipt`], [`Breakers`], [`Decided`]);
//! - `pipeline`: the steps of [`Engine::decide`] and [`Engine::commit`];
//! - `flow`: the information-flow facts of a call (labels in, exposure, fetch, provenance);
//! - `context`: the Cedar context policies read;
//! - `absorb`: what an output brings into the session ([`Engine::absorb`]);
//! - `explain`: the texts people see.
//!
//! This file holds the [`Engine`] itself (the loaded configuration), the missions it grants and
//! the tools a mission sees, and re-exports every public name, so `engine::X` paths stay as
//! they were.

mod absorb;
mod context;
mod explain;
mod flow;
mod pipeline;
mod types;

use crate::catalog::ToolSpec;
use crate::config::Config;
use crate::mission::Mission;
use crate::narrow::{Narrowing, WidenError};

pub use absorb::{content_labels, EMAILS_FOR_PII};
pub(crate) use explain::excerpt;
pub use explain::{clock_time, exposure_line, refusal_text, thousands};
pub use flow::{MAX_SOURCES, URL_TOKEN_MIN};
pub use pipeline::Committed;
pub use types::{Allowed, Breakers, Call, Decided, Receipt, PRIVILEGED_ADVICE};

use context::Wanted;

/// The decision engine: a loaded configuration.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    /// The context attributes the loaded policies read.
    wanted: Wanted,
}

impl Engine {
    /// An engine over a loaded configuration.
    pub fn new(config: Config) -> Self {
        let wanted = Wanted::of(config.policies.context_use());
        Engine { config, wanted }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Grant a mission from a template (checks the template, agent and principal exist).
    pub fn grant(
        &self,
        id: &str,
        template: &str,
        agent: &str,
        principal: &str,
        purpose: &str,
        now_ms: i64,
    ) -> Result<Mission, String> {
        let t = self
            .config
            .templates
            .get(template)
            .ok_or_else(|| format!("unknown mission template `{template}`"))?;
        if !self.config.agents.contains_key(agent) {
            return Err(format!("unknown agent `{agent}`"));
        }
        if !t.agents.is_empty() && !t.agents.iter().any(|a| a == agent) {
            return Err(format!(
                "mission template `{template}` is not for agent `{agent}`"
            ));
        }
        if self.config.directory.user(principal).is_none() {
            return Err(format!(
                "unknown principal `{principal}`: the directory has no such user"
            ));
        }
        Ok(Mission {
            id: id.to_string(),
            template: template.to_string(),
            agent: agent.to_string(),
            principal: principal.to_string(),
            purpose: purpose.to_string(),
            granted_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(t.lifetime_secs.saturating_mul(1000)),
            parent: None,
            chain: vec![id.to_string()],
            narrowings: Vec::new(),
            auth: "local".to_string(),
        })
    }

    /// Narrow `parent` into a child mission `id` for a sub-agent (see [`crate::narrow`]): the
    /// same template, principal and purpose, the parent's narrowings and `n`. Granted now; it
    /// expires with the parent unless `n` says sooner. Shares its root's state.
    ///
    /// # Errors
    /// A [`WidenError`] naming the field and the values when `n` is wider than the parent's
    /// effective scope (its template ∩ its narrowings) in any field, or names an agent that is
    /// not configured.
    pub fn attenuate(
        &self,
        parent: &Mission,
        id: &str,
        n: &Narrowing,
        now_ms: i64,
    ) -> Result<Mission, WidenError> {
        let t = self
            .config
            .templates
            .get(&parent.template)
            .ok_or_else(|| WidenError::UnknownTemplate(parent.template.clone()))?;
        let mut chain = if parent.chain.is_empty() {
            vec![parent.id.clone()]
        } else {
            parent.chain.clone()
        };
        if id.is_empty() || id == parent.id || chain.iter().any(|c| c == id) {
            return Err(WidenError::BadId(id.to_string()));
        }
        crate::narrow::within(&self.config, t, parent, n)?;
        chain.push(id.to_string());
        let mut narrowings = parent.narrowings.clone();
        narrowings.push(n.clone());
        Ok(Mission {
            id: id.to_string(),
            template: parent.template.clone(),
            agent: n.agent.clone().unwrap_or_else(|| parent.agent.clone()),
            principal: parent.principal.clone(),
            purpose: parent.purpose.clone(),
            granted_at_ms: now_ms,
            expires_at_ms: n
                .expires_at_ms
                .map_or(parent.expires_at_ms, |e| e.min(parent.expires_at_ms)),
            parent: Some(parent.id.clone()),
            chain,
            narrowings,
            auth: parent.auth.clone(),
        })
    }

    /// The tools a session under `mission` could ever be allowed to use (ceiling ∩ mission ∩
    /// catalog). What `tools/list` shows.
    pub fn visible_tools(&self, mission: &Mission) -> Vec<&ToolSpec> {
        let Some(agent) = self.config.agents.get(&mission.agent) else {
            return Vec::new();
        };
        let Some(t) = self.config.templates.get(&mission.template) else {
            return Vec::new();
        };
        self.config
            .catalog
            .tools()
            .filter(|s| {
                agent.may_use(&s.name)
                    && crate::narrow::allows_tool(t, &mission.narrowings, &s.name)
            })
            .collect()
    }
}
