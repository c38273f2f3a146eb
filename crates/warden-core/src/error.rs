//! Configuration errors: every problem found while loading, with the file and line, reported together.

use std::fmt;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigIssue {
    /// The file, as named in the configuration.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong and, where it helps, what to do.
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// The configuration could not be loaded; holds every problem found, not just the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} problem(s) in the configuration:\n{}", .0.len(), render(.0))]
pub struct ConfigError(pub Vec<ConfigIssue>);

fn render(issues: &[ConfigIssue]) -> String {
    issues
        .iter()
        .map(|i| format!("  {i}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Collects issues while loading so that all of them can be reported at once.
#[derive(Debug, Default)]
pub struct Issues(pub Vec<ConfigIssue>);

impl Issues {
    /// Record an issue.
    pub fn push(&mut self, file: &str, line: Option<usize>, message: impl Into<String>) {
        self.0.push(ConfigIssue {
            file: file.to_string(),
            line,
            message: message.into(),
        });
    }

    /// True when nothing went wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Turn the collected issues into a result.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError(self.0))
        }
    }
}

/// 1-based line of a byte offset in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()
        .get(..end)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count() + 1)
        .unwrap_or(1)
}

/// The lines of one text, for many lookups: [`line_of`] counts the newlines before an offset on
/// every call, which is quadratic when every policy of a large file asks for its line.
#[derive(Debug, Clone, Default)]
pub struct LineIndex {
    /// Byte offsets of the newlines, in order.
    newlines: Vec<usize>,
}

impl LineIndex {
    /// Index `text`.
    pub fn new(text: &str) -> LineIndex {
        LineIndex {
            newlines: text
                .bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        }
    }

    /// 1-based line of a byte offset: the same as [`line_of`] on the indexed text.
    pub fn line(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&n| n < offset) + 1
    }
}

/// Best-effort line of a TOML key: the line of the table header `[a.b]` (or `[a."b"]`) that
/// holds the path's prefix, then of `key =` below it. Used to point semantic errors at a line.
pub fn locate_toml(text: &str, table: &[&str], key: Option<&str>) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut start = 0usize;
    if !table.is_empty() {
        let want: Vec<String> = table.iter().map(|s| s.to_string()).collect();
        start = lines.iter().position(|l| {
            let t = l.trim();
            (t.starts_with('[') && !t.starts_with("[["))
                && header_parts(t.trim_matches(|c| c == '[' || c == ']')) == want
        })?;
    }
    match key {
        None => Some(start + 1),
        Some(k) => {
            for (i, l) in lines.iter().enumerate().skip(start) {
                let t = l.trim_start();
                if i > start && t.starts_with('[') && !table.is_empty() {
                    break;
                }
                let bare = t.trim_start_matches('"');
                if let Some(rest) = bare.strip_prefix(k) {
                    if rest.trim_start_matches('"').trim_start().starts_with('=') {
                        return Some(i + 1);
                    }
                }
            }
            Some(start + 1)
        }
    }
}

fn header_parts(h: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in h.trim().chars() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => {
                parts.push(cur.trim().to_string());
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    parts.push(cur.trim().to_string());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_quoted_headers_and_keys() {
        let text = "a = 1\n[tools.\"forum.read\"]\neffect = \"x\"\n[tools.\"b\"]\neffect = 2\n";
        assert_eq!(
            locate_toml(text, &["tools", "forum.read"], Some("effect")),
            Some(3)
        );
        assert_eq!(locate_toml(text, &["tools", "b"], Some("effect")), Some(5));
        assert_eq!(locate_toml(text, &["tools", "zzz"], None), None);
        assert_eq!(line_of("a\nb\nc", 2), 2);
    }

    #[test]
    fn the_line_index_agrees_with_line_of() {
        for text in ["", "a", "\n", "a\nb\nc", "\n\nx\n", "é\nü\n\nz"] {
            let idx = LineIndex::new(text);
            for offset in 0..text.len() + 3 {
                assert_eq!(
                    idx.line(offset),
                    line_of(text, offset),
                    "{text:?} at {offset}"
                );
            }
        }
    }
}
