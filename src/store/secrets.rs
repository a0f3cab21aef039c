use std::sync::Arc;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::audit::Change;
use super::paging::{decode_cursor, fetch_limit, into_page};
use super::references::{InUse, hold_secret, in_use};
use super::rollouts::queue_rotation;
use super::{
    RemoteRef, Result, Secret, SecretContent, Store, StoreError, conflict_on_unique, new_id, now_ms,
};
use crate::crypto::{Aad, KeyRing, Sealed, SecretValue};
use crate::fence;

/// The name cursors of the secrets list carry.
const LIST: &str = "secrets";

const COLUMNS: &str = "id, organization_id, name, storage, version, provider_id, remote_path, \
                       remote_key, kek_id, wrapped_dek, ciphertext, created_at, updated_at, \
                       allowed_namespaces";

/// What a new secret holds.
#[derive(Debug)]
pub enum NewSecret {
    Local(SecretValue),
    Remote(RemoteRef),
}

/// A repointing of a remote secret; absent fields stay as they are, and
/// `remote_key: Some(None)` clears the key.
#[derive(Debug, Default)]
pub struct RemoteChanges {
    pub provider_id: Option<String>,
    pub remote_path: Option<String>,
    pub remote_key: Option<Option<String>>,
}

fn from_row(row: &AnyRow) -> Result<Secret> {
    let storage: String = row.try_get("storage")?;
    let id: String = row.try_get("id")?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("secret {id}: {what}"));
    let content = match storage.as_str() {
        "local" => SecretContent::Local(Sealed::new(
            row.try_get::<Option<String>, _>("kek_id")?
                .ok_or_else(|| corrupt("local secret without key id"))?,
            row.try_get::<Option<Vec<u8>>, _>("wrapped_dek")?
                .ok_or_else(|| corrupt("local secret without data key"))?,
            row.try_get::<Option<Vec<u8>>, _>("ciphertext")?
                .ok_or_else(|| corrupt("local secret without ciphertext"))?,
        )),
        "remote" => SecretContent::Remote(RemoteRef {
            provider_id: row
                .try_get::<Option<String>, _>("provider_id")?
                .ok_or_else(|| corrupt("remote secret without provider"))?,
            remote_path: row
                .try_get::<Option<String>, _>("remote_path")?
                .unwrap_or_default(),
            remote_key: row
                .try_get::<Option<String>, _>("remote_key")?
                .filter(|k| !k.is_empty()),
        }),
        other => return Err(corrupt(&format!("unknown storage {other:?}"))),
    };
    Ok(Secret {
        id: id.clone(),
        organization_id: row.try_get("organization_id")?,
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        content,
        allowed_namespaces: fence::from_column(&row.try_get::<String, _>("allowed_namespaces")?),
    })
}

async fn ensure_provider(
    conn: &mut AnyConnection,
    organization_id: &str,
    provider_id: &str,
) -> Result<()> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT id FROM providers WHERE organization_id = $1 AND id = $2")
            .bind(organization_id.to_owned())
            .bind(provider_id.to_owned())
            .fetch_optional(conn)
            .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::Invalid {
            field: "provider_id",
            message: format!("no provider {provider_id:?} in this organization"),
        }),
    }
}

async fn fetch(
    conn: &mut AnyConnection,
    organization_id: &str,
    id_or_name: &str,
) -> Result<Option<Secret>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM secrets WHERE organization_id = $1 AND (id = $2 OR name = $2) \
         ORDER BY CASE WHEN id = $2 THEN 0 ELSE 1 END LIMIT 1"
    ))
    .bind(organization_id.to_owned())
    .bind(id_or_name.to_owned())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Inserts a new secret's row; a name the organization already uses is a
