//! The answer types of the passkey routes (docs/passkeys.md), outside the `passkeys`
//! feature so that the OpenAPI document is the same in every build.
#![cfg_attr(not(feature = "passkeys"), allow(dead_code))]

use serde_json::Value;

use crate::clock::iso8601;
use crate::store::Passkey;

/// One passkey as `GET /passkeys` lists it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Passkey)]
pub(crate) struct PasskeyBody {
    /// nauth's id of the passkey (`/passkeys/{id}`).
    id: String,
    /// The user's name for it.
    name: String,
    /// The credential id (base64url), as `navigator.credentials.get` answers it.
    credential_id: String,
    /// Whether the passkey may be synced to other devices (a multi-device credential).
    backup_eligible: bool,
    /// Whether it is backed up (synced) now, as of its last use.
    backup_state: bool,
    /// The authenticator model, when it told one.
    aaguid: Option<String>,
    created_at: String,
    last_used_at: Option<String>,
}

impl PasskeyBody {
    /// The body of a stored passkey.
    pub(crate) fn of(p: &Passkey) -> Self {
        PasskeyBody {
            id: p.id.clone(),
            name: p.name.clone(),
            credential_id: p.credential_id.clone(),
            backup_eligible: p.backup_eligible,
            backup_state: p.backup_state,
            aaguid: p.aaguid.clone(),
            created_at: iso8601(p.created_at),
            last_used_at: p.last_used_at.map(iso8601),
        }
    }
}

/// The answer of an options route: the ceremony token to send back, and the options for
/// `navigator.credentials.create` / `.get` (`publicKey`, binary fields base64url).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PasskeyOptions)]
pub(crate) struct OptionsBody {
    /// Opaque, one-time, short-lived (`passkeys.challenge_ttl`): sent back with the response.
    pub(crate) ceremony: String,
    /// `PublicKeyCredentialCreationOptions` or `PublicKeyCredentialRequestOptions` (JSON:
    /// `challenge`, `user.id`, credential ids are base64url strings).
    #[schema(value_type = Object)]
    pub(crate) public_key: Value,
}
