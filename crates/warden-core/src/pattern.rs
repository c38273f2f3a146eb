//! Tool patterns: `server.tool`, `server.*` or `*`.

use std::fmt;

/// A pattern over `server.tool` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolPattern {
    /// Every tool.
    All,
    /// Every tool of one server.
    Server(String),
    /// One tool.
    Tool(String),
}

impl ToolPattern {
    /// Parse `*`, `server.*` or `server.tool`.
    pub fn parse(s: &str) -> Option<ToolPattern> {
        if s == "*" {
            return Some(ToolPattern::All);
        }
        let (server, tool) = s.split_once('.')?;
        if server.is_empty() || tool.is_empty() || server.contains('*') {
            return None;
        }
        if tool == "*" {
            Some(ToolPattern::Server(server.to_string()))
        } else if tool.contains('*') {
            None
        } else {
            Some(ToolPattern::Tool(s.to_string()))
        }
    }

    /// True when `name` (`server.tool`) matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            ToolPattern::All => true,
            ToolPattern::Server(s) => name.split_once('.').is_some_and(|(srv, _)| srv == s),
            ToolPattern::Tool(t) => t == name,
        }
    }
}

impl fmt::Display for ToolPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolPattern::All => f.write_str("*"),
            ToolPattern::Server(s) => write!(f, "{s}.*"),
            ToolPattern::Tool(t) => f.write_str(t),
        }
    }
}
