use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::Change;
use super::paging::{decode_cursor, fetch_limit, into_page};
use super::{Provider, Result, Store, StoreError, conflict_on_unique, new_id, now_ms};

/// Most secrets named in the refusal to delete a provider they use.
const MAX_LISTED_USERS: usize = 50;

/// The name cursors of the providers list carry.
const LIST: &str = "providers";

const COLUMNS: &str =
    "id, organization_id, name, kind, settings, credential_secret, created_at, updated_at";

/// A provider to create, its settings already validated by its kind.
#[derive(Debug, Clone)]
pub struct NewProvider {
    pub name: String,
    pub kind: String,
    pub settings: serde_json::Map<String, serde_json::Value>,
    pub credential_secret: Option<String>,
}

/// A provider's new settings, validated by its kind, in full.
#[derive(Debug, Clone)]
pub struct ProviderChanges {
    pub settings: serde_json::Map<String, serde_json::Value>,
    pub credential_secret: Option<String>,
}

fn from_row(row: &AnyRow) -> Result<Provider> {
    let settings: String = row.try_get("settings")?;
    Ok(Provider {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        settings: serde_json::from_str(&settings)
            .map_err(|e| StoreError::Corrupt(format!("provider settings: {e}")))?,
        credential_secret: row.try_get("credential_secret")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn settings_json(settings: &serde_json::Map<String, serde_json::Value>) -> String {
    serde_json::to_string(settings).expect("settings serialize")
}

impl Store {
    pub async fn create_provider(
        &self,
        organization_id: &str,
        new: NewProvider,
        actor: &str,
    ) -> Result<Provider> {
        let now = now_ms();
        let provider = Provider {
            id: new_id(),
            organization_id: organization_id.to_owned(),
            name: new.name,
            kind: new.kind,
            settings: new.settings,
            credential_secret: new.credential_secret,
            created_at: now,
            updated_at: now,
        };
        let mut w = self.write().await?;
        sqlx::query(&format!(
            "INSERT INTO providers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(provider.id.clone())
        .bind(provider.organization_id.clone())
        .bind(provider.name.clone())
        .bind(provider.kind.clone())
        .bind(settings_json(&provider.settings))
        .bind(provider.credential_secret.clone())
        .bind(now)
        .bind(now)
        .execute(&mut *w.tx)
        .await
        .map_err(|e| {
            conflict_on_unique(e, || {
                format!(
                    "provider {:?} already exists in this organization",
                    provider.name
                )
            })
        })?;
        Change {
            organization_id: Some(organization_id),
            actor,
            action: "provider.create",
            target_kind: "provider",
            target_id: &provider.id,
            target_name: &provider.name,
        }
        .record(&mut w.tx)
        .await?;
        // Only providers that exist are cached, names are unique and an id
        // wins over a name: a new provider changes no cached answer.
        w.commit().await?;
        Ok(provider)
    }

    /// Finds a provider of an organization by id or by name.
    pub async fn find_provider(
        &self,
        organization_id: &str,
        id_or_name: &str,
    ) -> Result<Option<Provider>> {
        if let Some(provider) = self.cache().provider(organization_id, id_or_name) {
            return Ok(Some(provider));
        }
        let epoch = self.cache().epoch();
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM providers WHERE organization_id = $1 AND (id = $2 OR name = $2) \
             ORDER BY CASE WHEN id = $2 THEN 0 ELSE 1 END LIMIT 1"
        ))
        .bind(organization_id.to_owned())
        .bind(id_or_name.to_owned())
        .fetch_optional(self.pool())
        .await?;
        let provider = row.as_ref().map(from_row).transpose()?;
        if let Some(provider) = &provider {
            self.cache()
                .put_provider(epoch, organization_id, id_or_name, provider);
        }
        Ok(provider)
    }

    /// A page of an organization's providers by name (then id), and the
    /// cursor of the next page when more follow.
    pub async fn list_providers(
        &self,
        organization_id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Provider>, Option<String>)> {
        // ("", "") sorts before every row.
        let (name, id): (String, String) = decode_cursor(LIST, cursor)?.unwrap_or_default();
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM providers WHERE organization_id = $1 AND (name, id) > ($2, $3) \
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

    pub async fn update_provider(
        &self,
        organization_id: &str,
        id: &str,
        changes: ProviderChanges,
        actor: &str,
    ) -> Result<Provider> {
        let mut provider = self
            .find_provider(organization_id, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("provider {id:?} not found")))?;
        provider.settings = changes.settings;
        provider.credential_secret = changes.credential_secret;
        provider.updated_at = now_ms();
        let mut w = self.write().await?;
        sqlx::query(
            "UPDATE providers SET settings = $1, credential_secret = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(settings_json(&provider.settings))
        .bind(provider.credential_secret.clone())
        .bind(provider.updated_at)
        .bind(provider.id.clone())
        .execute(&mut *w.tx)
        .await?;
        Change {
            organization_id: Some(organization_id),
            actor,
            action: "provider.update",
            target_kind: "provider",
            target_id: &provider.id,
            target_name: &provider.name,
        }
        .record(&mut w.tx)
        .await?;
        w.commit_and_invalidate().await?;
        Ok(provider)
    }

    /// Deletes a provider; refused while secrets use it.
    pub async fn delete_provider(
        &self,
        organization_id: &str,
        id: &str,
        actor: &str,
    ) -> Result<Provider> {
        let provider = self
            .find_provider(organization_id, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("provider {id:?} not found")))?;
        let mut w = self.write().await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM secrets WHERE provider_id = $1")
            .bind(provider.id.clone())
            .fetch_one(&mut *w.tx)
            .await?;
        if total > 0 {
            let listed = i64::try_from(MAX_LISTED_USERS).expect("a small constant");
            let users: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM secrets WHERE provider_id = $1 ORDER BY name LIMIT $2",
            )
            .bind(provider.id.clone())
            .bind(listed)
            .fetch_all(&mut *w.tx)
            .await?;
            let names = users
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            let users = if total > listed {
                format!("{total} secrets, the first {listed} by name: {names}")
            } else {
                format!("secrets {names}")
            };
            return Err(StoreError::Conflict(format!(
                "provider {:?} is used by {users}; repoint or delete them first",
                provider.name
            )));
        }
        sqlx::query("DELETE FROM providers WHERE id = $1")
            .bind(provider.id.clone())
            .execute(&mut *w.tx)
            .await?;
        Change {
            organization_id: Some(organization_id),
            actor,
            action: "provider.delete",
            target_kind: "provider",
            target_id: &provider.id,
            target_name: &provider.name,
        }
        .record(&mut w.tx)
        .await?;
        w.commit_and_invalidate().await?;
        Ok(provider)
    }
}
