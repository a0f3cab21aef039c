//! Restart on rotation, as the database keeps it: rotations waiting to be
//! turned into rollouts, and the rollouts, one per workload and rotation.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::audit::Change;
use super::paging::{decode_cursor, fetch_limit, into_page};
use super::{Result, Secret, Store, StoreError, new_id, now_ms};

/// The name cursors of the rollouts list carry.
const LIST: &str = "rollouts";

/// A version change of a secret that running workloads may not have yet.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub id: String,
    pub organization_id: String,
    pub secret_id: String,
    pub secret_name: String,
    pub version: i64,
    pub reason: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutState {
    /// Waiting for its turn: the workload was restarted too recently.
    Pending,
    /// The pod template was annotated; Kubernetes rolls the workload out.
    Restarted,
    /// No restart was needed any more (no pod runs an older version).
    Skipped,
    /// The restart failed; `message` says why.
    Failed,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Pending => "pending",
            RolloutState::Restarted => "restarted",
            RolloutState::Skipped => "skipped",
            RolloutState::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            RolloutState::Pending,
            RolloutState::Restarted,
            RolloutState::Skipped,
            RolloutState::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// One workload's restart for one rotation.
#[derive(Debug, Clone)]
pub struct Rollout {
    pub id: String,
    pub organization_id: String,
    pub secret_id: String,
    pub secret_name: String,
    pub version: i64,
    /// The oldest version an opted-in pod of the workload ran; `None` for a
    /// namespace that could not be searched.
    pub from_version: Option<i64>,
    pub namespace: String,
    pub kind: String,
    pub workload: String,
    pub reason: String,
    pub state: RolloutState,
    pub message: String,
    pub requested_at: i64,
    pub restarted_at: Option<i64>,
}

const ROLLOUT_COLUMNS: &str = "id, organization_id, secret_id, secret_name, version, from_version, \
                               namespace, kind, workload, reason, state, message, requested_at, \
                               restarted_at";

fn rollout_from_row(row: &AnyRow) -> Result<Rollout> {
    let state: String = row.try_get("state")?;
    Ok(Rollout {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        secret_id: row.try_get("secret_id")?,
        secret_name: row.try_get("secret_name")?,
        version: row.try_get("version")?,
        from_version: row.try_get("from_version")?,
        namespace: row.try_get("namespace")?,
        kind: row.try_get("kind")?,
        workload: row.try_get("workload")?,
        reason: row.try_get("reason")?,
        state: RolloutState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown rollout state {state:?}")))?,
        message: row.try_get("message")?,
        requested_at: row.try_get("requested_at")?,
        restarted_at: row.try_get("restarted_at")?,
    })
}

/// Queues a rotation of `secret`, now at `version`, in the transaction that
/// changes it: the change and the restart it asks for are one write.
pub(crate) async fn queue_rotation(
    conn: &mut AnyConnection,
    secret: &Secret,
    version: i64,
    reason: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO rotations (id, organization_id, secret_id, secret_name, version, reason, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id())
    .bind(secret.organization_id.clone())
    .bind(secret.id.clone())
    .bind(secret.name.clone())
    .bind(version)
    .bind(reason.to_owned())
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// Which pending rollouts an ending covers; see `Store::finish_rollouts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Workload,
    Rollout,
}

/// A workload a rotation reaches: namespace, kind, name, and the oldest
/// version its pods run.
pub type WorkloadRef<'a> = (&'a str, &'a str, &'a str, i64);

