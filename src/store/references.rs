use sqlx::{AnyConnection, Row};

use super::{
    PodReference, ProviderAuth, Reference, Result, Secret, Store, StoreError, format_time, new_id,
    now_ms,
};

const UPSERT: &str = "INSERT INTO secret_references \
     (id, secret_id, kind, namespace, pod, owner_kind, owner_name, container, env_var, consumer, first_seen_at, last_seen_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
     ON CONFLICT (secret_id, kind, namespace, pod, owner_kind, owner_name, container, env_var, consumer) \
     DO UPDATE SET last_seen_at = excluded.last_seen_at";

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// Everything that uses `secret`: recorded pods and runtime consumers, and the
/// image pull secrets and providers of its organization that name it.
pub(super) async fn references_of(
    conn: &mut AnyConnection,
    secret: &Secret,
) -> Result<Vec<Reference>> {
    let mut references = Vec::new();
    let rows = sqlx::query(
        "SELECT kind, namespace, pod, owner_kind, owner_name, container, env_var, consumer, \
         first_seen_at, last_seen_at FROM secret_references WHERE secret_id = $1 \
         ORDER BY kind, namespace, pod, container, env_var, consumer",
    )
    .bind(secret.id.clone())
    .fetch_all(&mut *conn)
    .await?;
    for row in &rows {
        let kind: String = row.try_get("kind")?;
        let first_seen_at = format_time(row.try_get("first_seen_at")?);
        let last_seen_at = format_time(row.try_get("last_seen_at")?);
        references.push(match kind.as_str() {
            "pod" => Reference::Pod {
                namespace: row.try_get("namespace")?,
                pod: row.try_get("pod")?,
                owner_kind: non_empty(row.try_get("owner_kind")?),
                owner_name: non_empty(row.try_get("owner_name")?),
                container: row.try_get("container")?,
                env_var: row.try_get("env_var")?,
                first_seen_at,
                last_seen_at,
            },
            "runtime" => Reference::Runtime {
                consumer: row.try_get("consumer")?,
                first_seen_at,
                last_seen_at,
            },
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown reference kind {other:?}"
                )));
            }
        });
    }
    let rows = sqlx::query(
        "SELECT id, name FROM image_pull_secrets WHERE organization_id = $1 AND password_secret = $2 ORDER BY name",
    )
    .bind(secret.organization_id.clone())
    .bind(secret.name.clone())
    .fetch_all(&mut *conn)
    .await?;
    for row in &rows {
        references.push(Reference::ImagePullSecret {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
        });
    }
    let rows = sqlx::query(
        "SELECT id, name, auth FROM providers WHERE organization_id = $1 ORDER BY name",
    )
    .bind(secret.organization_id.clone())
    .fetch_all(&mut *conn)
    .await?;
    for row in &rows {
        let auth: String = row.try_get("auth")?;
        let auth: ProviderAuth = serde_json::from_str(&auth)
            .map_err(|e| StoreError::Corrupt(format!("provider auth: {e}")))?;
        if auth.credential_secret() == Some(secret.name.as_str()) {
            references.push(Reference::Provider {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
            });
        }
    }
    Ok(references)
}

impl Store {
    pub async fn list_references(&self, secret: &Secret) -> Result<Vec<Reference>> {
        let mut conn = self.pool().acquire().await?;
        references_of(&mut conn, secret).await
    }

    /// Records (or refreshes) the pods' uses of secrets, in one transaction.
    pub async fn record_pod_references(&self, references: &[PodReference]) -> Result<()> {
        if references.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut w = self.write().await?;
        for r in references {
            sqlx::query(UPSERT)
                .bind(new_id())
                .bind(r.secret_id.clone())
                .bind("pod")
                .bind(r.namespace.clone())
                .bind(r.pod.clone())
                .bind(r.owner_kind.clone())
                .bind(r.owner_name.clone())
                .bind(r.container.clone())
                .bind(r.env_var.clone())
                .bind(String::new())
                .bind(now)
                .execute(&mut *w.tx)
                .await?;
        }
        w.commit().await
    }

    /// Records (or refreshes) a runtime consumer's use of secrets.
    pub async fn record_runtime_references(
        &self,
        secret_ids: &[&str],
        consumer: &str,
    ) -> Result<()> {
        let now = now_ms();
        let mut w = self.write().await?;
        for id in secret_ids {
            sqlx::query(UPSERT)
                .bind(new_id())
                .bind((*id).to_owned())
                .bind("runtime")
                .bind(String::new())
                .bind(String::new())
                .bind(String::new())
                .bind(String::new())
                .bind(String::new())
                .bind(String::new())
                .bind(consumer.to_owned())
                .bind(now)
                .execute(&mut *w.tx)
                .await?;
        }
        w.commit().await
    }
}
