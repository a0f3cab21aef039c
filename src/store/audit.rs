use sqlx::{AnyConnection, Row};

use super::{AuditEvent, Result, Store, format_time, new_id, now_ms};

/// One audited change: who did what to which object. Never a value.
pub(crate) struct Change<'a> {
    pub organization_id: Option<&'a str>,
    pub actor: &'a str,
    pub action: &'a str,
    pub target_kind: &'a str,
    pub target_id: &'a str,
    pub target_name: &'a str,
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
    /// The newest `limit` events of an organization, newest first.
    pub async fn list_audit(&self, organization_id: &str, limit: i64) -> Result<Vec<AuditEvent>> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target_kind, target_id, target_name \
             FROM audit_events WHERE organization_id = $1 ORDER BY at DESC, id LIMIT $2",
        )
        .bind(organization_id.to_owned())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEvent {
                    id: row.try_get("id")?,
                    at: format_time(row.try_get("at")?),
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    target_kind: row.try_get("target_kind")?,
                    target_id: row.try_get("target_id")?,
                    target_name: row.try_get("target_name")?,
                })
            })
            .collect()
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
