//! The audit log: one row per security event.

use sea_orm::{
    ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::entities::audit_log;
use super::{Conn, OrStore, R};

/// A stored audit row.
pub(crate) type AuditEntry = audit_log::Model;

/// One page of the user's audit rows, newest first, and how many the user has in all.
pub(crate) async fn of_user(
    db: &impl Conn,
    user_id: &str,
    offset: u64,
    limit: u64,
) -> R<(Vec<AuditEntry>, u64)> {
    let mine = AuditFilter {
        user_id: Some(user_id.to_string()),
        ..AuditFilter::default()
    };
    query(db, &mine, offset, limit).await
}

/// One audit row, ready to store.
#[derive(Debug, Clone)]
pub(crate) struct AuditRow {
    pub user_id: Option<String>,
    pub event: &'static str,
    pub success: bool,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// JSON text.
    pub details: String,
    pub created_at: i64,
}

/// Writes one audit row. Never fails the caller: a failed write is logged (without details)
/// and swallowed. The key is a fresh UUID, so inside a PostgreSQL transaction the insert
/// cannot conflict and poison it; a version 7 UUID, whose order within this process is the
/// order of the writes, so rows of the same millisecond still list newest first.
pub(crate) async fn insert(db: &impl Conn, row: AuditRow) {
    let event = row.event;
    let am = audit_log::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        user_id: Set(row.user_id),
        event_type: Set(row.event.to_string()),
        event_status: Set(if row.success { "SUCCESS" } else { "FAILURE" }.to_string()),
        ip_address: Set(row.ip),
        user_agent: Set(row.user_agent),
        details: Set(row.details),
        created_at: Set(row.created_at),
    };
    if let Err(e) = audit_log::Entity::insert(am).exec(db.c()).await {
        tracing::warn!(event, error = %e, "audit write failed");
    }
}

/// What the admin audit query keeps.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditFilter {
    pub user_id: Option<String>,
    pub event_type: Option<String>,
    /// Unix ms, inclusive.
    pub from: Option<i64>,
    /// Unix ms, exclusive.
    pub to: Option<i64>,
}

/// One page of audit rows matching `f`, newest first, and how many match in all.
pub(crate) async fn query(
    db: &impl Conn,
    f: &AuditFilter,
    offset: u64,
    limit: u64,
) -> R<(Vec<AuditEntry>, u64)> {
    let matching = || {
        let mut q = audit_log::Entity::find();
        if let Some(u) = &f.user_id {
            q = q.filter(audit_log::Column::UserId.eq(u.as_str()));
        }
        if let Some(e) = &f.event_type {
            q = q.filter(audit_log::Column::EventType.eq(e.as_str()));
        }
        if let Some(t) = f.from {
            q = q.filter(audit_log::Column::CreatedAt.gte(t));
        }
        if let Some(t) = f.to {
            q = q.filter(audit_log::Column::CreatedAt.lt(t));
        }
        q
    };
    let total = matching().count(db.c()).await.db()?;
    let rows = matching()
        .order_by_desc(audit_log::Column::CreatedAt)
        .order_by_desc(audit_log::Column::Id)
        .offset(offset)
        .limit(limit)
        .all(db.c())
        .await
        .db()?;
    Ok((rows, total))
}
