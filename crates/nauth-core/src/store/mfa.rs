//! Second factors: MFA devices (TOTP, email, SMS) and backup codes.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder,
};

use super::OrStore;
use super::entities::{backup_codes, mfa_devices};
use super::{BackupCode, Conn, MfaDevice, R};

/// The user's MFA devices, oldest first.
pub(crate) async fn devices(db: &impl Conn, user_id: &str) -> R<Vec<MfaDevice>> {
    mfa_devices::Entity::find()
        .filter(mfa_devices::Column::UserId.eq(user_id))
        .order_by_asc(mfa_devices::Column::CreatedAt)
        .all(db.c())
        .await
        .db()
}

/// An MFA device by id.
pub(crate) async fn device(db: &impl Conn, id: &str) -> R<Option<MfaDevice>> {
    mfa_devices::Entity::find_by_id(id.to_string())
        .one(db.c())
        .await
        .db()
}

/// Enrols a device.
pub(crate) async fn add_device(db: &impl Conn, d: MfaDevice) -> R<()> {
    mfa_devices::Entity::insert(d.into_active_model().reset_all())
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// Deletes a device.
pub(crate) async fn remove_device(db: &impl Conn, id: &str) -> R<()> {
    mfa_devices::Entity::delete_by_id(id.to_string())
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// Records a TOTP code's time step as used, only if the device's last step is still
/// `last_step` (two racing requests cannot both use one code); whether this request won.
pub(crate) async fn use_totp_step(
    db: &impl Conn,
    device_id: &str,
    last_step: Option<i64>,
    step: i64,
    now: i64,
) -> R<bool> {
    let n = mfa_devices::Entity::update_many()
        .col_expr(mfa_devices::Column::LastStep, Expr::value(step))
        .col_expr(mfa_devices::Column::LastUsedAt, Expr::value(now))
        .filter(mfa_devices::Column::Id.eq(device_id))
        .filter(match last_step {
            Some(s) => mfa_devices::Column::LastStep.eq(s),
            None => mfa_devices::Column::LastStep.is_null(),
        })
        .exec(db.c())
        .await
        .db()?
        .rows_affected;
    Ok(n == 1)
}

/// Records that the user's devices of a kind (`email`, `sms`) were used at `now`.
pub(crate) async fn touch_kind(db: &impl Conn, user_id: &str, kind: &str, now: i64) -> R<()> {
    mfa_devices::Entity::update_many()
        .col_expr(mfa_devices::Column::LastUsedAt, Expr::value(now))
        .filter(mfa_devices::Column::UserId.eq(user_id))
        .filter(mfa_devices::Column::Kind.eq(kind))
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// Clears the preferred mark of every device of the user.
pub(crate) async fn clear_preferred(db: &impl Conn, user_id: &str) -> R<()> {
    mfa_devices::Entity::update_many()
        .col_expr(mfa_devices::Column::IsPreferred, Expr::value(false))
        .filter(mfa_devices::Column::UserId.eq(user_id))
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// Marks a device preferred.
pub(crate) async fn mark_preferred(db: &impl Conn, id: &str) -> R<()> {
    mfa_devices::Entity::update_many()
        .col_expr(mfa_devices::Column::IsPreferred, Expr::value(true))
        .filter(mfa_devices::Column::Id.eq(id))
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// Points the user's email devices at a new address (and renames them to its mask).
pub(crate) async fn readdress_email_devices(
    db: &impl Conn,
    user_id: &str,
    email: &str,
    name: &str,
) -> R<()> {
    mfa_devices::Entity::update_many()
        .col_expr(mfa_devices::Column::Destination, Expr::value(email))
        .col_expr(mfa_devices::Column::Name, Expr::value(name))
        .filter(mfa_devices::Column::UserId.eq(user_id))
        .filter(mfa_devices::Column::Kind.eq("email"))
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// How many unused backup codes the user has.
pub(crate) async fn backup_codes_left(db: &impl Conn, user_id: &str) -> R<u64> {
    backup_codes::Entity::find()
        .filter(backup_codes::Column::UserId.eq(user_id))
        .filter(backup_codes::Column::UsedAt.is_null())
        .count(db.c())
        .await
        .db()
}

/// The user's unused backup codes.
pub(crate) async fn unused_backup_codes(db: &impl Conn, user_id: &str) -> R<Vec<BackupCode>> {
    backup_codes::Entity::find()
        .filter(backup_codes::Column::UserId.eq(user_id))
        .filter(backup_codes::Column::UsedAt.is_null())
        .all(db.c())
        .await
        .db()
}

/// Marks a backup code used, only if it is still unused; whether this request won it.
pub(crate) async fn use_backup_code(db: &impl Conn, id: &str, now: i64) -> R<bool> {
    let n = backup_codes::Entity::update_many()
        .col_expr(backup_codes::Column::UsedAt, Expr::value(now))
        .filter(backup_codes::Column::Id.eq(id))
        .filter(backup_codes::Column::UsedAt.is_null())
        .exec(db.c())
        .await
        .db()?
        .rows_affected;
    Ok(n == 1)
}

/// Deletes every backup code of the user.
pub(crate) async fn delete_backup_codes(db: &impl Conn, user_id: &str) -> R<()> {
    backup_codes::Entity::delete_many()
        .filter(backup_codes::Column::UserId.eq(user_id))
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// Stores a new backup code.
pub(crate) async fn add_backup_code(db: &impl Conn, c: BackupCode) -> R<()> {
    backup_codes::Entity::insert(c.into_active_model().reset_all())
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}
