//! One-time codes and links: email verification links, password reset codes and links,
//! email-change codes.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::OrStore;
use super::entities::verification_tokens;
use super::{Conn, R, VerificationToken};

/// Stores a new code or link token.
pub(crate) async fn insert(db: &impl Conn, t: VerificationToken) -> R<()> {
    verification_tokens::Entity::insert(t.into_active_model().reset_all())
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// Marks the user's unused tokens of one purpose used at `now`: they stop working.
pub(crate) async fn end_purpose(db: &impl Conn, user_id: &str, purpose: &str, now: i64) -> R<()> {
    verification_tokens::Entity::update_many()
        .col_expr(verification_tokens::Column::UsedAt, Expr::value(now))
        .filter(verification_tokens::Column::UserId.eq(user_id))
        .filter(verification_tokens::Column::Purpose.eq(purpose))
        .filter(verification_tokens::Column::UsedAt.is_null())
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// Marks the user's unused tokens of these purposes used at `now`: they stop working (a newer
/// one replaces them, or the channel they were sent to stopped being the user's).
pub(crate) async fn end_purposes(
    db: &impl Conn,
    user_id: &str,
    purposes: &[&str],
    now: i64,
) -> R<()> {
    verification_tokens::Entity::update_many()
        .col_expr(verification_tokens::Column::UsedAt, Expr::value(now))
        .filter(verification_tokens::Column::UserId.eq(user_id))
        .filter(verification_tokens::Column::Purpose.is_in(purposes.iter().copied()))
        .filter(verification_tokens::Column::UsedAt.is_null())
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// The user's newest unused token of a purpose (expired or not).
pub(crate) async fn latest_pending(
    db: &impl Conn,
    user_id: &str,
    purpose: &str,
) -> R<Option<VerificationToken>> {
    verification_tokens::Entity::find()
        .filter(verification_tokens::Column::UserId.eq(user_id))
        .filter(verification_tokens::Column::Purpose.eq(purpose))
        .filter(verification_tokens::Column::UsedAt.is_null())
        .order_by_desc(verification_tokens::Column::CreatedAt)
        .one(db.c())
        .await
        .db()
}

/// A token of a purpose by its hash (used or not); `lock` takes its row lock until the
/// transaction ends (one use of a link, whatever the concurrency).
pub(crate) async fn by_hash(
    db: &impl Conn,
    purpose: &str,
    hash: &str,
    lock: bool,
) -> R<Option<VerificationToken>> {
    let mut q = verification_tokens::Entity::find()
        .filter(verification_tokens::Column::TokenHash.eq(hash))
        .filter(verification_tokens::Column::Purpose.eq(purpose));
    if lock {
        q = q.lock_exclusive();
    }
    q.one(db.c()).await.db()
}

/// A token by id, taking its row lock until the transaction ends.
pub(crate) async fn get_for_update(db: &impl Conn, id: &str) -> R<Option<VerificationToken>> {
    verification_tokens::Entity::find_by_id(id.to_string())
        .lock_exclusive()
        .one(db.c())
        .await
        .db()
}

/// Marks an unused token used at `now`; whether it was still unused (so exactly one racing
/// request wins it).
pub(crate) async fn mark_used(db: &impl Conn, id: &str, now: i64) -> R<bool> {
    let n = verification_tokens::Entity::update_many()
        .col_expr(verification_tokens::Column::UsedAt, Expr::value(now))
        .filter(verification_tokens::Column::Id.eq(id))
        .filter(verification_tokens::Column::UsedAt.is_null())
        .exec(db.c())
        .await
        .db()?
        .rows_affected;
    Ok(n > 0)
}

/// Reserves one of a stored code's `max` attempts before it is compared: a compare-and-set on
/// the row's counter, so each caller learns its own attempt number and at most `max` callers
/// ever get one. `None`: the row is gone or its attempts are spent.
pub(crate) async fn reserve_attempt(db: &impl Conn, id: &str, max: i32) -> R<Option<i32>> {
    loop {
        let Some(row) = verification_tokens::Entity::find_by_id(id.to_string())
            .one(db.c())
            .await
            .db()?
        else {
            return Ok(None);
        };
        if row.attempts >= max {
            return Ok(None);
        }
        let won = verification_tokens::Entity::update_many()
            .col_expr(
                verification_tokens::Column::Attempts,
                Expr::value(row.attempts + 1),
            )
            .filter(verification_tokens::Column::Id.eq(id))
            .filter(verification_tokens::Column::Attempts.eq(row.attempts))
            .exec(db.c())
            .await
            .db()?
            .rows_affected;
        if won == 1 {
            return Ok(Some(row.attempts + 1));
        }
    }
}