/// conflict.
async fn insert(conn: &mut AnyConnection, secret: &Secret) -> Result<()> {
    let (local, remote) = match &secret.content {
        SecretContent::Local(sealed) => (Some(sealed), None),
        SecretContent::Remote(remote) => (None, Some(remote)),
    };
    sqlx::query(&format!(
        "INSERT INTO secrets ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ))
    .bind(secret.id.clone())
    .bind(secret.organization_id.clone())
    .bind(secret.name.clone())
    .bind(secret.storage().as_str())
    .bind(secret.version)
    .bind(remote.map(|r| r.provider_id.clone()))
    .bind(remote.map(|r| r.remote_path.clone()))
    .bind(remote.map(|r| r.remote_key.clone()))
    .bind(local.map(|s| s.kek_id.clone()))
    .bind(local.map(|s| s.wrapped_dek.clone()))
    .bind(local.map(|s| s.ciphertext.clone()))
    .bind(secret.created_at)
    .bind(secret.updated_at)
    .bind(fence::to_column(&secret.allowed_namespaces))
    .execute(conn)
    .await
    .map_err(|e| {
        conflict_on_unique(e, || {
            format!(
                "secret {:?} already exists in this organization",
                secret.name
            )
        })
    })?;
    Ok(())
}

/// Stores a local secret's new `sealed` value as `version`, provided the
/// row is still at the version `secret` was read at.
async fn update_sealed(
    conn: &mut AnyConnection,
    secret: &Secret,
    version: i64,
    sealed: &Sealed,
    now: i64,
) -> Result<()> {
    let updated = sqlx::query(
        "UPDATE secrets SET version = $1, kek_id = $2, wrapped_dek = $3, ciphertext = $4, updated_at = $5 \
         WHERE id = $6 AND version = $7",
    )
    .bind(version)
    .bind(sealed.kek_id.clone())
    .bind(sealed.wrapped_dek.clone())
    .bind(sealed.ciphertext.clone())
    .bind(now)
    .bind(secret.id.clone())
    .bind(secret.version)
    .execute(conn)
    .await?;
    updated_once(updated.rows_affected(), secret)
}

/// Stores a remote secret's new `remote` reference as `version`, provided
/// the row is still at the version `secret` was read at.
async fn update_remote(
    conn: &mut AnyConnection,
    secret: &Secret,
    version: i64,
    remote: &RemoteRef,
    now: i64,
) -> Result<()> {
    let updated = sqlx::query(
        "UPDATE secrets SET version = $1, provider_id = $2, remote_path = $3, remote_key = $4, updated_at = $5, \
         remote_version = NULL WHERE id = $6 AND version = $7",
    )
    .bind(version)
    .bind(remote.provider_id.clone())
    .bind(remote.remote_path.clone())
    .bind(remote.remote_key.clone())
    .bind(now)
    .bind(secret.id.clone())
    .bind(secret.version)
    .execute(conn)
    .await?;
    updated_once(updated.rows_affected(), secret)
}

/// Stores `fence` as the secret's namespace fence and audits the change, in
/// the caller's transaction; false when it is the fence already.
async fn set_fence(
    conn: &mut AnyConnection,
    secret: &mut Secret,
    fence: Vec<String>,
    actor: &str,
) -> Result<bool> {
    if fence == secret.allowed_namespaces {
        return Ok(false);
    }
    sqlx::query("UPDATE secrets SET allowed_namespaces = $1 WHERE id = $2")
        .bind(fence::to_column(&fence))
        .bind(secret.id.clone())
        .execute(&mut *conn)
        .await?;
    Change {
        organization_id: Some(&secret.organization_id),
        actor,
        action: "secret.fence",
        target_kind: "secret",
        target_id: &secret.id,
        target_name: &secret.name,
    }
    .record(conn)
    .await?;
    secret.allowed_namespaces = fence;
    Ok(true)
}

/// A conflict unless the update of `secret` changed exactly one row: none
/// means another writer got there first.
fn updated_once(rows: u64, secret: &Secret) -> Result<()> {
    if rows == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "secret {:?} was changed concurrently; retry",
            secret.name
        )))
    }
}

