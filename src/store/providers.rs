use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::Change;
use super::organizations::{decode_cursor, fetch_limit, into_page};
use super::{
    Provider, ProviderAuth, Result, Store, StoreError, conflict_on_unique, new_id, now_ms,
};

/// Most secrets named in the refusal to delete a provider they use.
const MAX_LISTED_USERS: usize = 50;

/// The name cursors of the providers list carry.
const LIST: &str = "providers";

const COLUMNS: &str =
    "id, organization_id, name, kind, address, namespace, ca_pem, auth, created_at, updated_at";

#[derive(Debug, Clone)]
pub struct NewProvider {
    pub name: String,
    pub kind: String,
    pub address: String,
    pub namespace: Option<String>,
    pub ca_pem: Option<String>,
    pub auth: ProviderAuth,
}

/// A change to a provider; absent fields stay as they are. `Some(None)`
/// clears an optional field.
#[derive(Debug, Clone, Default)]
pub struct ProviderChanges {
    pub address: Option<String>,
    pub namespace: Option<Option<String>>,
    pub ca_pem: Option<Option<String>>,
    pub auth: Option<ProviderAuth>,
}

fn from_row(row: &AnyRow) -> Result<Provider> {
    let auth: String = row.try_get("auth")?;
    Ok(Provider {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        address: row.try_get("address")?,
        namespace: row.try_get("namespace")?,
        ca_pem: row.try_get("ca_pem")?,
        auth: serde_json::from_str(&auth)
            .map_err(|e| StoreError::Corrupt(format!("provider auth: {e}")))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn auth_json(auth: &ProviderAuth) -> String {
    serde_json::to_string(auth).expect("provider auth serializes")
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
            address: new.address,
            namespace: new.namespace,
            ca_pem: new.ca_pem,
            auth: new.auth,
            created_at: now,
            updated_at: now,
        };
        let mut w = self.write().await?;
        sqlx::query(&format!(
            "INSERT INTO providers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(provider.id.clone())
        .bind(provider.organization_id.clone())
        .bind(provider.name.clone())
        .bind(provider.kind.clone())
        .bind(provider.address.clone())
        .bind(provider.namespace.clone())
        .bind(provider.ca_pem.clone())
        .bind(auth_json(&provider.auth))
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
        if let Some(address) = changes.address {
            provider.address = address;
        }
        if let Some(namespace) = changes.namespace {
            provider.namespace = namespace;
        }
        if let Some(ca_pem) = changes.ca_pem {
            provider.ca_pem = ca_pem;
        }
        if let Some(auth) = changes.auth {
            provider.auth = auth;
        }
        provider.updated_at = now_ms();
        let mut w = self.write().await?;
        sqlx::query(
            "UPDATE providers SET address = $1, namespace = $2, ca_pem = $3, auth = $4, updated_at = $5 \
             WHERE id = $6",
        )
        .bind(provider.address.clone())
        .bind(provider.namespace.clone())
        .bind(provider.ca_pem.clone())
        .bind(auth_json(&provider.auth))
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
