//! Trusted devices ("remember this device" for MFA).

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
};

use super::OrStore;
use super::entities::trusted_devices;
use super::{Conn, R, TrustedDevice};

/// Revokes the user's trusted devices (or the one with this token hash); returns how many.
pub(crate) async fn forget(db: &impl Conn, user_id: &str, token_hash: Option<&str>) -> R<u64> {
    let mut q =
        trusted_devices::Entity::delete_many().filter(trusted_devices::Column::UserId.eq(user_id));
    if let Some(h) = token_hash {
        q = q.filter(trusted_devices::Column::TokenHash.eq(h));
    }
    Ok(q.exec(db.c()).await.db()?.rows_affected)
}

/// Stores a new trusted device.
pub(crate) async fn trust(db: &impl Conn, d: TrustedDevice) -> R<()> {
    trusted_devices::Entity::insert(d.into_active_model().reset_all())
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// Marks the user's unexpired trusted device with this token hash used at `now`; whether
/// there is one.
pub(crate) async fn recognise(
    db: &impl Conn,
    user_id: &str,
    token_hash: &str,
    now: i64,
) -> R<bool> {
    let n = trusted_devices::Entity::update_many()
        .col_expr(trusted_devices::Column::LastUsedAt, Expr::value(now))
        .filter(trusted_devices::Column::TokenHash.eq(token_hash))
        .filter(trusted_devices::Column::UserId.eq(user_id))
        .filter(trusted_devices::Column::ExpiresAt.gt(now))
        .exec(db.c())
        .await
        .db()?
        .rows_affected;
    Ok(n > 0)
}

/// The user's unexpired trusted devices, newest first.
pub(crate) async fn live(db: &impl Conn, user_id: &str, now: i64) -> R<Vec<TrustedDevice>> {
    trusted_devices::Entity::find()
        .filter(trusted_devices::Column::UserId.eq(user_id))
        .filter(trusted_devices::Column::ExpiresAt.gt(now))
        .order_by_desc(trusted_devices::Column::CreatedAt)
        .all(db.c())
        .await
        .db()
}

/// Deletes the user's trusted devices (or the one with this id); returns how many.
pub(crate) async fn remove(db: &impl Conn, user_id: &str, id: Option<&str>) -> R<u64> {
    let mut q =
        trusted_devices::Entity::delete_many().filter(trusted_devices::Column::UserId.eq(user_id));
    if let Some(id) = id {
        q = q.filter(trusted_devices::Column::Id.eq(id));
    }
    Ok(q.exec(db.c()).await.db()?.rows_affected)
}
