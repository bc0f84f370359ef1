//! Challenge sessions of the state machine (VERIFY_EMAIL, MFA_REQUIRED, …).

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::OrStore;
use super::entities::challenges;
use super::{Challenge, Conn, R};

/// Stores a new challenge session.
pub(crate) async fn insert(db: &impl Conn, ch: Challenge) -> R<()> {
    challenges::Entity::insert(ch.into_active_model().reset_all())
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// A challenge by the hash of its session string; `lock` takes its row lock.
pub(crate) async fn get(db: &impl Conn, id_hash: &str, lock: bool) -> R<Option<Challenge>> {
    let mut q = challenges::Entity::find_by_id(id_hash.to_string());
    if lock {
        q = q.lock_exclusive();
    }
    q.one(db.c()).await.db()
}

/// Writes every column of a challenge back (under its row lock).
pub(crate) async fn save(db: &impl Conn, ch: &Challenge) -> R<()> {
    challenges::Entity::update(ch.clone().into_active_model().reset_all())
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// Ends the user's open challenges of one kind now (one MFA challenge at a time).
pub(crate) async fn expire_open(db: &impl Conn, user_id: &str, name: &str, now: i64) -> R<()> {
    challenges::Entity::update_many()
        .col_expr(challenges::Column::ExpiresAt, Expr::value(now))
        .filter(challenges::Column::UserId.eq(user_id))
        .filter(challenges::Column::Name.eq(name))
        .filter(challenges::Column::Completed.eq(false))
        .filter(challenges::Column::ExpiresAt.gt(now))
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// The user's open challenge of one kind whose code went to `destination` most recently,
/// created after `since`.
pub(crate) async fn latest_code(
    db: &impl Conn,
    user_id: &str,
    name: &str,
    destination: &str,
    since: i64,
) -> R<Option<Challenge>> {
    challenges::Entity::find()
        .filter(challenges::Column::UserId.eq(user_id))
        .filter(challenges::Column::Name.eq(name))
        .filter(challenges::Column::Completed.eq(false))
        .filter(challenges::Column::CodeHash.is_not_null())
        .filter(challenges::Column::Destination.eq(destination))
        .filter(challenges::Column::CreatedAt.gt(since))
        .order_by_desc(challenges::Column::LastSentAt)
        .one(db.c())
        .await
        .db()
}

/// The codes of the user's open challenges of one kind stop working.
pub(crate) async fn drop_codes(db: &impl Conn, user_id: &str, name: &str) -> R<()> {
    challenges::Entity::update_many()
        .col_expr(
            challenges::Column::CodeHash,
            Expr::value(Option::<String>::None),
        )
        .filter(challenges::Column::UserId.eq(user_id))
        .filter(challenges::Column::Name.eq(name))
        .filter(challenges::Column::Completed.eq(false))
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// The codes the user's challenges sent to `destination` stop working (an address that is
/// no longer theirs).
pub(crate) async fn drop_codes_to(db: &impl Conn, user_id: &str, destination: &str) -> R<()> {
    challenges::Entity::update_many()
        .col_expr(
            challenges::Column::CodeHash,
            Expr::value(Option::<String>::None),
        )
        .filter(challenges::Column::UserId.eq(user_id))
        .filter(challenges::Column::Destination.eq(destination))
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// Claims a resend: a compare-and-set on the last send, so that of a burst exactly one goes
/// on. Whether this caller won.
pub(crate) async fn claim_send(
    db: &impl Conn,
    ch: &Challenge,
    sends_in_window: i32,
    window_start: i64,
    now: i64,
) -> R<bool> {
    let mut claim = challenges::Entity::update_many()
        .col_expr(challenges::Column::LastSentAt, Expr::value(now))
        .col_expr(
            challenges::Column::SendsInWindow,
            Expr::value(sends_in_window),
        )
        .col_expr(
            challenges::Column::SendWindowStart,
            Expr::value(window_start),
        )
        .filter(challenges::Column::IdHash.eq(&ch.id_hash));
    claim = match ch.last_sent_at {
        Some(t) => claim.filter(challenges::Column::LastSentAt.eq(t)),
        None => claim.filter(challenges::Column::LastSentAt.is_null()),
    };
    Ok(claim.exec(db.c()).await.db()?.rows_affected > 0)
}

/// Sets where a challenge's codes go (a decoy remembers the address it pretends to use).
pub(crate) async fn set_destination(db: &impl Conn, id_hash: &str, destination: &str) -> R<()> {
    challenges::Entity::update_many()
        .col_expr(challenges::Column::Destination, Expr::value(destination))
        .filter(challenges::Column::IdHash.eq(id_hash))
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}
