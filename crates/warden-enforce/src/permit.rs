//! [`Permitted`]: a call whose allowing decision is durably in the audit chain.

use warden_core::{Allowed, Receipt};

/// A value Warden allowed *and* whose decision is durably recorded. Only
/// [`crate::Enforcer::decide`] makes one, after the audit append committed; it is not `Clone`,
/// and forwarding consumes it. Upstream clients take a `Permitted<Call>`, never plain
/// arguments.
#[derive(Debug)]
pub struct Permitted<T> {
    inner: T,
    receipt: Receipt,
    seq: u64,
}

impl<T> Permitted<T> {
    /// Made by the enforcer only, from the engine's allow and the audit record's place.
    pub(crate) fn new(allowed: Allowed<T>, seq: u64) -> Permitted<T> {
        let (inner, receipt) = allowed.into_parts();
        Permitted {
            inner,
            receipt,
            seq,
        }
    }

    /// The permitted value.
    pub fn get(&self) -> &T {
        &self.inner
    }

    /// The id of the decision that allowed it.
    pub fn decision_id(&self) -> &str {
        self.receipt.decision_id()
    }

    /// What absorbing its output needs (cheap to clone; outlives the call).
    pub fn receipt(&self) -> &Receipt {
        &self.receipt
    }

    /// The sequence number of its decision's audit record.
    pub fn audit_seq(&self) -> u64 {
        self.seq
    }

    /// Take the value out, to send it. Consumes the permit.
    pub fn into_inner(self) -> T {
        self.inner
    }
}
