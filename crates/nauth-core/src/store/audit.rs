//! The audit log: one row per security event.

use sea_orm::{EntityTrait, Set};

use super::Conn;
use super::entities::audit_log;

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
/// cannot conflict and poison it.
pub(crate) async fn insert(db: &impl Conn, row: AuditRow) {
    let event = row.event;
    let am = audit_log::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
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
