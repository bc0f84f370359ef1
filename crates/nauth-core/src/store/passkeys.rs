//! Passkeys (WebAuthn credentials) and the pending ceremonies between a WebAuthn options
//! answer and the client's response.
#![cfg_attr(not(feature = "passkeys"), allow(dead_code))]

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder,
};

use super::entities::{passkey_ceremonies, passkeys};
use super::{Conn, OrStore, Passkey, PasskeyCeremony, R, conflict};

/// The user's passkeys, oldest first.
pub(crate) async fn of_user(db: &impl Conn, user_id: &str) -> R<Vec<Passkey>> {
    passkeys::Entity::find()
        .filter(passkeys::Column::UserId.eq(user_id))
        .order_by_asc(passkeys::Column::CreatedAt)
        .order_by_asc(passkeys::Column::Id)
        .all(db.c())
        .await
        .db()
}

/// How many passkeys the user has.
pub(crate) async fn count(db: &impl Conn, user_id: &str) -> R<u64> {
    passkeys::Entity::find()
        .filter(passkeys::Column::UserId.eq(user_id))
        .count(db.c())
        .await
        .db()
}

/// One passkey by nauth's id.
pub(crate) async fn get(db: &impl Conn, id: &str) -> R<Option<Passkey>> {
    passkeys::Entity::find_by_id(id.to_string())
        .one(db.c())
        .await
        .db()
}

/// The passkey of a credential (by the SHA-256 of its raw id).
pub(crate) async fn by_credential(db: &impl Conn, credential_hash: &str) -> R<Option<Passkey>> {
    passkeys::Entity::find()
        .filter(passkeys::Column::CredentialHash.eq(credential_hash))
        .one(db.c())
        .await
        .db()
}

/// Stores a new passkey; a credential already stored (for anyone) is `Conflict("credential")`.
pub(crate) async fn insert(db: &impl Conn, p: Passkey) -> R<()> {
    passkeys::Entity::insert(p.into_active_model().reset_all())
        .exec(db.c())
        .await
        .map_err(|e| conflict(e, &["credential"]))?;
    Ok(())
}

/// Renames the user's passkey; whether it exists.
pub(crate) async fn rename(db: &impl Conn, user_id: &str, id: &str, name: &str) -> R<bool> {
    let n = passkeys::Entity::update_many()
        .col_expr(passkeys::Column::Name, Expr::value(name))
        .filter(passkeys::Column::Id.eq(id))
        .filter(passkeys::Column::UserId.eq(user_id))
        .exec(db.c())
        .await
        .db()?
        .rows_affected;
    Ok(n > 0)
}

/// Deletes the user's passkey; whether it existed.
pub(crate) async fn remove(db: &impl Conn, user_id: &str, id: &str) -> R<bool> {
    let n = passkeys::Entity::delete_many()
        .filter(passkeys::Column::Id.eq(id))
        .filter(passkeys::Column::UserId.eq(user_id))
        .exec(db.c())
        .await
        .db()?
        .rows_affected;
    Ok(n > 0)
}

/// Records a verified use: the new counter, backup state and serialised key, conditional on
/// the counter read before (two racing uses of one counter value cannot both pass). Whether
/// this use won.
pub(crate) async fn record_use(
    db: &impl Conn,
    p: &Passkey,
    sign_count: i64,
    backup_state: bool,
    backup_eligible: bool,
    serialised: &str,
    now: i64,
) -> R<bool> {
    let n = passkeys::Entity::update_many()
        .col_expr(passkeys::Column::SignCount, Expr::value(sign_count))
        .col_expr(passkeys::Column::BackupState, Expr::value(backup_state))
        .col_expr(
            passkeys::Column::BackupEligible,
            Expr::value(backup_eligible),
        )
        .col_expr(passkeys::Column::Passkey, Expr::value(serialised))
        .col_expr(passkeys::Column::LastUsedAt, Expr::value(now))
        .filter(passkeys::Column::Id.eq(&p.id))
        .filter(passkeys::Column::SignCount.eq(p.sign_count))
        .exec(db.c())
        .await
        .db()?
        .rows_affected;
    Ok(n > 0)
}

/// Stores a pending ceremony.
pub(crate) async fn begin(db: &impl Conn, c: PasskeyCeremony) -> R<()> {
    passkey_ceremonies::Entity::insert(c.into_active_model().reset_all())
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// Ends the other pending ceremonies of a kind for a user (one registration, one MFA answer
/// at a time).
pub(crate) async fn end_kind(db: &impl Conn, user_id: &str, kind: &str) -> R<()> {
    passkey_ceremonies::Entity::delete_many()
        .filter(passkey_ceremonies::Column::UserId.eq(user_id))
        .filter(passkey_ceremonies::Column::Kind.eq(kind))
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// Claims a ceremony of `kind` by its hash: the row is read and deleted, and only the
/// request whose delete removed it gets it (a second answer, raced or replayed, gets `None`).
/// Expiry is the caller's to check.
pub(crate) async fn take(db: &impl Conn, id_hash: &str, kind: &str) -> R<Option<PasskeyCeremony>> {
    let Some(row) = passkey_ceremonies::Entity::find_by_id(id_hash.to_string())
        .one(db.c())
        .await
        .db()?
    else {
        return Ok(None);
    };
    let n = passkey_ceremonies::Entity::delete_many()
        .filter(passkey_ceremonies::Column::IdHash.eq(id_hash))
        .exec(db.c())
        .await
        .db()?
        .rows_affected;
    Ok((n == 1 && row.kind == kind).then_some(row))
}

/// Deletes every passkey and pending ceremony of a user (account erasure).
pub(crate) async fn erase_user(db: &impl Conn, user_id: &str) -> R<()> {
    passkeys::Entity::delete_many()
        .filter(passkeys::Column::UserId.eq(user_id))
        .exec(db.c())
        .await
        .db()?;
    passkey_ceremonies::Entity::delete_many()
        .filter(passkey_ceremonies::Column::UserId.eq(user_id))
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}
