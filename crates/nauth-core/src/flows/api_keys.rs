//! `/api-keys` (docs/api.md §3.5): a user's API keys. A key is `nk_<id>_<secret>`: a public
//! id of 16 hex digits (the row's key) and 32 CSPRNG bytes, base64url, stored as their SHA-256
//! only and shown once. Keys authenticate the app's routes ([`crate::guard`]); nauth's own
//! account routes, these included, refuse them (`403 FORBIDDEN`).

use serde_json::json;

use super::{Ctx, Outcome, body};
use crate::clock::iso8601;
use crate::codes;
use crate::error::{AuthError, AuthResult};
use crate::events::Event;
use crate::input::Input;
use crate::store::{self, ApiKey};

/// Hex digits of a key's public id.
const ID_LEN: usize = 16;
/// Characters of a key's secret (32 bytes, base64url without padding).
const SECRET_LEN: usize = 43;
/// Live (neither revoked nor expired) keys a user may hold.
pub(crate) const LIVE_MAX: u64 = 100;

/// Splits a presented key into its public id and secret; `None` unless it has the exact
/// shape of one nauth issues.
pub(crate) fn parse(raw: &str) -> Option<(&str, &str)> {
    let (id, secret) = raw
        .strip_prefix(crate::guard::API_KEY_PREFIX)?
        .split_at_checked(ID_LEN)?;
    let secret = secret.strip_prefix('_')?;
    let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    let b64 = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    (id.bytes().all(hex) && secret.len() == SECRET_LEN && secret.bytes().all(b64))
        .then_some((id, secret))
}

