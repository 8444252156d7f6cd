//! Typed identifiers. Each wraps a UUID so that an organization id can never
//! be passed where a client id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps an existing UUID.
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// A new, time-ordered identifier (UUIDv7), so that rows created
            /// together sit together in indexes.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
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

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    };
}

id_type!(
    /// A data export: a JSON Lines file of an organization's or a
    /// client's data.
    DataExportId
);
id_type!(
    /// An organization (SME or agency): the tenant.
    OrgId
);
id_type!(
    /// A user: a person who may belong to several organizations.
    UserId
);
id_type!(
    /// An agency's client (a "workspace entity").
    ClientId
);
id_type!(
    /// A campaign.
    CampaignId
);
id_type!(
    /// An agent run and its output.
    OutputId
);
id_type!(
    /// A persona.
    PersonaId
);
id_type!(
    /// An API key.
    ApiKeyId
);
id_type!(
    /// An invitation to join an organization.
    InvitationId
);
