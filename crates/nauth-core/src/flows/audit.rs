//! `GET /audit/history` (docs/api.md §3.7): the signed-in user's own audit rows, newest first.

use serde_json::{Value, json};

use super::{Ctx, Outcome, body};
use crate::clock::iso8601;
use crate::error::{AuthError, AuthResult};
use crate::store;

/// Rows per page at most, and by default.
const LIMIT_MAX: u64 = 100;
const LIMIT_DEFAULT: u64 = 20;
/// Pages past this are refused (the offset stays small for every database).
const PAGE_MAX: u64 = 100_000;

/// One audit row as the history (without `sub`) and the admin query (with it) show it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AuditEntry)]
pub(crate) struct EntryBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    event_type: String,
    event_status: String,
    ip_address: Option<String>,
    user_agent: Option<String>,
    created_at: String,
    details: Value,
}

impl EntryBody {
    /// The row's body; `with_sub` keeps whose row it is.
    pub(crate) fn of(r: store::audit::AuditEntry, with_sub: bool) -> Self {
        EntryBody {
            sub: r.user_id.filter(|_| with_sub),
            event_type: r.event_type,
            event_status: r.event_status,
            ip_address: r.ip_address,
            user_agent: r.user_agent,
            created_at: iso8601(r.created_at),
            details: serde_json::from_str(&r.details).unwrap_or_else(|_| json!({})),
        }
    }
}

/// A whole number query parameter in `1..=max`, or its default when absent.
pub(crate) fn page_param(ctx: &Ctx<'_>, name: &str, default: u64, max: u64) -> AuthResult<u64> {
    match ctx.req.query_param(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                AuthError::field(name, &format!("must be a whole number from 1 to {max}"))
            }),
    }
}

/// `GET /audit/history?page=&limit=`: `{ data, total, page, limit }`.
pub(crate) async fn history(ctx: &Ctx<'_>) -> AuthResult<Outcome> {
    let p = ctx.principal()?;
    let page = page_param(ctx, "page", 1, PAGE_MAX)?;
    let limit = page_param(ctx, "limit", LIMIT_DEFAULT, LIMIT_MAX)?;
    let (rows, total) =
        store::audit::of_user(&ctx.inner.store, &p.sub, (page - 1) * limit, limit).await?;
    let data: Vec<EntryBody> = rows.into_iter().map(|r| EntryBody::of(r, false)).collect();
    Ok(Outcome::Json(
        200,
        json!({"data": body(&data), "total": total, "page": page, "limit": limit}),
    ))
}
