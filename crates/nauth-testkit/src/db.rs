//! The testkit's own view of nauth's tables, for the cases that read or poke stored rows
//! (`docs/api.md` says what a row means; the engine's schema says how it is stored). Each
//! entity names only the columns the cases use, so the engine may add columns freely; the
//! testkit reaches the database through a connection of its own (`Env::db`), never through
//! the engine.
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
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub email: String,
        pub password_hash: String,
        pub roles: String,
        pub is_phone_verified: bool,
        pub must_change_password: bool,
        pub disabled: bool,
        pub mfa_exempt: bool,
    }
    no_relations!();
}

pub(crate) mod sessions {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "nauth_sessions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub user_id: String,
    }
    no_relations!();
}

pub(crate) mod refresh_tokens {
    use sea_orm::entity::prelude::*;

    /// The state of a session's live refresh token.
    pub const CURRENT: i16 = 0;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "nauth_refresh_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        pub session_id: String,
        pub state: i16,
    }
    no_relations!();
}

pub(crate) mod audit_log {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "nauth_audit_log")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub user_id: Option<String>,
        pub event_type: String,
        pub event_status: String,
        pub ip_address: Option<String>,
        #[sea_orm(column_type = "Text")]
        pub details: String,
    }
    no_relations!();
}

pub(crate) mod kv {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "nauth_kv")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub value: i64,
        pub expires_at: i64,
    }
    no_relations!();
}

/// A table of rows that belong to one user: only their `user_id` is read.
macro_rules! user_rows {
    ($module:ident, $table:literal) => {
        pub(crate) mod $module {
            use sea_orm::entity::prelude::*;

            #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
            #[sea_orm(table_name = $table)]
            pub struct Model {
                #[sea_orm(primary_key, auto_increment = false)]
                pub id: String,
                pub user_id: String,
            }
            no_relations!();
        }
    };
}

user_rows!(mfa_devices, "nauth_mfa_devices");
user_rows!(backup_codes, "nauth_backup_codes");
user_rows!(trusted_devices, "nauth_trusted_devices");
user_rows!(passkeys, "nauth_passkeys");

/// Social login identities (schema v11): only their `user_id` is read.
pub(crate) mod social_identities {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "nauth_social_identities")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub provider: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub subject: String,
        pub user_id: String,
    }
    no_relations!();
}
