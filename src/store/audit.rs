use sqlx::{AnyConnection, Row};

use super::paging::{decode_cursor, fetch_limit, into_page};
use super::{AuditEvent, Result, Store, format_time, new_id, now_ms};

/// The name cursors of the audit log carry.
const LIST: &str = "audit";

/// One audited change: who did what to which object. Never a value.
pub(crate) struct Change<'a> {
    pub organization_id: Option<&'a str>,
    pub actor: &'a str,
    pub action: &'a str,
    pub target_kind: &'a str,
    pub target_id: &'a str,
    pub target_name: &'a str,
}

/// Whose events an audit page holds.
#[derive(Debug, Clone)]
pub enum AuditTarget {
    /// The events of one object, by its id.
    Id(String),
    /// The events of secrets of this name, deleted ones included.
    SecretName(String),
}

impl Change<'_> {
    /// Records the change inside the transaction that makes it, so that a
    /// change and its audit event are written together or not at all.
    pub(crate) async fn record(&self, conn: &mut AnyConnection) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_events \
             (id, organization_id, at, actor, action, target_kind, target_id, target_name) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(new_id())
        .bind(self.organization_id.map(str::to_owned))
        .bind(now_ms())
        .bind(self.actor.to_owned())
        .bind(self.action.to_owned())
        .bind(self.target_kind.to_owned())
        .bind(self.target_id.to_owned())
        .bind(self.target_name.to_owned())
        .execute(conn)
        .await?;
        Ok(())
    }
}

impl Store {
    /// A page of an organization's events, newest first (then by id,
    /// descending), and the cursor of the next page when more follow.
    pub async fn list_audit(
        &self,
        organization_id: &str,
        target: Option<&AuditTarget>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<AuditEvent>, Option<String>)> {
        // (i64::MAX, "") sorts before every event in this order.
        let (at, id): (i64, String) =
            decode_cursor(LIST, cursor)?.unwrap_or((i64::MAX, String::new()));
        let filter = match target {
            None => "",
            Some(AuditTarget::Id(_)) => "AND target_id = $5",
            Some(AuditTarget::SecretName(_)) => "AND target_kind = 'secret' AND target_name = $5",
        };
        let sql = format!(
            "SELECT id, at, actor, action, target_kind, target_id, target_name \
             FROM audit_events WHERE organization_id = $1 AND (at, id) < ($2, $3) {filter} \
             ORDER BY at DESC, id DESC LIMIT $4"
        );
        let mut query = sqlx::query(&sql)
            .bind(organization_id.to_owned())
            .bind(at)
            .bind(id)
            .bind(fetch_limit(limit));
        if let Some(AuditTarget::Id(text) | AuditTarget::SecretName(text)) = target {
            query = query.bind(text.clone());
        }
        let rows = query.fetch_all(self.pool()).await?;
        let rows = rows
            .iter()
            .map(|row| {
                let at: i64 = row.try_get("at")?;
                let event = AuditEvent {
                    id: row.try_get("id")?,
                    at: format_time(at),
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    target_kind: row.try_get("target_kind")?,
                    target_id: row.try_get("target_id")?,
                    target_name: row.try_get("target_name")?,
                };
                Ok(((at, event.id.clone()), event))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(into_page(LIST, rows, limit))
    }
}

impl Store {
    /// Records that a runtime identity read values (names and ids only).
    pub async fn audit_resolve<'a>(
        &self,
        organization_id: &str,
        actor: &str,
        secrets: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<()> {
        let mut w = self.write().await?;
        for (id, name) in secrets {
            Change {
                organization_id: Some(organization_id),
                actor,
                action: "secret.resolve",
                target_kind: "secret",
                target_id: id,
                target_name: name,
            }
            .record(&mut w.tx)
            .await?;
        }
        w.commit().await
    }
}