impl Store {
    pub async fn create_secret(
        &self,
        organization_id: &str,
        name: &str,
        new: NewSecret,
        allowed_namespaces: Vec<String>,
        keys: &KeyRing,
        actor: &str,
    ) -> Result<Secret> {
        let id = new_id();
        let now = now_ms();
        let content = match new {
            NewSecret::Local(value) => SecretContent::Local(keys.seal(
                &value,
                Aad {
                    organization_id,
                    secret_id: &id,
                    version: 1,
                },
            )),
            NewSecret::Remote(remote) => SecretContent::Remote(remote),
        };
        let secret = Secret {
            id,
            organization_id: organization_id.to_owned(),
            name: name.to_owned(),
            version: 1,
            created_at: now,
            updated_at: now,
            content,
            allowed_namespaces,
        };
        let mut w = self.write().await?;
        if let Some(remote) = secret.remote() {
            ensure_provider(&mut w.tx, organization_id, &remote.provider_id).await?;
        }
        insert(&mut w.tx, &secret).await?;
        Change {
            organization_id: Some(organization_id),
            actor,
            action: "secret.create",
            target_kind: "secret",
            target_id: &secret.id,
            target_name: name,
        }
        .record(&mut w.tx)
        .await?;
        w.commit_and_invalidate().await?;
        Ok(secret)
    }

    /// Finds a secret of an organization by id or by name.
    pub async fn find_secret(
        &self,
        organization_id: &str,
        id_or_name: &str,
    ) -> Result<Option<Secret>> {
        let mut conn = self.pool().acquire().await?;
        fetch(&mut conn, organization_id, id_or_name).await
    }

    /// Finds secrets of an organization by name: from the read cache when it
    /// holds them, else in one round trip.
    pub async fn find_secrets_by_name(
        &self,
        organization_id: &str,
        names: &[&str],
    ) -> Result<Vec<Arc<Secret>>> {
        let (mut secrets, names) = self.cache().secrets(organization_id, names);
        if names.is_empty() {
            return Ok(secrets);
        }
        // Out of line, as in `find_namespace_binding`.
        secrets.extend(Box::pin(self.load_secrets_by_name(organization_id, &names)).await?);
        Ok(secrets)
    }

    async fn load_secrets_by_name(
        &self,
        organization_id: &str,
        names: &[&str],
    ) -> Result<Vec<Arc<Secret>>> {
        let epoch = self.cache().epoch();
        let placeholders: Vec<String> = (0..names.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT {COLUMNS} FROM secrets WHERE organization_id = $1 AND name IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(organization_id.to_owned());
        for name in names {
            query = query.bind((*name).to_owned());
        }
        let rows = query.fetch_all(self.pool()).await?;
        let found = rows
            .iter()
            .map(|row| from_row(row).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        self.cache()
            .put_secrets(epoch, organization_id, names, &found);
        Ok(found)
    }

    /// A page of an organization's secrets by name (then id), and the
    /// cursor of the next page when more follow.
    pub async fn list_secrets(
        &self,
        organization_id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Secret>, Option<String>)> {
        // ("", "") sorts before every row.
        let (name, id): (String, String) = decode_cursor(LIST, cursor)?.unwrap_or_default();
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM secrets WHERE organization_id = $1 AND (name, id) > ($2, $3) \
             ORDER BY name, id LIMIT $4"
        ))
        .bind(organization_id.to_owned())
        .bind(name)
        .bind(id)
        .bind(fetch_limit(limit))
        .fetch_all(self.pool())
        .await?;
        let rows = rows
            .iter()
            .map(|row| from_row(row).map(|r| ((r.name.clone(), r.id.clone()), r)))
            .collect::<Result<Vec<_>>>()?;
        Ok(into_page(LIST, rows, limit))
    }

