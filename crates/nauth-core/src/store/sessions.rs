//! Sessions and their refresh tokens.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};

use super::OrStore;
use super::entities::{refresh_tokens, sessions};
use super::{Conn, R, RefreshToken, Session};
use crate::cache::LiveSession;

/// The state of a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshState {
    /// The session's live token.
    Current,
    /// Its holder exchanged it: presenting it again is reuse (after the interval).
    Rotated,
    /// A racing exchange replaced it: presenting it is merely invalid.
    Discarded,
}

impl RefreshState {
    fn code(self) -> i16 {
        match self {
            RefreshState::Current => refresh_tokens::CURRENT,
            RefreshState::Rotated => refresh_tokens::ROTATED,
            RefreshState::Discarded => refresh_tokens::DISCARDED,
        }
    }

    /// The state of a stored row.
    pub(crate) fn of(row: &RefreshToken) -> Option<RefreshState> {
        match row.state {
            refresh_tokens::CURRENT => Some(RefreshState::Current),
            refresh_tokens::ROTATED => Some(RefreshState::Rotated),
            refresh_tokens::DISCARDED => Some(RefreshState::Discarded),
            _ => None,
        }
    }
}

/// Stores a new session with its first refresh token.
pub(crate) async fn create(db: &impl Conn, s: Session, refresh_hash: String) -> R<()> {
    let (id, now) = (s.id.clone(), s.created_at);
    sessions::Entity::insert(s.into_active_model().reset_all())
        .exec(db.c())
        .await
        .db()?;
    add_refresh(db, &id, refresh_hash, now).await
}

/// Adds the session's new current refresh token.
pub(crate) async fn add_refresh(db: &impl Conn, session_id: &str, hash: String, now: i64) -> R<()> {
    refresh_tokens::Entity::insert(refresh_tokens::ActiveModel {
        token_hash: sea_orm::Set(hash),
        session_id: sea_orm::Set(session_id.to_string()),
        state: sea_orm::Set(refresh_tokens::CURRENT),
        created_at: sea_orm::Set(now),
        rotated_at: sea_orm::Set(None),
    })
    .exec(db.c())
    .await
    .db()?;
    Ok(())
}

/// A refresh token by its hash.
pub(crate) async fn refresh_token(db: &impl Conn, hash: &str) -> R<Option<RefreshToken>> {
    refresh_tokens::Entity::find_by_id(hash.to_string())
        .one(db.c())
        .await
        .db()
}

