//! Users, their password history, and the erasure of everything a user owns.

use sea_orm::sea_query::{Expr, ExprTrait, SimpleExpr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use super::OrStore;
use super::entities::{
    api_keys, audit_log, backup_codes, challenges, mfa_devices, password_history, refresh_tokens,
    sessions, social_identities, trusted_devices, users, verification_tokens,
};
use super::{Conn, R, User, conflict};

/// The unique columns of the users table, in the order a conflict is reported.
const UNIQUE: &[&str] = &["email", "username", "phone"];

/// How a user is looked up.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lookup<'a> {
    /// By email (already normalised).
    Email(&'a str),
    /// By username.
    Username(&'a str),
    /// By a *verified* phone: an unverified one is anyone's claim and names no account.
    VerifiedPhone(&'a str),
    /// By phone, verified or not (uniqueness checks).
    AnyPhone(&'a str),
}

/// Finds a user.
pub(crate) async fn find(db: &impl Conn, by: Lookup<'_>) -> R<Option<User>> {
    let q = match by {
        Lookup::Email(e) => users::Entity::find().filter(users::Column::Email.eq(e)),
        Lookup::Username(u) => users::Entity::find().filter(users::Column::Username.eq(u)),
        Lookup::VerifiedPhone(p) => users::Entity::find()
            .filter(users::Column::Phone.eq(p))
            .filter(users::Column::IsPhoneVerified.eq(true)),
        Lookup::AnyPhone(p) => users::Entity::find().filter(users::Column::Phone.eq(p)),
    };
    q.one(db.c()).await.db()
}

/// Whether another user than `except` holds this phone.
pub(crate) async fn phone_taken(db: &impl Conn, phone: &str, except: &str) -> R<bool> {
    Ok(users::Entity::find()
        .filter(users::Column::Phone.eq(phone))
        .filter(users::Column::Id.ne(except))
        .one(db.c())
        .await
        .db()?
        .is_some())
}

/// A user by id.
pub(crate) async fn get(db: &impl Conn, id: &str) -> R<Option<User>> {
    users::Entity::find_by_id(id.to_string())
        .one(db.c())
        .await
        .db()
}

/// A user by id, taking its row lock until the transaction ends (serialises the writes of
/// one account).
pub(crate) async fn lock(db: &impl Conn, id: &str) -> R<Option<User>> {
    users::Entity::find_by_id(id.to_string())
        .lock_exclusive()
        .one(db.c())
        .await
        .db()
}

/// Stores a new user; a taken unique value is `Conflict("email" | "username" | "phone")`.
pub(crate) async fn insert(db: &impl Conn, user: User) -> R<()> {
    users::Entity::insert(user.into_active_model().reset_all())
        .exec(db.c())
        .await
        .map_err(|e| conflict(e, UNIQUE))?;
    Ok(())
}

/// The columns a change sets; `None` leaves a column as it is.
#[derive(Debug, Default, Clone)]
pub(crate) struct UserPatch {
    pub email: Option<String>,
    pub username: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub metadata: Option<Option<String>>,
    pub password_hash: Option<String>,
    pub password_changed_at: Option<i64>,
    pub must_change_password: Option<bool>,
    pub is_email_verified: Option<bool>,
    pub is_phone_verified: Option<bool>,
    pub mfa_enabled: Option<bool>,
    pub mfa_exempt: Option<bool>,
    pub locale: Option<Option<String>>,
    /// Comma-separated.
    pub roles: Option<String>,
    pub disabled: Option<bool>,
    /// Also sets `updated_at`.
    pub updated_at: Option<i64>,
}

/// Applies a change to one user; a taken unique value is a `Conflict`. Whether the user
/// exists.
pub(crate) async fn update(db: &impl Conn, id: &str, p: UserPatch) -> R<bool> {
    let mut cols: Vec<(users::Column, SimpleExpr)> = Vec::new();
    let mut set = |c: users::Column, v: Option<sea_orm::Value>| {
        if let Some(v) = v {
            cols.push((c, Expr::value(v)));
        }
    };
    use users::Column as C;
    set(C::Email, p.email.map(Into::into));
    set(C::Username, p.username.map(Into::into));
    set(C::Phone, p.phone.map(Into::into));
    set(C::FirstName, p.first_name.map(Into::into));
    set(C::LastName, p.last_name.map(Into::into));
    set(C::Metadata, p.metadata.map(Into::into));
    set(C::PasswordHash, p.password_hash.map(Into::into));
    set(C::PasswordChangedAt, p.password_changed_at.map(Into::into));
    set(
        C::MustChangePassword,
        p.must_change_password.map(Into::into),
    );
    set(C::IsEmailVerified, p.is_email_verified.map(Into::into));
    set(C::IsPhoneVerified, p.is_phone_verified.map(Into::into));
    set(C::MfaEnabled, p.mfa_enabled.map(Into::into));
    set(C::MfaExempt, p.mfa_exempt.map(Into::into));
    set(C::Locale, p.locale.map(Into::into));
    set(C::Roles, p.roles.map(Into::into));
    set(C::Disabled, p.disabled.map(Into::into));
    set(C::UpdatedAt, p.updated_at.map(Into::into));
    if cols.is_empty() {
        return Ok(get(db, id).await.db()?.is_some());
    }
    let mut q = users::Entity::update_many().filter(users::Column::Id.eq(id));
    for (c, v) in cols {
        q = q.col_expr(c, v);
    }
    let n = q
        .exec(db.c())
        .await
        .map_err(|e| conflict(e, UNIQUE))?
        .rows_affected;
    Ok(n > 0)
}

/// Keeps an old password hash in the user's history.
pub(crate) async fn add_history(db: &impl Conn, user_id: &str, hash: &str, now: i64) -> R<()> {
    password_history::Entity::insert(password_history::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        user_id: Set(user_id.to_string()),
        password_hash: Set(hash.to_string()),
        created_at: Set(now),
    })
    .exec(db.c())
    .await
    .db()?;
    Ok(())
}

/// The user's latest `n` previous password hashes, newest first.
pub(crate) async fn history(db: &impl Conn, user_id: &str, n: u64) -> R<Vec<String>> {
    Ok(password_history::Entity::find()
        .filter(password_history::Column::UserId.eq(user_id))
        .order_by_desc(password_history::Column::CreatedAt)
        .limit(n)
        .all(db.c())
        .await
        .db()?
        .into_iter()
        .map(|h| h.password_hash)
        .collect())
}

/// Deletes the user and every row that names them: sessions with their refresh tokens,
/// challenges, codes and links, password history, audit rows, MFA factors, backup codes,
/// trusted devices, API keys, passkeys and pending passkey ceremonies, and social login
/// identities. Run it in one transaction.
pub(crate) async fn erase(db: &impl Conn, uid: &str) -> R<()> {
    let c = db.c();
    let sids: Vec<String> = sessions::Entity::find()
        .select_only()
        .column(sessions::Column::Id)
        .filter(sessions::Column::UserId.eq(uid))
        .into_tuple()
        .all(c)
        .await
        .db()?;
    for chunk in sids.chunks(500) {
        refresh_tokens::Entity::delete_many()
            .filter(refresh_tokens::Column::SessionId.is_in(chunk.iter().cloned()))
            .exec(c)
            .await
            .db()?;
    }
    sessions::Entity::delete_many()
        .filter(sessions::Column::UserId.eq(uid))
        .exec(c)
        .await
        .db()?;
    db.sessions_changed().await;
    challenges::Entity::delete_many()
        .filter(challenges::Column::UserId.eq(uid))
        .exec(c)
        .await
        .db()?;
    verification_tokens::Entity::delete_many()
        .filter(verification_tokens::Column::UserId.eq(uid))
        .exec(c)
        .await
        .db()?;
    password_history::Entity::delete_many()
        .filter(password_history::Column::UserId.eq(uid))
        .exec(c)
        .await
        .db()?;
    audit_log::Entity::delete_many()
        .filter(audit_log::Column::UserId.eq(uid))
        .exec(c)
        .await
        .db()?;
    mfa_devices::Entity::delete_many()
        .filter(mfa_devices::Column::UserId.eq(uid))
        .exec(c)
        .await
        .db()?;
    backup_codes::Entity::delete_many()
        .filter(backup_codes::Column::UserId.eq(uid))
        .exec(c)
        .await
        .db()?;
    trusted_devices::Entity::delete_many()
        .filter(trusted_devices::Column::UserId.eq(uid))
        .exec(c)
        .await
        .db()?;
    api_keys::Entity::delete_many()
        .filter(api_keys::Column::UserId.eq(uid))
        .exec(c)
        .await
        .db()?;
    super::passkeys::erase_user(db, uid).await?;
    social_identities::Entity::delete_many()
        .filter(social_identities::Column::UserId.eq(uid))
        .exec(c)
        .await
        .db()?;
    users::Entity::delete_by_id(uid.to_string())
        .exec(c)
        .await
        .db()?;
    Ok(())
}

/// How the admin list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserOrder {
    CreatedAsc,
    CreatedDesc,
    EmailAsc,
    EmailDesc,
}

/// What the admin list keeps.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserFilter {
    /// Part of the email (case as stored: emails are normalised to lower case).
    pub email: Option<String>,
    /// One role the user holds.
    pub role: Option<String>,
    /// Disabled (`true`) or enabled (`false`) accounts.
    pub disabled: Option<bool>,
}

/// One page of users for the admin API, and how many match in all.
pub(crate) async fn page(
    db: &impl Conn,
    filter: &UserFilter,
    order: UserOrder,
    offset: u64,
    limit: u64,
) -> R<(Vec<User>, u64)> {
    use sea_orm::sea_query::Condition;
    use sea_orm::{PaginatorTrait, QueryOrder, QuerySelect};
    // LIKE patterns take the value literally.
    let literal = |v: &str| {
        v.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    };
    let mut cond = Condition::all();
    if let Some(e) = &filter.email {
        cond = cond.add(
            Expr::col(users::Column::Email)
                .like(sea_orm::sea_query::LikeExpr::new(format!("%{}%", literal(e))).escape('\\')),
        );
    }
    if let Some(r) = &filter.role {
        // `roles` is comma-separated: the role alone, first, last or in between.
        let like = |p: String| {
            Expr::col(users::Column::Roles).like(sea_orm::sea_query::LikeExpr::new(p).escape('\\'))
        };
        let r = literal(r);
        cond = cond.add(
            Condition::any()
                .add(users::Column::Roles.eq(filter.role.clone()))
                .add(like(format!("{r},%")))
                .add(like(format!("%,{r}")))
                .add(like(format!("%,{r},%"))),
        );
    }
    if let Some(d) = filter.disabled {
        cond = cond.add(users::Column::Disabled.eq(d));
    }
    let total = users::Entity::find()
        .filter(cond.clone())
        .count(db.c())
        .await
        .db()?;
    let q = users::Entity::find().filter(cond);
    let q = match order {
        UserOrder::CreatedAsc => q
            .order_by_asc(users::Column::CreatedAt)
            .order_by_asc(users::Column::Id),
        UserOrder::CreatedDesc => q
            .order_by_desc(users::Column::CreatedAt)
            .order_by_desc(users::Column::Id),
        UserOrder::EmailAsc => q.order_by_asc(users::Column::Email),
        UserOrder::EmailDesc => q.order_by_desc(users::Column::Email),
    };
    let rows = q.offset(offset).limit(limit).all(db.c()).await.db()?;
    Ok((rows, total))
}
