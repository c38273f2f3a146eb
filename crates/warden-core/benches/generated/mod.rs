//! Generated Warden configurations of N policies, held in memory: agent ceilings, per-agent
//! forbids and ask-forbids, per-tenant permits and forbids, plus the Acme default pack
//! (`default.cedar`, `people.cedar`: 15 policies). Shared by the `decide` and `load` benches.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::{json, Value};
use warden_core::Sources;

pub const DEFAULT_PACK: &str = include_str!("../../../../examples/acme/policies/default.cedar");
pub const PEOPLE_PACK: &str = include_str!("../../../../examples/acme/policies/people.cedar");
/// Policies in the two Acme pack files (the load bench checks the count).
pub const PACK_POLICIES: usize = 15;
/// Users in the generated directory.
pub const USERS: usize = 300;

/// Configuration files held in memory.
pub struct MemSources(pub HashMap<String, String>);

impl Sources for MemSources {
    fn read(&self, path: &str) -> Result<String, String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| format!("no such file `{path}`"))
    }

    fn list(&self, dir: &str, ext: &str) -> Result<Vec<String>, String> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let mut v: Vec<String> = self
            .0
            .keys()
            .filter(|k| k.starts_with(&prefix) && k.ends_with(ext))
            .cloned()
            .collect();
        v.sort();
        Ok(v)
    }
}

/// The shape of one generated configuration.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Generated policies (ceilings + agent policies + tenant policies).
    pub n: usize,
    pub agents: usize,
    pub agent_policies: usize,
    pub tenants: usize,
    pub tenant_policies: usize,
    pub servers: usize,
}

impl Shape {
    pub fn new(n: usize) -> Shape {
        // 10% agents (one ceiling permit each), 3 policies per agent, the rest per tenant
        // (a read permit and an egress forbid per tenant).
        let agents = (n / 10).max(1);
        let agent_policies = 3 * agents;
        let tenant_policies = n - agents - agent_policies;
        let tenants = tenant_policies.div_ceil(2);
        // Tools do not change the cost of a decision, but every action a policy can apply to
        // multiplies Cedar's validation at load: cap the catalog at 25 servers (100 tools).
        let servers = (agents / 5).clamp(3, 25);
        Shape {
            n,
            agents,
            agent_policies,
            tenants,
            tenant_policies,
            servers,
        }
    }

    /// The agent and principal the benchmarked request uses.
    pub fn agent(&self) -> usize {
        self.agents / 2
    }

    pub fn principal(&self) -> usize {
        7 % USERS
    }

    pub fn server_of(&self, agent: usize) -> usize {
        agent % self.servers
    }
}

pub fn warden_toml(s: &Shape) -> String {
    let mut t = String::from(
        r#"name = "bench"

[policy]
dir = "policies"

[catalog]
file = "catalog.toml"

[missions]
file = "missions.toml"

[directory]
file = "directory.json"
internal_domains = ["corp.example"]

[labels]
confidentiality = ["public", "internal", "pii", "hr-compensation", "security-sensitive", "user-data", "secret"]
sensitive = ["pii", "hr-compensation", "security-sensitive", "user-data", "secret"]
"#,
    );
    for i in 0..s.agents {
        let own = s.server_of(i);
        let other = (i * 7 + 3) % s.servers;
        writeln!(
            t,
            "\n[agents.agent-{i}]\ndescription = \"Generated agent {i}.\"\nceiling = [\"srv{own}.*\", \"srv{other}.read_doc\"]"
        )
        .unwrap();
    }
    t
}

pub fn catalog_toml(s: &Shape) -> String {
    let mut t = String::new();
    for k in 0..s.servers {
        let output = if k % 2 == 0 { "trusted" } else { "untrusted" };
        writeln!(
            t,
            r#"[tools."srv{k}.read_doc"]
effect = "read"
required = ["doc"]
resource = {{ type = "Dataset", arg = "doc", prefix = "srv{k}:" }}
labels = [
  {{ arg = "doc", glob = ["secrets/**", "**/.env"], add = ["secret"] }},
  {{ arg = "doc", glob = ["public/**"], add = ["public"] }},
  {{ arg = "doc", glob = ["hr/**"], add = ["pii", "hr-compensation"] }},
]
default_labels = ["internal"]
output = "{output}"
records = "lines"

[tools."srv{k}.write_doc"]
effect = "write"
required = ["doc", "content"]
resource = {{ type = "Dataset", arg = "doc", prefix = "srv{k}:" }}
labels = [{{ arg = "doc", glob = ["public/**"], add = ["public"] }}]
default_labels = ["internal"]
audience = {{ kind = "group", group = "all-staff" }}
directs = ["doc"]

[tools."srv{k}.post_message"]
effect = "publish"
required = ["channel", "body"]
resource = {{ type = "Channel", arg = "channel" }}
labels = [{{ arg = "channel", channel_readers = true }}]
audience = {{ kind = "channel", arg = "channel" }}

[tools."srv{k}.export"]
effect = "egress"
required = ["to", "body"]
resource = {{ type = "Mailbox", arg = "to" }}
audience = {{ kind = "email", arg = "to" }}
directs = ["to"]
"#
        )
        .unwrap();
    }
    t
}

