//! The signing keys of RS256/EdDSA access tokens (`nauth_signing_keys`): a chain ordered by a
//! unique `seq`, so that instances adding a key at once cannot both win.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder};

use super::entities::signing_keys;
use super::{Conn, OrStore, R, SigningKeyRow, is_unique_violation};

/// Every key, oldest first.
pub(crate) async fn all(db: &impl Conn) -> R<Vec<SigningKeyRow>> {
    signing_keys::Entity::find()
        .order_by_asc(signing_keys::Column::Seq)
        .all(db.c())
        .await
        .db()
}

/// Adds a key; `false` when its `seq` (or kid) is already taken: another instance added a
/// key first.
pub(crate) async fn insert(db: &impl Conn, row: SigningKeyRow) -> R<bool> {
    match signing_keys::Entity::insert(row.into_active_model())
        .exec(db.c())
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e).db(),
    }
}

/// Retires every live key older than `seq` at `now`. By `seq`, not "all but mine": of two
/// rotations racing, the later key is never retired by the earlier one.
pub(crate) async fn retire_before(db: &impl Conn, seq: i64, now: i64) -> R<()> {
    signing_keys::Entity::update_many()
        .col_expr(signing_keys::Column::RetiredAt, Expr::value(now))
        .filter(signing_keys::Column::Seq.lt(seq))
        .filter(signing_keys::Column::RetiredAt.is_null())
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// Makes `kid` the live key again (a key file put back) and retires every other live key.
pub(crate) async fn reinstate(db: &impl Conn, kid: &str, now: i64) -> R<()> {
    signing_keys::Entity::update_many()
        .col_expr(signing_keys::Column::RetiredAt, Expr::value(now))
        .filter(signing_keys::Column::Kid.ne(kid))
        .filter(signing_keys::Column::RetiredAt.is_null())
        .exec(db.c())
        .await
        .db()?;
    signing_keys::Entity::update_many()
        .col_expr(
            signing_keys::Column::RetiredAt,
            Expr::value(Option::<i64>::None),
        )
        .filter(signing_keys::Column::Kid.eq(kid))
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// Deletes the keys retired at or before `cutoff`; how many.
pub(crate) async fn delete_retired(db: &impl Conn, cutoff: i64) -> R<u64> {
    Ok(signing_keys::Entity::delete_many()
        .filter(signing_keys::Column::RetiredAt.is_not_null())
        .filter(signing_keys::Column::RetiredAt.lte(cutoff))
        .exec(db.c())
        .await
        .db()?
        .rows_affected)
}
