//! sea-orm entities: one module per table. Times are Unix milliseconds (`i64`) so that every
//! back end stores and compares them the same way.
#![allow(missing_docs)]
// columns are documented in docs/storage.md
// The derive macros generate `pub` items of their own.
#![allow(unreachable_pub)]

macro_rules! no_relations {
    () => {
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
        impl ActiveModelBehavior for ActiveModel {}
    };
}

pub(crate) mod users {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "nauth_users")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        #[sea_orm(unique)]
        pub email: String,
        #[sea_orm(unique)]
        pub username: Option<String>,
        #[sea_orm(unique)]
        pub phone: Option<String>,
        pub password_hash: String,
        pub first_name: Option<String>,
        pub last_name: Option<String>,
        #[sea_orm(column_type = "Text", nullable)]
        pub metadata: Option<String>,
        pub roles: String,
        pub is_email_verified: bool,
        pub is_phone_verified: bool,
        pub must_change_password: bool,
        pub password_changed_at: i64,
        pub disabled: bool,
        pub mfa_enabled: bool,
        /// An admin exempted the user from `mfa.enforcement = "required"` (schema v7).
        #[sea_orm(default_value = false)]
        pub mfa_exempt: bool,
        /// The language of the user's mails (`en`, `fr`), chosen by the user; `NULL`: the
        /// request's `Accept-Language`, else `email.default_locale` (schema v9).
        pub locale: Option<String>,
        pub created_at: i64,
        pub updated_at: i64,
    }
    no_relations!();
}

pub(crate) mod sessions {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "nauth_sessions")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        #[sea_orm(indexed)]
        pub user_id: String,
        pub auth_method: String,
        pub device_name: Option<String>,
        pub device_type: Option<String>,
        pub ip_address: Option<String>,
        pub user_agent: Option<String>,
        pub access_jti: String,
        pub created_at: i64,
        pub last_activity_at: i64,
        /// Indexed for the background purge.
        #[sea_orm(indexed)]
        pub expires_at: i64,
        pub absolute_expires_at: i64,
        /// Indexed for the background purge (schema v6).
        #[sea_orm(indexed)]
        pub revoked_at: Option<i64>,
    }
    no_relations!();
}

pub(crate) mod refresh_tokens {
    use sea_orm::entity::prelude::*;

    /// The token is the session's live one.
    pub(crate) const CURRENT: i16 = 0;
    /// Its holder exchanged it: presenting it again is reuse (after the interval).
    pub(crate) const ROTATED: i16 = 1;
    /// A racing exchange replaced it: presenting it is merely invalid.
    pub(crate) const DISCARDED: i16 = 2;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "nauth_refresh_tokens")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        #[sea_orm(indexed)]
        pub session_id: String,
        pub state: i16,
        pub created_at: i64,
        pub rotated_at: Option<i64>,
    }
    no_relations!();
}

pub(crate) mod challenges {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "nauth_challenges")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id_hash: String,
        /// `None` for the decoy of a duplicate signup.
        #[sea_orm(indexed)]
        pub user_id: Option<String>,
        pub name: String,
        pub code_hash: Option<String>,
        pub destination: Option<String>,
        /// The MFA method whose code was sent with this challenge (`email`/`sms`); schema v2.
        pub method: Option<String>,
        pub attempts: i32,
        pub completed: bool,
        pub mfa_proven: bool,
        pub auth_method: String,
        pub device_name: Option<String>,
        pub device_type: Option<String>,
        pub ip_address: Option<String>,
        pub user_agent: Option<String>,
        pub last_sent_at: Option<i64>,
        pub sends_in_window: i32,
        pub send_window_start: i64,
        pub created_at: i64,
        /// Indexed for the background purge.
        #[sea_orm(indexed)]
        pub expires_at: i64,
    }
    no_relations!();
}

pub(crate) mod verification_tokens {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "nauth_verification_tokens")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        #[sea_orm(indexed)]
        pub user_id: String,
        pub purpose: String,
        #[sea_orm(indexed)]
        pub token_hash: String,
        pub data: Option<String>,
        pub attempts: i32,
        pub created_at: i64,
        /// Indexed for the background purge.
        #[sea_orm(indexed)]
        pub expires_at: i64,
        pub used_at: Option<i64>,
    }
    no_relations!();
}

pub(crate) mod password_history {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "nauth_password_history")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        #[sea_orm(indexed)]
        pub user_id: String,
        pub password_hash: String,
        pub created_at: i64,
    }
    no_relations!();
}

pub(crate) mod kv {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "nauth_kv")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub value: i64,
        /// Indexed for the background purge.
        #[sea_orm(indexed)]
        pub expires_at: i64,
    }
    no_relations!();
}

pub(crate) mod audit_log {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "nauth_audit_log")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        #[sea_orm(indexed)]
        pub user_id: Option<String>,
        pub event_type: String,
        pub event_status: String,
        pub ip_address: Option<String>,
        pub user_agent: Option<String>,
        #[sea_orm(column_type = "Text")]
        pub details: String,
        pub created_at: i64,
    }
    no_relations!();
}

pub(crate) mod mfa_devices {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "nauth_mfa_devices")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        #[sea_orm(indexed)]
        pub user_id: String,
        /// `totp`, `email` or `sms`.
        pub kind: String,
        pub name: String,
        /// The TOTP secret, sealed (XChaCha20-Poly1305, bound to the user id).
        #[sea_orm(column_type = "Text", nullable)]
        pub secret_sealed: Option<String>,
        /// Email address or phone number of email/sms devices.
        pub destination: Option<String>,
        pub is_preferred: bool,
        /// The last TOTP step accepted (replay protection).
        pub last_step: Option<i64>,
        pub created_at: i64,
        pub last_used_at: Option<i64>,
    }
    no_relations!();
}

