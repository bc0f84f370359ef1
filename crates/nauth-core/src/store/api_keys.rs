//! API keys (`nk_<id>_<secret>`): the secret is stored as its SHA-256 only.

use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect};

use super::entities::api_keys;
use super::{ApiKey, Conn, OrStore, R};

/// Keys listed per user at most.
pub(crate) const LIST_MAX: u64 = 1000;

/// Stores a new key.
pub(crate) async fn insert(db: &impl Conn, key: ApiKey) -> R<()> {
    api_keys::Entity::insert(key.into_active_model())
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// The key with this public id.
pub(crate) async fn get(db: &impl Conn, id: &str) -> R<Option<ApiKey>> {
    api_keys::Entity::find_by_id(id.to_string())
        .one(db.c())
        .await
        .db()
}

/// The user's keys, revoked ones included, newest first.
pub(crate) async fn of_user(db: &impl Conn, user_id: &str) -> R<Vec<ApiKey>> {
    api_keys::Entity::find()
        .filter(api_keys::Column::UserId.eq(user_id))
        .order_by_desc(api_keys::Column::CreatedAt)
        .order_by_desc(api_keys::Column::Id)
        .limit(LIST_MAX)
        .all(db.c())
        .await
        .db()
}

/// The number of the user's keys that are neither revoked nor expired.
pub(crate) async fn live_count(db: &impl Conn, user_id: &str, now: i64) -> R<u64> {
    use sea_orm::PaginatorTrait;
    api_keys::Entity::find()
        .filter(api_keys::Column::UserId.eq(user_id))
        .filter(api_keys::Column::RevokedAt.is_null())
        .filter(
            Condition::any()
                .add(api_keys::Column::ExpiresAt.is_null())
                .add(api_keys::Column::ExpiresAt.gt(now)),
        )
        .count(db.c())
        .await
        .db()
}

/// Revokes the user's key `id` if it is live; whether it was.
pub(crate) async fn revoke(db: &impl Conn, id: &str, user_id: &str, now: i64) -> R<bool> {
    let n = api_keys::Entity::update_many()
        .col_expr(api_keys::Column::RevokedAt, Expr::value(now))
        .filter(api_keys::Column::Id.eq(id))
        .filter(api_keys::Column::UserId.eq(user_id))
        .filter(api_keys::Column::RevokedAt.is_null())
        .exec(db.c())
        .await
        .db()?
        .rows_affected;
    // The liveness cache keeps recently seen keys too: drop them on every instance.
    db.sessions_changed().await;
    Ok(n > 0)
}

/// Records a use at `now` unless one was recorded since `since` (at most one write per key
/// per interval, whatever the concurrency).
pub(crate) async fn touch(db: &impl Conn, id: &str, now: i64, since: i64) -> R<()> {
    api_keys::Entity::update_many()
        .col_expr(api_keys::Column::LastUsedAt, Expr::value(now))
        .filter(api_keys::Column::Id.eq(id))
        .filter(
            Condition::any()
                .add(api_keys::Column::LastUsedAt.is_null())
                .add(api_keys::Column::LastUsedAt.lt(since)),
        )
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}