pub const MISSIONS: &str = r#"["tenant-work"]
description = "Work on a tenant's documents."
tools = ["*"]
lifetime = "2h"
calls = 100
records = 10000
"#;

pub fn directory_json(s: &Shape) -> String {
    let mut v =
        vec![json!({"uid": {"type": "Group", "id": "all-staff"}, "attrs": {}, "parents": []})];
    for t in 0..s.tenants {
        v.push(json!({"uid": {"type": "Group", "id": format!("tenant-{t}")}, "attrs": {}, "parents": []}));
    }
    for u in 0..USERS {
        let tenant = u % s.tenants;
        v.push(json!({
            "uid": {"type": "User", "id": format!("user-{u:04}")},
            "attrs": {"clearances": ["internal"], "email": format!("user-{u:04}@corp.example")},
            "parents": [{"type": "Group", "id": "all-staff"}, {"type": "Group", "id": format!("tenant-{tenant}")}],
        }));
    }
    v.push(json!({
        "uid": {"type": "Channel", "id": "general"},
        "attrs": {"readers": [{"__entity": {"type": "Group", "id": "all-staff"}}]},
        "parents": [],
    }));
    serde_json::to_string_pretty(&Value::Array(v)).unwrap()
}

pub fn agent_policies(s: &Shape) -> String {
    let mut t = String::new();
    for i in 0..s.agents {
        let other = (i * 11 + 5) % s.servers;
        let calls = 5 + i % 20;
        writeln!(
            t,
            r#"@id("agent-{i}-no-secret-out")
@reason("agent-{i} never moves secrets, nor personal data to people not cleared for it")
forbid (principal == Agent::"agent-{i}", action in [Action::"publish", Action::"egress"], resource)
when {{ context.flow.labels.contains("secret") || (context.flow.labels.contains("pii") && context.exposure.count > 0) }};

@id("agent-{i}-sensitive-office-hours")
@reason("agent-{i} touches sensitive data on srv{other} only in office hours")
forbid (principal == Agent::"agent-{i}", action in Action::"srv{other}", resource)
when {{ context.flow.sensitive && (context.hour_utc < 6 || context.hour_utc > 20) }};

@id("agent-{i}-ask-untrusted-changes")
@warden("ask")
@reason("agent-{i} changes things after reading untrusted content late in a session")
forbid (principal == Agent::"agent-{i}", action in [Action::"write", Action::"egress"], resource)
when {{ context.flow.untrusted_input && context.session.calls > {calls} }};
"#
        )
        .unwrap();
    }
    t
}

pub fn tenant_policies(s: &Shape) -> String {
    let mut t = String::new();
    for k in 0..s.tenant_policies {
        let g = k / 2;
        if k % 2 == 0 {
            writeln!(
                t,
                r#"@id("tenant-{g}-read")
@reason("members of tenant-{g} read what they are cleared for")
permit (principal is User in Group::"tenant-{g}", action in Action::"read", resource)
when {{ principal.clearances.containsAll(context.flow.resource_labels) && context.mission.calls_left > 0 }};
"#
            )
            .unwrap();
        } else {
            writeln!(
                t,
                r#"@id("tenant-{g}-no-sensitive-egress")
@reason("tenant-{g} keeps sensitive data inside")
forbid (principal is User in Group::"tenant-{g}", action in Action::"egress", resource)
when {{ context.flow.sensitive || context.exposure.external_exposed > 0 }};
"#
            )
            .unwrap();
        }
    }
    t
}

/// The whole configuration of `s`: the text of `warden.toml` and every other file.
pub fn files(s: &Shape) -> (String, MemSources) {
    let mut files = HashMap::new();
    files.insert("catalog.toml".to_string(), catalog_toml(s));
    files.insert("missions.toml".to_string(), MISSIONS.to_string());
    files.insert("directory.json".to_string(), directory_json(s));
    files.insert(
        "policies/default.cedar".to_string(),
        DEFAULT_PACK.to_string(),
    );
    files.insert("policies/people.cedar".to_string(), PEOPLE_PACK.to_string());
    files.insert("policies/agents.cedar".to_string(), agent_policies(s));
    files.insert("policies/tenants.cedar".to_string(), tenant_policies(s));
    (warden_toml(s), MemSources(files))
}
