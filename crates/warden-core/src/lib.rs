//! Warden's pure decision core.
pub mod detect;