/// Marks a refresh token rotated (its holder exchanged it) at `now`.
pub(crate) async fn mark_rotated(db: &impl Conn, hash: &str, now: i64) -> R<()> {
    refresh_tokens::Entity::update_many()
        .col_expr(
            refresh_tokens::Column::State,
            Expr::value(RefreshState::Rotated.code()),
        )
        .col_expr(refresh_tokens::Column::RotatedAt, Expr::value(now))
        .filter(refresh_tokens::Column::TokenHash.eq(hash))
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// Discards the session's current refresh token (a racing exchange replaces it).
pub(crate) async fn discard_current(db: &impl Conn, session_id: &str) -> R<()> {
    refresh_tokens::Entity::update_many()
        .col_expr(
            refresh_tokens::Column::State,
            Expr::value(RefreshState::Discarded.code()),
        )
        .filter(refresh_tokens::Column::SessionId.eq(session_id))
        .filter(refresh_tokens::Column::State.eq(RefreshState::Current.code()))
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// A session by id; `lock` takes its row lock (serialises every exchange of one family).
pub(crate) async fn get(db: &impl Conn, id: &str, lock: bool) -> R<Option<Session>> {
    let mut q = sessions::Entity::find_by_id(id.to_string());
    if lock {
        q = q.lock_exclusive();
    }
    q.one(db.c()).await.db()
}

/// Points the session at a new access token and a new sliding expiry.
pub(crate) async fn rotate(
    db: &impl Conn,
    id: &str,
    access_jti: &str,
    expires_at: i64,
    now: i64,
) -> R<()> {
    sessions::Entity::update_many()
        .col_expr(sessions::Column::AccessJti, Expr::value(access_jti))
        .col_expr(sessions::Column::ExpiresAt, Expr::value(expires_at))
        .col_expr(sessions::Column::LastActivityAt, Expr::value(now))
        .filter(sessions::Column::Id.eq(id))
        .exec(db.c())
        .await
        .db()?;
    db.sessions_changed().await;
    Ok(())
}

/// Revokes one live session; whether it was live.
pub(crate) async fn revoke(db: &impl Conn, id: &str, now: i64) -> R<bool> {
    let n = sessions::Entity::update_many()
        .col_expr(sessions::Column::RevokedAt, Expr::value(now))
        .filter(sessions::Column::Id.eq(id))
        .filter(sessions::Column::RevokedAt.is_null())
        .exec(db.c())
        .await
        .db()?
        .rows_affected;
    db.sessions_changed().await;
    Ok(n > 0)
}

/// Revokes the user's live sessions, except one; returns how many.
pub(crate) async fn revoke_all(
    db: &impl Conn,
    user_id: &str,
    except: Option<&str>,
    now: i64,
) -> R<u64> {
    let mut q = sessions::Entity::update_many()
        .col_expr(sessions::Column::RevokedAt, Expr::value(now))
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::RevokedAt.is_null());
    if let Some(keep) = except {
        q = q.filter(sessions::Column::Id.ne(keep));
    }
    let n = q.exec(db.c()).await.db()?.rows_affected;
    db.sessions_changed().await;
    Ok(n)
}

/// The user's live, unexpired sessions, newest first (at most 1000).
pub(crate) async fn list_live(db: &impl Conn, user_id: &str, now: i64) -> R<Vec<Session>> {
    sessions::Entity::find()
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .filter(sessions::Column::ExpiresAt.gt(now))
        .order_by_desc(sessions::Column::CreatedAt)
        .limit(1000)
        .all(db.c())
        .await
        .db()
}

/// The columns the per-request session check needs, read with one fixed statement.
pub(crate) async fn live(db: &impl Conn, id: &str) -> R<Option<LiveSession>> {
    let backend = db.backend();
    // The user's roles and state come along (one primary-key join): under `database`
    // validation they are the ones the database holds now, not the ones in the token.
    let sql = if backend == sea_orm::DbBackend::Postgres {
        "SELECT s.user_id, s.access_jti, s.auth_method, s.expires_at, s.absolute_expires_at, \
         u.roles FROM nauth_sessions s JOIN nauth_users u ON u.id = s.user_id \
         WHERE s.id = $1 AND s.revoked_at IS NULL AND u.disabled = FALSE"
    } else {
        "SELECT s.user_id, s.access_jti, s.auth_method, s.expires_at, s.absolute_expires_at, \
         u.roles FROM nauth_sessions s JOIN nauth_users u ON u.id = s.user_id \
         WHERE s.id = ? AND s.revoked_at IS NULL AND u.disabled = FALSE"
    };
    let stmt = Statement::from_sql_and_values(backend, sql, [id.into()]);
    let Some(r) = db.c().query_one_raw(stmt).await.db()? else {
        return Ok(None);
    };
    let roles: String = r.try_get("", "roles").db()?;
    Ok(Some(LiveSession {
        user_id: r.try_get("", "user_id").db()?,
        access_jti: r.try_get("", "access_jti").db()?,
        auth_method: r.try_get("", "auth_method").db()?,
        expires_at: r.try_get("", "expires_at").db()?,
        absolute_expires_at: r.try_get("", "absolute_expires_at").db()?,
        roles: roles
            .split(',')
            .filter(|r| !r.is_empty())
            .map(str::to_string)
            .collect(),
        scopes: None,
    }))
}

/// Discards every refresh token of a session, whatever its state (a password change hands
/// the session a new pair; none of the old tokens may work again, nor count as reuse).
pub(crate) async fn discard_all_refresh(db: &impl Conn, session_id: &str) -> R<()> {
    refresh_tokens::Entity::update_many()
        .col_expr(
            refresh_tokens::Column::State,
            Expr::value(RefreshState::Discarded.code()),
        )
        .filter(refresh_tokens::Column::SessionId.eq(session_id))
        .exec(db.c())
        .await
        .db()?;
    Ok(())
}

/// Points a session at a new access token (its expiry unchanged).
pub(crate) async fn set_access_jti(db: &impl Conn, session_id: &str, jti: &str) -> R<()> {
    sessions::Entity::update_many()
        .col_expr(sessions::Column::AccessJti, Expr::value(jti))
        .filter(sessions::Column::Id.eq(session_id))
        .exec(db.c())
        .await
        .db()?;
    db.sessions_changed().await;
    Ok(())
}