impl Store {
    /// The oldest rotations not yet turned into rollouts.
    pub async fn pending_rotations(&self, limit: usize) -> Result<Vec<Rotation>> {
        let rows = sqlx::query(
            "SELECT id, organization_id, secret_id, secret_name, version, reason, created_at FROM rotations \
             ORDER BY created_at, id LIMIT $1",
        )
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Rotation {
                    id: row.try_get("id")?,
                    organization_id: row.try_get("organization_id")?,
                    secret_id: row.try_get("secret_id")?,
                    secret_name: row.try_get("secret_name")?,
                    version: row.try_get("version")?,
                    reason: row.try_get("reason")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// The namespaces where pods were admitted with the secret.
    pub async fn pod_namespaces(&self, secret_id: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT namespace FROM secret_references \
             WHERE secret_id = $1 AND kind = 'pod' ORDER BY namespace",
        )
        .bind(secret_id.to_owned())
        .fetch_all(self.pool())
        .await?)
    }

    /// Records the workloads `rotation` reaches as pending rollouts, and the
    /// namespaces that could not be searched as failed ones (kind
    /// `Namespace`), and takes it off the queue, in one transaction. A workload still
    /// pending for an older version of the same secret moves to this one
    /// instead of getting a second row.
    pub async fn plan_rollouts(
        &self,
        rotation: &Rotation,
        workloads: &[WorkloadRef<'_>],
        refused: &[(String, String)],
    ) -> Result<()> {
        let now = now_ms();
        let mut w = self.write().await?;
        // Taken off the queue in the transaction that plans it, so that the
        // queue holds only what is still to do.
        let claimed = sqlx::query("DELETE FROM rotations WHERE id = $1")
            .bind(rotation.id.clone())
            .execute(&mut *w.tx)
            .await?;
        if claimed.rows_affected() == 0 {
            return Ok(());
        }
        for &(namespace, kind, workload, from_version) in workloads {
            let moved = sqlx::query(
                "UPDATE rollouts SET version = $1, reason = $2, requested_at = $3, message = '' \
                 WHERE secret_id = $4 AND namespace = $5 AND kind = $6 AND workload = $7 \
                 AND state = 'pending' AND version < $1",
            )
            .bind(rotation.version)
            .bind(rotation.reason.clone())
            .bind(now)
            .bind(rotation.secret_id.clone())
            .bind(namespace.to_owned())
            .bind(kind.to_owned())
            .bind(workload.to_owned())
            .execute(&mut *w.tx)
            .await?;
            if moved.rows_affected() > 0 {
                continue;
            }
            sqlx::query(&format!(
                "INSERT INTO rollouts ({ROLLOUT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $11, $6, $7, $8, $9, 'pending', '', $10, NULL)"
            ))
            .bind(new_id())
            .bind(rotation.organization_id.clone())
            .bind(rotation.secret_id.clone())
            .bind(rotation.secret_name.clone())
            .bind(rotation.version)
            .bind(namespace.to_owned())
            .bind(kind.to_owned())
            .bind(workload.to_owned())
            .bind(rotation.reason.clone())
            .bind(now)
            .bind(from_version)
            .execute(&mut *w.tx)
            .await?;
        }
        for (namespace, message) in refused {
            sqlx::query(&format!(
                "INSERT INTO rollouts ({ROLLOUT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, NULL, $6, 'Namespace', $6, $7, 'failed', $8, $9, NULL)"
            ))
            .bind(new_id())
            .bind(rotation.organization_id.clone())
            .bind(rotation.secret_id.clone())
            .bind(rotation.secret_name.clone())
            .bind(rotation.version)
            .bind(namespace.clone())
            .bind(rotation.reason.clone())
            .bind(message.clone())
            .bind(now)
            .execute(&mut *w.tx)
            .await?;
        }
        w.commit().await
    }

    /// Pending rollouts, oldest first.
    pub async fn pending_rollouts(&self, limit: usize) -> Result<Vec<Rollout>> {
        let rows = sqlx::query(&format!(
            "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE state = 'pending' \
             ORDER BY requested_at, id LIMIT $1"
        ))
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(rollout_from_row).collect()
    }

    /// When the workload was last restarted for any secret.
    pub async fn last_restart(
        &self,
        namespace: &str,
        kind: &str,
        workload: &str,
    ) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MAX(restarted_at) FROM rollouts \
             WHERE namespace = $1 AND kind = $2 AND workload = $3 AND state = 'restarted'",
        )
        .bind(namespace.to_owned())
        .bind(kind.to_owned())
        .bind(workload.to_owned())
        .fetch_one(self.pool())
        .await?)
    }

    /// Says why a pending rollout waits; nothing else changes.
    pub async fn note_rollout(&self, rollout: &Rollout, message: &str) -> Result<()> {
        let mut w = self.write().await?;
        sqlx::query("UPDATE rollouts SET message = $1 WHERE id = $2 AND state = 'pending'")
            .bind(message.to_owned())
            .bind(rollout.id.clone())
            .execute(&mut *w.tx)
            .await?;
        w.commit().await
    }

    /// Ends pending rollouts of the workload `rollout` names: with
    /// `Scope::Workload` every one, whatever its secret (one restart serves
    /// them all, and a workload that is gone or may not be touched is so for
    /// every secret); with `Scope::Rollout` that one only (its secret's pods
    /// are current, which says nothing of the others'). A restart is audited
    /// once per rollout it ends.
    pub async fn finish_rollouts(
        &self,
        rollout: &Rollout,
        scope: Scope,
        state: RolloutState,
        message: &str,
    ) -> Result<usize> {
        let now = now_ms();
        let mut w = self.write().await?;
        let rows = match scope {
            Scope::Workload => {
                sqlx::query(&format!(
                    "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE namespace = $1 AND kind = $2 \
                     AND workload = $3 AND state = 'pending'"
                ))
                .bind(rollout.namespace.clone())
                .bind(rollout.kind.clone())
                .bind(rollout.workload.clone())
                .fetch_all(&mut *w.tx)
                .await?
            }
            Scope::Rollout => {
                sqlx::query(&format!(
                    "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE id = $1 AND state = 'pending'"
                ))
                .bind(rollout.id.clone())
                .fetch_all(&mut *w.tx)
                .await?
            }
        };
        let ended: Vec<Rollout> = rows.iter().map(rollout_from_row).collect::<Result<_>>()?;
        let restarted_at = (state == RolloutState::Restarted).then_some(now);
        for ended in &ended {
            sqlx::query(
                "UPDATE rollouts SET state = $1, message = $2, restarted_at = $3 \
                 WHERE id = $4 AND state = 'pending'",
            )
            .bind(state.as_str())
            .bind(message.to_owned())
            .bind(restarted_at)
            .bind(ended.id.clone())
            .execute(&mut *w.tx)
            .await?;
            if state == RolloutState::Restarted {
                let actor = format!("rotation:{}@{}", ended.secret_name, ended.version);
                let target = format!("{}/{}", ended.namespace, ended.workload);
                Change {
                    organization_id: Some(&ended.organization_id),
                    actor: &actor,
                    action: "workload.restart",
                    target_kind: &ended.kind,
                    target_id: &ended.id,
                    target_name: &target,
                }
                .record(&mut w.tx)
                .await?;
            }
        }
        w.commit().await?;
        Ok(ended.len())
    }

    /// A page of a secret's rollouts, newest first.
    pub async fn list_rollouts(
        &self,
        secret_id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Rollout>, Option<String>)> {
        let (at, id): (i64, String) =
            decode_cursor(LIST, cursor)?.unwrap_or((i64::MAX, String::new()));
        let rows = sqlx::query(&format!(
            "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE secret_id = $1 \
             AND (requested_at, id) < ($2, $3) ORDER BY requested_at DESC, id DESC LIMIT $4"
        ))
        .bind(secret_id.to_owned())
        .bind(at)
        .bind(id)
        .bind(fetch_limit(limit))
        .fetch_all(self.pool())
        .await?;
        let rows = rows
            .iter()
            .map(|row| rollout_from_row(row).map(|r| ((r.requested_at, r.id.clone()), r)))
            .collect::<Result<Vec<_>>>()?;
        Ok(into_page(LIST, rows, limit))
    }
}
