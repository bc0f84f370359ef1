//! Social login identities (schema v11): which account at which provider names which user.
#![cfg_attr(not(feature = "social"), allow(dead_code))]

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect};

use super::entities::social_identities;
use super::{Conn, OrStore, R, SocialIdentity, StoreError};

/// Identities listed per user at most.
const LIST_MAX: u64 = 100;

/// The identity `(provider, subject)`, if linked.
pub(crate) async fn get(
    db: &impl Conn,
    provider: &str,
    subject: &str,
) -> R<Option<SocialIdentity>> {
    social_identities::Entity::find_by_id((provider.to_string(), subject.to_string()))
        .one(db.c())
        .await
        .db()
}

/// Links an identity; `Conflict("social_identity")` when it is linked already (to anyone).
pub(crate) async fn insert(db: &impl Conn, row: SocialIdentity) -> R<()> {
    match social_identities::Entity::insert(row.into_active_model())
        .exec(db.c())
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if super::is_unique_violation(&e) => Err(StoreError::Conflict("social_identity")),
        Err(e) => Err(super::db_error(e)),
    }
}

/// The user's identities, oldest link first.
pub(crate) async fn of_user(db: &impl Conn, user_id: &str) -> R<Vec<SocialIdentity>> {
    social_identities::Entity::find()
        .filter(social_identities::Column::UserId.eq(user_id))
        .order_by_asc(social_identities::Column::LinkedAt)
        .order_by_asc(social_identities::Column::Provider)
        .limit(LIST_MAX)
        .all(db.c())
        .await
        .db()
}

/// Records a sign-in through the identity (and the email the provider asserted this time).
pub(crate) async fn touch(
    db: &impl Conn,
    provider: &str,
    subject: &str,
    email: Option<&str>,
    now: i64,
) -> R<()> {
    let mut q = social_identities::Entity::update_many()
        .col_expr(social_identities::Column::LastUsedAt, Expr::value(now));
    if let Some(e) = email {
        q = q.col_expr(social_identities::Column::Email, Expr::value(e));
    }
    q.filter(social_identities::Column::Provider.eq(provider))
        .filter(social_identities::Column::Subject.eq(subject))
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// Unlinks every identity of the user at `provider`; how many went.
pub(crate) async fn unlink(db: &impl Conn, user_id: &str, provider: &str) -> R<u64> {
    Ok(social_identities::Entity::delete_many()
        .filter(social_identities::Column::UserId.eq(user_id))
        .filter(social_identities::Column::Provider.eq(provider))
        .exec(db.c())
        .await
        .db()?
        .rows_affected)
}
