use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::paging::{decode_cursor, fetch_limit, into_page};
use super::{PodReference, Reference, Result, Secret, Store, StoreError, format_time, now_ms};

/// Most recorded references (pods and runtime consumers together) that one
/// secret keeps. A write that would go beyond removes the least recently
/// seen in the same transaction, so that no stream of distinct pod names can
/// grow the table without bound.
pub const MAX_RECORDED_REFERENCES: usize = 1000;

/// Most references the delete guard's refusal lists; it also says how many
/// there are in all.
pub const MAX_LISTED_REFERENCES: usize = 50;

/// The name cursors of the reference list carry.
const LIST: &str = "references";

const UPSERT: &str = "INSERT INTO secret_references \
     (id, secret_id, kind, namespace, pod, owner_kind, owner_name, container, env_var, consumer, first_seen_at, last_seen_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
     ON CONFLICT (secret_id, kind, namespace, pod, owner_kind, owner_name, container, env_var, consumer) \
     DO UPDATE SET last_seen_at = excluded.last_seen_at";

/// Everything that uses one secret, a row each, with its place in the list:
/// `section` (0 pods, 1 runtime consumers, 2 image pull secrets, 3
/// providers), then `k1` (namespace, consumer or name), `k2` (the pod) and
/// the row's id, which is unique. Parameters: $1 the secret's id, $2 its
/// organization, $3 its name.
const USES: &str = "\
    SELECT CAST(CASE WHEN kind = 'pod' THEN 0 ELSE 1 END AS BIGINT) AS section, \
           CASE WHEN kind = 'pod' THEN namespace ELSE consumer END AS k1, pod AS k2, id, \
           kind, '' AS name, namespace, pod, owner_kind, owner_name, container, env_var, \
           consumer, first_seen_at, last_seen_at \
      FROM secret_references WHERE secret_id = $1 \
    UNION ALL \
    SELECT CAST(2 AS BIGINT), name, '', id, 'image_pull_secret', name, '', '', '', '', '', '', '', \
           CAST(0 AS BIGINT), CAST(0 AS BIGINT) \
      FROM image_pull_secrets WHERE organization_id = $2 AND password_secret = $3 \
    UNION ALL \
    SELECT CAST(3 AS BIGINT), name, '', id, 'provider', name, '', '', '', '', '', '', '', \
           CAST(0 AS BIGINT), CAST(0 AS BIGINT) \
      FROM providers WHERE organization_id = $2 AND credential_secret = $3";

/// A reference's place in the list: section, `k1`, `k2`, id (see [`USES`]).
type Key = (i64, String, String, String);

