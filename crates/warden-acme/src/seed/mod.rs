//! Seeded data of the Acme world. Every generator is deterministic.

pub(crate) mod acl;
pub(crate) mod files;
pub(crate) mod forum;
pub(crate) mod hr;
pub(crate) mod logs;
pub(crate) mod web;
