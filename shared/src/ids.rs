//! Identifiers: records (documents), people and devices.
//!
//! All are UUIDs; record ids are v7 so that they sort by creation time.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// The raw 16 bytes, as stored in keys.
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
            /// Rebuilds an id from its 16 bytes.
            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(Uuid::from_bytes(bytes))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// One record (one Automerge document). UUID v7: time-ordered.
    DocId
);
uuid_id!(
    /// A person who signs in: field staff, supervisor or administrator.
    PersonId
);
uuid_id!(
    /// A registered phone (or other client) of one person; revocable on its own.
    DeviceId
);

impl DocId {
    /// A fresh record id for a record created at `unix_ms`, with `random` bytes
    /// for uniqueness (the caller brings the randomness, so this stays pure).
    pub fn new_v7(unix_ms: u64, random: [u8; 10]) -> Self {
        Self(uuid::Builder::from_unix_timestamp_millis(unix_ms, &random).into_uuid())
    }
}

/// Converts a device's Automerge actor, as assigned by the server, from its hex form.
pub fn actor_from_hex(hex: &str) -> Option<automerge::ActorId> {
    automerge::ActorId::from_str(hex).ok()
}