pub(crate) mod backup_codes {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "nauth_backup_codes")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        #[sea_orm(indexed)]
        pub user_id: String,
        pub code_hash: String,
        pub used_at: Option<i64>,
        pub created_at: i64,
    }
    no_relations!();
}

pub(crate) mod trusted_devices {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "nauth_trusted_devices")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        #[sea_orm(indexed)]
        pub user_id: String,
        #[sea_orm(unique)]
        pub token_hash: String,
        pub device_name: Option<String>,
        pub device_type: Option<String>,
        pub ip_address: Option<String>,
        pub created_at: i64,
        pub last_used_at: Option<i64>,
        /// Indexed for the background purge.
        #[sea_orm(indexed)]
        pub expires_at: i64,
    }
    no_relations!();
}

pub(crate) mod api_keys {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "nauth_api_keys")]
    pub(crate) struct Model {
        /// The public id: the `<id>` of `nk_<id>_<secret>`.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        #[sea_orm(indexed)]
        pub user_id: String,
        pub name: String,
        /// Space-separated.
        pub scopes: String,
        /// SHA-256 of the secret, hex.
        pub secret_hash: String,
        pub last_four: String,
        pub created_at: i64,
        pub expires_at: Option<i64>,
        pub last_used_at: Option<i64>,
        pub revoked_at: Option<i64>,
    }
    no_relations!();
}

pub(crate) mod signing_keys {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "nauth_signing_keys")]
    pub(crate) struct Model {
        /// RFC 7638 thumbprint of the public key.
        #[sea_orm(primary_key, auto_increment = false)]
        pub kid: String,
        /// Order of creation. Unique: of two instances adding "the next key" at once, one
        /// insert fails and that instance adopts the other's key.
        #[sea_orm(unique)]
        pub seq: i64,
        /// `RS256` or `EdDSA`.
        pub algorithm: String,
        /// PKCS#8 DER sealed with the engine secret (XChaCha20-Poly1305, the kid as AAD);
        /// `NULL` for a key read from `jwt.private_key_file` (only its public part is kept).
        #[sea_orm(column_type = "Text", nullable)]
        pub private_sealed: Option<String>,
        /// The public JWK (JSON).
        #[sea_orm(column_type = "Text")]
        pub public_jwk: String,
        pub created_at: i64,
        /// When a newer key replaced it; verifiable for the window after it.
        pub retired_at: Option<i64>,
    }
    no_relations!();
}

pub(crate) mod passkeys {
    use sea_orm::entity::prelude::*;

    /// A WebAuthn passkey of a user (schema v11).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "nauth_passkeys")]
    pub(crate) struct Model {
        /// nauth's id of the passkey (a UUID, the `{id}` of `/passkeys/{id}`).
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        #[sea_orm(indexed)]
        pub user_id: String,
        /// SHA-256 (hex) of the raw credential id: one credential belongs to one account.
        #[sea_orm(unique)]
        pub credential_hash: String,
        /// The raw credential id, base64url (up to 1023 bytes raw, so not a key column).
        #[sea_orm(column_type = "Text")]
        pub credential_id: String,
        pub name: String,
        /// The verified public key and its state as webauthn-rs serialises it (JSON).
        #[sea_orm(column_type = "Text")]
        pub passkey: String,
        /// The authenticator's signature counter (0 for most synced passkeys).
        pub sign_count: i64,
        pub backup_eligible: bool,
        pub backup_state: bool,
        /// The authenticator model's AAGUID, when it told one (all zeros is `NULL`).
        pub aaguid: Option<String>,
        pub created_at: i64,
        pub last_used_at: Option<i64>,
    }
    no_relations!();
}

pub(crate) mod social_identities {
    use sea_orm::entity::prelude::*;

    /// An account at a social login provider linked to a user (schema v11): one row per
    /// (provider, subject), which is the primary key (an identity names at most one user).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "nauth_social_identities")]
    pub(crate) struct Model {
        /// The provider's configured name (`[social.<name>]`).
        #[sea_orm(primary_key, auto_increment = false)]
        pub provider: String,
        /// The provider's stable id of the account (`sub`, GitHub's numeric id).
        #[sea_orm(primary_key, auto_increment = false)]
        pub subject: String,
        #[sea_orm(indexed)]
        pub user_id: String,
        /// The verified email the provider asserted when the identity was linked or last used.
        pub email: Option<String>,
        pub linked_at: i64,
        pub last_used_at: Option<i64>,
    }
    no_relations!();
}

pub(crate) mod passkey_ceremonies {
    use sea_orm::entity::prelude::*;

    /// The server side of a WebAuthn ceremony between its options and its answer (schema
    /// v11): one-time (deleted when answered) and short-lived.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "nauth_passkey_ceremonies")]
    pub(crate) struct Model {
        /// SHA-256 (hex) of the ceremony token the client holds.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id_hash: String,
        /// `register`, `login` or `mfa`.
        pub kind: String,
        /// The user a registration or an MFA answer is for (`NULL` for a sign-in).
        #[sea_orm(indexed)]
        pub user_id: Option<String>,
        /// `mfa`: the `id_hash` of the MFA_REQUIRED challenge session it answers.
        pub challenge_hash: Option<String>,
        /// `register`: the name the new passkey gets.
        pub name: Option<String>,
        /// webauthn-rs's ceremony state (JSON, holds the challenge).
        #[sea_orm(column_type = "Text")]
        pub state: String,
        pub created_at: i64,
        /// Indexed for the background purge.
        #[sea_orm(indexed)]
        pub expires_at: i64,
    }
    no_relations!();
}

pub(crate) mod schema_version {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "nauth_schema")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub version: i32,
    }
    no_relations!();
}