/// Whether a path segment can be a key's public id.
pub(crate) fn is_id(s: &str) -> bool {
    s.len() == ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The stored scope list.
pub(crate) fn split_scopes(stored: &str) -> Vec<String> {
    stored
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A key as `GET /api-keys` lists it (never its secret).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ApiKey)]
pub(crate) struct KeyBody {
    id: String,
    name: String,
    scopes: Vec<String>,
    prefix: String,
    last_four: String,
    created_at: String,
    expires_at: Option<String>,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

impl From<&ApiKey> for KeyBody {
    fn from(k: &ApiKey) -> Self {
        KeyBody {
            id: k.id.clone(),
            name: k.name.clone(),
            scopes: split_scopes(&k.scopes),
            prefix: format!("{}{}", crate::guard::API_KEY_PREFIX, k.id),
            last_four: k.last_four.clone(),
            created_at: iso8601(k.created_at),
            expires_at: k.expires_at.map(iso8601),
            last_used_at: k.last_used_at.map(iso8601),
            revoked_at: k.revoked_at.map(iso8601),
        }
    }
}

/// `201` of `POST /api-keys`: the key, shown this once.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ApiKeyCreated)]
pub(crate) struct CreatedBody {
    id: String,
    name: String,
    scopes: Vec<String>,
    prefix: String,
    key: String,
    created_at: String,
    expires_at: Option<String>,
}

/// `POST /api-keys`: `name`, `scopes` (each one of `api_keys.scopes`), `expiresAt?`, and a
/// fresh proof, `password` or `code` (a current TOTP or backup code): a key outlives the
/// access token, so a stolen token alone must not mint one.
pub(crate) async fn create(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let p = ctx.principal()?;
    let name = input.text_req("name", 100);
    let scopes = input.strings("scopes", 32, 64);
    let expires_at = input.time("expiresAt");
    let password = input.text("password", crate::input::PASSWORD_HARD_MAX);
    let code = input.text("code", 16);
    if password.is_none() && code.is_none() {
        input.error(
            "password",
            "password or code (a current second factor) is required",
        );
    }
    if scopes.is_empty() && input.has("scopes") {
        input.error("scopes", "must hold at least one scope");
    }
    if expires_at.is_some_and(|t| t <= ctx.now) {
        input.error("expiresAt", "must be in the future");
    }
    input.finish()?;
    let allowed = &ctx.cfg().api_keys.scopes;
    if scopes.iter().any(|s| !allowed.contains(s)) {
        return Err(AuthError::ApiKeyScopeInvalid);
    }
    let user = super::named_user(&ctx.inner.store, &p.sub, AuthError::SessionNotFound).await?;
    super::mfa::step_up(ctx, &user, password, code).await?;
    let id = codes::random_hex::<{ ID_LEN / 2 }>();
    let secret = codes::random_token();
    let key = ApiKey {
        id: id.clone(),
        user_id: p.sub.clone(),
        name,
        scopes: scopes.join(" "),
        secret_hash: codes::sha256_hex(&secret),
        last_four: secret[SECRET_LEN - 4..].to_string(),
        created_at: ctx.now,
        expires_at,
        last_used_at: None,
        revoked_at: None,
    };
    // The user's row lock serialises concurrent creations, so the cap holds under bursts.
    transaction!(ctx, |tx| {
        store::users::lock(tx, &p.sub)
            .await?
            .ok_or(AuthError::SessionNotFound)?;
        if store::api_keys::live_count(tx, &p.sub, ctx.now).await? >= LIVE_MAX {
            return Err(AuthError::field(
                "name",
                &format!("at most {LIVE_MAX} live API keys per account; revoke one first"),
            ));
        }
        store::api_keys::insert(tx, key.clone()).await?;
        ctx.audit_in(
            tx,
            Some(&p.sub),
            Event::ApiKeyCreated,
            json!({"apiKeyId": key.id, "scopes": scopes}),
        )
        .await;
        Ok(())
    })?;
    let created = CreatedBody {
        prefix: format!("{}{id}", crate::guard::API_KEY_PREFIX),
        key: format!("{}{id}_{secret}", crate::guard::API_KEY_PREFIX),
        id,
        name: key.name,
        scopes,
        created_at: iso8601(key.created_at),
        expires_at: key.expires_at.map(iso8601),
    };
    Ok(Outcome::Json(201, body(&created)))
}

/// `GET /api-keys`: the user's keys, revoked ones included, newest first.
pub(crate) async fn list(ctx: &Ctx<'_>) -> AuthResult<Outcome> {
    let p = ctx.principal()?;
    let keys = store::api_keys::of_user(&ctx.inner.store, &p.sub).await?;
    let keys: Vec<KeyBody> = keys.iter().map(KeyBody::from).collect();
    Ok(Outcome::Json(200, json!({ "apiKeys": body(&keys) })))
}

/// `DELETE /api-keys/{id}`: revokes one of the user's live keys at once.
pub(crate) async fn revoke(ctx: &Ctx<'_>, id: &str) -> AuthResult<Outcome> {
    let p = ctx.principal()?;
    if !store::api_keys::revoke(&ctx.inner.store, id, &p.sub, ctx.now).await? {
        return Err(AuthError::NotFound);
    }
    ctx.audit_later(
        Some(&p.sub),
        Event::ApiKeyRevoked,
        true,
        json!({"apiKeyId": id}),
    );
    Ok(Outcome::Json(200, json!({"success": true})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_the_shape_nauth_issues() {
        let secret = "A".repeat(43);
        let key = format!("nk_0123456789abcdef_{secret}");
        assert_eq!(parse(&key), Some(("0123456789abcdef", secret.as_str())));
        let secret_with_underscore = format!("ab_{}", "c".repeat(40));
        let key = format!("nk_0123456789abcdef_{secret_with_underscore}");
        assert_eq!(
            parse(&key).map(|(_, s)| s),
            Some(secret_with_underscore.as_str())
        );
        for bad in [
            String::new(),
            "nk_".into(),
            format!("nk_0123456789ABCDEF_{secret}"),
            format!("nk_0123456789abcde_{secret}"),
            format!("nk_0123456789abcdef{secret}"),
            format!("nk_0123456789abcdef_{}", &secret[1..]),
            format!("nk_0123456789abcdef_{secret}x"),
            format!("nk_0123456789abcdef_{}!", &secret[1..]),
            format!("xx_0123456789abcdef_{secret}"),
            "nk_é123456789abcdef_".into(),
        ] {
            assert_eq!(parse(&bad), None, "{bad}");
        }
        assert!(is_id("0123456789abcdef") && !is_id("0123456789abcdeg"));
        assert_eq!(split_scopes("read write"), ["read", "write"]);
        assert!(split_scopes("").is_empty());
    }
}
