//! Entity ids and type names: what the catalog, the directory and the policies share.
//!
//! Cedar entity uids ([`uid`]), the resource types a catalog may name ([`RESOURCE_TYPES`]), and
//! the reader labels of the directory ([`PUBLIC`], [`CHANNEL_LABEL_PREFIX`]). This module
//! depends on no other module of the crate: [`crate::catalog`], [`crate::directory`] and
//! [`crate::policy`] each build on it rather than on one another.

use std::collections::HashMap;
use std::str::FromStr;

use cedar_policy::EntityUid;

/// Resource entity types a catalog may name; they are declared in Warden's Cedar schema.
pub const RESOURCE_TYPES: &[&str] = &[
    "Channel", "Dataset", "File", "User", "Url", "Mailbox", "Resource",
];

/// The label everybody is cleared for.
pub const PUBLIC: &str = "public";
/// Prefix of the labels that mean "only the readers of this channel".
pub const CHANNEL_LABEL_PREFIX: &str = "channel:";

/// Build a Cedar entity uid. Ids are arbitrary strings; this cannot fail for a valid type name.
pub fn uid(ty: &str, id: &str) -> EntityUid {
    let tn = known_type(ty).cloned().unwrap_or_else(|| {
        cedar_policy::EntityTypeName::from_str(ty).unwrap_or_else(|_| fallback_type())
    });
    EntityUid::from_type_name_and_id(tn, cedar_policy::EntityId::new(id))
}

/// Parsed type names of Warden's schema, parsed once (parsing costs more than the lookup).
fn known_type(ty: &str) -> Option<&'static cedar_policy::EntityTypeName> {
    static TYPES: std::sync::OnceLock<HashMap<&'static str, cedar_policy::EntityTypeName>> =
        std::sync::OnceLock::new();
    TYPES
        .get_or_init(|| {
            ["User", "Group", "Agent", "Action"]
                .iter()
                .chain(RESOURCE_TYPES.iter())
                .filter_map(|t| {
                    cedar_policy::EntityTypeName::from_str(t)
                        .ok()
                        .map(|n| (*t, n))
                })
                .collect()
        })
        .get(ty)
}

fn fallback_type() -> cedar_policy::EntityTypeName {
    // `Resource` is always a valid type name.
    #[allow(clippy::expect_used)]
    cedar_policy::EntityTypeName::from_str("Resource").expect("`Resource` is a valid type name")
}