/// Sorts before every reference.
fn first_key() -> Key {
    (-1, String::new(), String::new(), String::new())
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

fn from_row(row: &AnyRow) -> Result<(Key, Reference)> {
    let key: Key = (
        row.try_get("section")?,
        row.try_get("k1")?,
        row.try_get("k2")?,
        row.try_get("id")?,
    );
    let kind: String = row.try_get("kind")?;
    let seen = |column: &str| row.try_get::<i64, _>(column).map(format_time);
    let reference = match kind.as_str() {
        "pod" => Reference::Pod {
            namespace: row.try_get("namespace")?,
            pod: row.try_get("pod")?,
            owner_kind: non_empty(row.try_get("owner_kind")?),
            owner_name: non_empty(row.try_get("owner_name")?),
            container: row.try_get("container")?,
            env_var: row.try_get("env_var")?,
            first_seen_at: seen("first_seen_at")?,
            last_seen_at: seen("last_seen_at")?,
        },
        "runtime" => Reference::Runtime {
            consumer: row.try_get("consumer")?,
            first_seen_at: seen("first_seen_at")?,
            last_seen_at: seen("last_seen_at")?,
        },
        "image_pull_secret" => Reference::ImagePullSecret {
            id: key.3.clone(),
            name: row.try_get("name")?,
        },
        "provider" => Reference::Provider {
            id: key.3.clone(),
            name: row.try_get("name")?,
        },
        other => {
            return Err(StoreError::Corrupt(format!(
                "unknown reference kind {other:?}"
            )));
        }
    };
    Ok((key, reference))
}

/// Up to `fetch` references of `secret` that come after `after`, in list
/// order, each with its key.
async fn uses_after(
    conn: &mut AnyConnection,
    secret: &Secret,
    after: Key,
    fetch: i64,
) -> Result<Vec<(Key, Reference)>> {
    let (section, k1, k2, id) = after;
    let rows = sqlx::query(&format!(
        "SELECT * FROM ({USES}) AS uses WHERE (section, k1, k2, id) > ($4, $5, $6, $7) \
         ORDER BY section, k1, k2, id LIMIT $8"
    ))
    .bind(secret.id.clone())
    .bind(secret.organization_id.clone())
    .bind(secret.name.clone())
    .bind(section)
    .bind(k1)
    .bind(k2)
    .bind(id)
    .bind(fetch)
    .fetch_all(conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// How many objects use `secret`.
async fn count_uses(conn: &mut AnyConnection, secret: &Secret) -> Result<u64> {
    let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM ({USES}) AS uses"))
        .bind(secret.id.clone())
        .bind(secret.organization_id.clone())
        .bind(secret.name.clone())
        .fetch_one(conn)
        .await?;
    Ok(u64::try_from(count).unwrap_or_default())
}

/// What the delete guard found: the first [`MAX_LISTED_REFERENCES`]
/// references in list order, and how many there are in all.
#[derive(Debug)]
pub struct InUse {
    pub references: Vec<Reference>,
    pub total: u64,
}

/// Whether anything uses `secret`, read inside the deleting transaction.
pub(super) async fn in_use(conn: &mut AnyConnection, secret: &Secret) -> Result<Option<InUse>> {
    let total = count_uses(conn, secret).await?;
    if total == 0 {
        return Ok(None);
    }
    let listed = i64::try_from(MAX_LISTED_REFERENCES).expect("a small constant");
    let first = uses_after(conn, secret, first_key(), listed).await?;
    Ok(Some(InUse {
        references: first.into_iter().map(|(_, r)| r).collect(),
        total,
    }))
}

/// Locks a secret's row until the transaction ends; false when the secret
/// is gone. Writers of one secret's references take turns this way, so that
/// two of them cannot each prune to the cap and together pass it (on
/// PostgreSQL; SQLite has one writer at a time anyway), and a delete that
/// takes it first never waits on a writer in a circle.
pub(super) async fn hold_secret(conn: &mut AnyConnection, secret_id: &str) -> Result<bool> {
    let updated = sqlx::query("UPDATE secrets SET version = version WHERE id = $1")
        .bind(secret_id.to_owned())
        .execute(conn)
        .await?;
    Ok(updated.rows_affected() == 1)
}

/// Removes a secret's least recently seen recorded references beyond
/// [`MAX_RECORDED_REFERENCES`].
async fn prune(conn: &mut AnyConnection, secret_id: &str) -> Result<()> {
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM secret_references WHERE secret_id = $1")
            .bind(secret_id.to_owned())
            .fetch_one(&mut *conn)
            .await?;
    let excess = count - i64::try_from(MAX_RECORDED_REFERENCES).expect("a small constant");
    if excess <= 0 {
        return Ok(());
    }
    sqlx::query(
        "DELETE FROM secret_references WHERE id IN (\
         SELECT id FROM secret_references WHERE secret_id = $1 \
         ORDER BY last_seen_at, first_seen_at, id LIMIT $2)",
    )
    .bind(secret_id.to_owned())
    .bind(excess)
    .execute(conn)
    .await?;
    tracing::debug!(secret_id, pruned = excess, "Pruned the oldest references");
    Ok(())
}

/// One recorded use of a secret: a pod's or a runtime consumer's. Empty
/// strings stand for absent fields, so that the unique key deduplicates.
struct Recorded<'a> {
    secret_id: &'a str,
    kind: &'static str,
    namespace: &'a str,
    pod: &'a str,
    owner_kind: &'a str,
    owner_name: &'a str,
    container: &'a str,
    env_var: &'a str,
    consumer: &'a str,
}

impl Store {
    /// A page of everything that uses `secret`, and the cursor of the next
    /// page when more follow. The order: pods (by namespace, then pod),
    /// runtime consumers, image pull secrets and providers (each by name),
    /// and within each by id.
    pub async fn list_references(
        &self,
        secret: &Secret,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Reference>, Option<String>)> {
        let after: Key = decode_cursor(LIST, cursor)?.unwrap_or_else(first_key);
        let mut conn = self.pool().acquire().await?;
        let rows = uses_after(&mut conn, secret, after, fetch_limit(limit)).await?;
        Ok(into_page(LIST, rows, limit))
    }

    /// Records (or refreshes) the pods' uses of secrets, in one transaction.
    pub async fn record_pod_references(&self, references: &[PodReference]) -> Result<()> {
        let uses: Vec<Recorded> = references
            .iter()
            .map(|r| Recorded {
                secret_id: &r.secret_id,
                kind: "pod",
                namespace: &r.namespace,
                pod: &r.pod,
                owner_kind: &r.owner_kind,
                owner_name: &r.owner_name,
                container: &r.container,
                env_var: &r.env_var,
                consumer: "",
            })
            .collect();
        self.record(&uses).await
    }

    /// Records (or refreshes) a runtime consumer's use of secrets.
    pub async fn record_runtime_references(
        &self,
        secret_ids: &[&str],
        consumer: &str,
    ) -> Result<()> {
        let uses: Vec<Recorded> = secret_ids
            .iter()
            .map(|id| Recorded {
                secret_id: id,
                kind: "runtime",
                namespace: "",
                pod: "",
                owner_kind: "",
                owner_name: "",
                container: "",
                env_var: "",
                consumer,
            })
            .collect();
        self.record(&uses).await
    }

    /// Writes recorded uses and keeps each secret within
    /// [`MAX_RECORDED_REFERENCES`]. Uses of secrets deleted meanwhile are
    /// dropped.
    async fn record(&self, uses: &[Recorded<'_>]) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut secrets: Vec<&str> = uses.iter().map(|u| u.secret_id).collect();
        secrets.sort_unstable();
        secrets.dedup();
        let mut w = self.write().await?;
        // In id order: two writers that share secrets lock them in the same
        // order and never wait on each other in a circle.
        let mut present = Vec::with_capacity(secrets.len());
        for id in secrets {
            if hold_secret(&mut w.tx, id).await? {
                present.push(id);
            }
        }
        for u in uses {
            if present.binary_search(&u.secret_id).is_err() {
                continue;
            }
            sqlx::query(UPSERT)
                .bind(super::new_id())
                .bind(u.secret_id.to_owned())
                .bind(u.kind)
                .bind(u.namespace.to_owned())
                .bind(u.pod.to_owned())
                .bind(u.owner_kind.to_owned())
                .bind(u.owner_name.to_owned())
                .bind(u.container.to_owned())
                .bind(u.env_var.to_owned())
                .bind(u.consumer.to_owned())
                .bind(now)
                .execute(&mut *w.tx)
                .await?;
        }
        for id in present {
            prune(&mut w.tx, id).await?;
        }
        w.commit().await
    }
}