    /// Replaces a local secret's value; the version goes up by one.
    pub async fn rotate_secret(
        &self,
        organization_id: &str,
        id: &str,
        value: &SecretValue,
        fence: Option<Vec<String>>,
        keys: &KeyRing,
        actor: &str,
    ) -> Result<Secret> {
        let mut w = self.write().await?;
        let mut secret = fetch(&mut w.tx, organization_id, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("secret {id:?} not found")))?;
        if secret.remote().is_some() {
            return Err(StoreError::Invalid {
                field: "value",
                message: "a remote secret has no value here; change the value in its provider, or repoint it with provider_id, remote_path and remote_key".into(),
            });
        }
        let version = secret.version + 1;
        let sealed = keys.seal(
            value,
            Aad {
                organization_id,
                secret_id: &secret.id,
                version,
            },
        );
        let now = now_ms();
        update_sealed(&mut w.tx, &secret, version, &sealed, now).await?;
        if let Some(fence) = fence {
            set_fence(&mut w.tx, &mut secret, fence, actor).await?;
        }
        queue_rotation(&mut w.tx, &secret, version, &format!("rotated by {actor}")).await?;
        Change {
            organization_id: Some(organization_id),
            actor,
            action: "secret.rotate",
            target_kind: "secret",
            target_id: &secret.id,
            target_name: &secret.name,
        }
        .record(&mut w.tx)
        .await?;
        w.commit_and_invalidate().await?;
        secret.version = version;
        secret.updated_at = now;
        secret.content = SecretContent::Local(sealed);
        Ok(secret)
    }

    /// Points a remote secret somewhere else; the version goes up by one.
    pub async fn repoint_secret(
        &self,
        organization_id: &str,
        id: &str,
        changes: RemoteChanges,
        fence: Option<Vec<String>>,
        actor: &str,
    ) -> Result<Secret> {
        let mut w = self.write().await?;
        let mut secret = fetch(&mut w.tx, organization_id, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("secret {id:?} not found")))?;
        let Some(current) = secret.remote().cloned() else {
            return Err(StoreError::Invalid {
                field: "provider_id",
                message: "a local secret cannot be repointed; send {\"value\": …} to rotate it"
                    .into(),
            });
        };
        let remote = RemoteRef {
            provider_id: changes.provider_id.unwrap_or(current.provider_id),
            remote_path: changes.remote_path.unwrap_or(current.remote_path),
            remote_key: changes.remote_key.unwrap_or(current.remote_key),
        };
        ensure_provider(&mut w.tx, organization_id, &remote.provider_id).await?;
        let version = secret.version + 1;
        let now = now_ms();
        update_remote(&mut w.tx, &secret, version, &remote, now).await?;
        if let Some(fence) = fence {
            set_fence(&mut w.tx, &mut secret, fence, actor).await?;
        }
        queue_rotation(
            &mut w.tx,
            &secret,
            version,
            &format!("repointed by {actor}"),
        )
        .await?;
        Change {
            organization_id: Some(organization_id),
            actor,
            action: "secret.repoint",
            target_kind: "secret",
            target_id: &secret.id,
            target_name: &secret.name,
        }
        .record(&mut w.tx)
        .await?;
        w.commit_and_invalidate().await?;
        secret.version = version;
        secret.updated_at = now;
        secret.content = SecretContent::Remote(remote);
        Ok(secret)
    }

    /// A page of every organization's remote secrets, by id after
    /// `after`, with the provider version last seen for each.
    pub async fn remote_secrets(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(Secret, Option<String>)>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS}, remote_version FROM secrets \
             WHERE storage = 'remote' AND id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after.to_owned())
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| Ok((from_row(row)?, row.try_get("remote_version")?)))
            .collect()
    }

    /// Records the version a remote secret's provider reports. The first
    /// one seen is only kept. A different one makes a new version of the
    /// secret, audited and queued for restarts; the answer is that version.
    /// A secret repointed or rotated since it was read is left alone.
    pub async fn record_remote_version(
        &self,
        secret: &Secret,
        last_seen: Option<&str>,
        seen: &str,
        reason: &str,
    ) -> Result<Option<i64>> {
        let mut w = self.write().await?;
        let Some(last_seen) = last_seen else {
            sqlx::query("UPDATE secrets SET remote_version = $1 WHERE id = $2 AND version = $3")
                .bind(seen.to_owned())
                .bind(secret.id.clone())
                .bind(secret.version)
                .execute(&mut *w.tx)
                .await?;
            w.commit().await?;
            return Ok(None);
        };
        if last_seen == seen {
            return Ok(None);
        }
        let version = secret.version + 1;
        let updated = sqlx::query(
            "UPDATE secrets SET remote_version = $1, version = $2, updated_at = $3 \
             WHERE id = $4 AND version = $5 AND remote_version = $6",
        )
        .bind(seen.to_owned())
        .bind(version)
        .bind(now_ms())
        .bind(secret.id.clone())
        .bind(secret.version)
        .bind(last_seen.to_owned())
        .execute(&mut *w.tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(None);
        }
        queue_rotation(&mut w.tx, secret, version, reason).await?;
        Change {
            organization_id: Some(&secret.organization_id),
            actor: "rotation-detection",
            action: "secret.remote_rotation",
            target_kind: "secret",
            target_id: &secret.id,
            target_name: &secret.name,
        }
        .record(&mut w.tx)
        .await?;
        w.commit_and_invalidate().await?;
        Ok(Some(version))
    }

    /// Replaces a secret's namespace fence; the version stays, since no
    /// value changed. Nothing is written when the fence is the same.
    pub async fn fence_secret(
        &self,
        organization_id: &str,
        id: &str,
        fence: Vec<String>,
        actor: &str,
    ) -> Result<Secret> {
        let mut w = self.write().await?;
        let mut secret = fetch(&mut w.tx, organization_id, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("secret {id:?} not found")))?;
        if set_fence(&mut w.tx, &mut secret, fence, actor).await? {
            w.commit_and_invalidate().await?;
        }
        Ok(secret)
    }

    /// Deletes a secret. While anything references it, and `force` is not
    /// set, nothing is deleted and the answer is `Ok(Err(_))` with the first
    /// references and their total.
    pub async fn delete_secret(
        &self,
        organization_id: &str,
        id: &str,
        force: bool,
        actor: &str,
    ) -> Result<Result<Secret, InUse>> {
        let mut w = self.write().await?;
        let secret = fetch(&mut w.tx, organization_id, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("secret {id:?} not found")))?;
        // Before the references: writers of references lock the secret first too.
        if !hold_secret(&mut w.tx, &secret.id).await? {
            return Err(StoreError::NotFound(format!("secret {id:?} not found")));
        }
        let forced = match in_use(&mut w.tx, &secret).await? {
            Some(used) if !force => return Ok(Err(used)),
            Some(_) => true,
            None => false,
        };
        sqlx::query("DELETE FROM secret_references WHERE secret_id = $1")
            .bind(secret.id.clone())
            .execute(&mut *w.tx)
            .await?;
        sqlx::query("DELETE FROM secrets WHERE id = $1")
            .bind(secret.id.clone())
            .execute(&mut *w.tx)
            .await?;
        Change {
            organization_id: Some(organization_id),
            actor,
            action: if forced {
                "secret.delete.forced"
            } else {
                "secret.delete"
            },
            target_kind: "secret",
            target_id: &secret.id,
            target_name: &secret.name,
        }
        .record(&mut w.tx)
        .await?;
        w.commit_and_invalidate().await?;
        Ok(Ok(secret))
    }

    /// Re-wraps every data key that is not under the primary key. Returns how
    /// many were re-wrapped. Values themselves are not re-encrypted.
    pub async fn rewrap_all(&self, keys: &KeyRing) -> Result<u64> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM secrets WHERE storage = 'local' AND kek_id <> $1"
        ))
        .bind(keys.primary_id().to_owned())
        .fetch_all(self.pool())
        .await?;
        let mut count = 0;
        for row in &rows {
            let secret = from_row(row)?;
            let SecretContent::Local(sealed) = &secret.content else {
                continue;
            };
            let aad = Aad {
                organization_id: &secret.organization_id,
                secret_id: &secret.id,
                version: secret.version,
            };
            let Some(moved) = keys.rewrap(sealed, aad)? else {
                continue;
            };
            let mut w = self.write().await?;
            let updated = sqlx::query(
                "UPDATE secrets SET kek_id = $1, wrapped_dek = $2 \
                 WHERE id = $3 AND version = $4 AND kek_id = $5",
            )
            .bind(moved.kek_id.clone())
            .bind(moved.wrapped_dek.clone())
            .bind(secret.id.clone())
            .bind(secret.version)
            .bind(sealed.kek_id.clone())
            .execute(&mut *w.tx)
            .await?;
            w.commit_and_invalidate().await?;
            // A concurrent rotation already wrote under the primary key.
            count += updated.rows_affected();
        }
        Ok(count)
    }
}
