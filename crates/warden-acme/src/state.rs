//! The in-memory world of Acme: the types of its records and the seeded state.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::rng::{nov, timestamp};
use crate::seed;

/// A forum channel.
pub(crate) struct Channel {
    pub name: &'static str,
    pub topic: &'static str,
}

/// One message of a forum thread.
#[derive(Clone, Serialize)]
pub(crate) struct Message {
    pub id: String,
    pub author: String,
    pub at: String,
    pub body: String,
}

/// A forum thread; its first message is the opening post.
#[derive(Clone)]
pub(crate) struct Thread {
    pub id: String,
    pub channel: String,
    pub title: String,
    pub author: String,
    pub messages: Vec<Message>,
}

/// A direct message sent with `forum.send_dm`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DirectMessage {
    /// Message id, e.g. `DM-5001`.
    pub id: String,
    /// Author shown to the recipient.
    pub from: String,
    /// The recipient's user name.
    pub to: String,
    /// Message text.
    pub body: String,
    /// When it was sent (the server's logical clock).
    pub at: String,
}

/// An e-mail accepted by `mail.send_email`. Nothing ever leaves the process: the outbox is the
/// whole of Acme's mail system.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SentEmail {
    /// Message id, e.g. `msg-20261120-0001@mail.acme.example`.
    pub id: String,
    /// Recipients, as given.
    pub to: Vec<String>,
    /// Copied recipients, seen by all.
    pub cc: Vec<String>,
    /// Blind-copied recipients.
    pub bcc: Vec<String>,
    /// Subject line.
    pub subject: String,
    /// Body text.
    pub body: String,
    /// When it was accepted (the server's logical clock).
    pub at: String,
}

/// One log record; `fields` keep their order for rendering.
#[derive(Clone)]
pub(crate) struct LogRecord {
    pub secs: u64,
    pub source: &'static str,
    pub outcome: &'static str,
    pub fields: Vec<(&'static str, String)>,
}

impl LogRecord {
    /// The record as one log line, e.g.
    /// `2026-11-20T09:14:03Z auth FAIL user=bob ip=10.20.3.17 reason=invalid_password session=…`.
    pub fn line(&self) -> String {
        let mut line = format!("{} {} {}", timestamp(self.secs), self.source, self.outcome);
        for (key, value) in &self.fields {
            line.push(' ');
            line.push_str(key);
            line.push('=');
            line.push_str(value);
        }
        line
    }

    /// The record as a JSON object.
    pub fn json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        map.insert("ts".into(), timestamp(self.secs).into());
        map.insert("source".into(), self.source.into());
        map.insert("outcome".into(), self.outcome.into());
        for (key, value) in &self.fields {
            map.insert((*key).into(), value.clone().into());
        }
        serde_json::Value::Object(map)
    }
}

/// A person in the HR directory.
#[derive(Clone)]
pub(crate) struct Employee {
    pub user: String,
    pub name: String,
    pub title: String,
    pub team: String,
    pub email: String,
    pub phone: String,
    pub salary: u64,
    pub ssn: String,
    pub home_address: String,
}

/// An access-control list: permission → groups.
#[derive(Clone)]
pub(crate) struct Acl {
    pub description: &'static str,
    pub grants: BTreeMap<String, Vec<String>>,
}

/// A canned web page.
pub(crate) struct Page {
    pub text: String,
}

/// Everything the Acme server knows; one instance is shared by all sessions of a server.
pub(crate) struct State {
    /// Logical clock for writes, in seconds since 2026-11-01T00:00:00Z.
    pub clock: u64,
    pub channels: Vec<Channel>,
    pub threads: Vec<Thread>,
    pub next_thread: u32,
    pub next_message: u32,
    pub dms: Vec<DirectMessage>,
    pub logs: BTreeMap<&'static str, Vec<LogRecord>>,
    pub employees: Vec<Employee>,
    pub files: BTreeMap<String, String>,
    pub acls: BTreeMap<String, Acl>,
    pub pages: BTreeMap<String, Page>,
    pub outbox: Vec<SentEmail>,
}

impl State {
    /// The seeded world, identical on every call.
    pub fn seeded() -> Self {
        let (channels, threads) = seed::forum::seed();
        State {
            // Writes happen "now": just after the last seeded event.
            clock: nov(20, 10, 30, 0),
            channels,
            threads,
            next_thread: 1100,
            next_message: 20_500,
            dms: Vec::new(),
            logs: seed::logs::seed(),
            employees: seed::hr::seed(),
            files: seed::files::seed(),
            acls: seed::acl::seed(),
            pages: seed::web::seed(),
            outbox: Vec::new(),
        }
    }

    /// Advances the logical clock and returns the new time.
    pub fn tick(&mut self) -> String {
        self.clock += 60;
        timestamp(self.clock)
    }

    /// A fresh forum message id.
    pub fn message_id(&mut self) -> String {
        self.next_message += 1;
        format!("M-{}", self.next_message)
    }
}
