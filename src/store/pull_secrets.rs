use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::audit::Change;
use super::paging::{decode_cursor, fetch_limit, into_page};
use super::{ImagePullSecret, Result, Store, StoreError, conflict_on_unique, new_id, now_ms};

/// The name cursors of the image pull secrets list carry.
const LIST: &str = "image-pull-secrets";

const COLUMNS: &str =
    "id, organization_id, name, registry, username, password_secret, created_at, updated_at";

#[derive(Debug, Clone)]
pub struct NewImagePullSecret {
    pub name: String,
    pub registry: String,
    pub username: String,
    pub password_secret: String,
}

fn from_row(row: &AnyRow) -> Result<ImagePullSecret> {
    Ok(ImagePullSecret {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        name: row.try_get("name")?,
        registry: row.try_get("registry")?,
        username: row.try_get("username")?,
        password_secret: row.try_get("password_secret")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Checks that the organization has the secret `name` that holds the
/// registry password.
async fn ensure_password_secret(
    conn: &mut AnyConnection,
    organization_id: &str,
    name: &str,
) -> Result<()> {
    let password: Option<String> =
        sqlx::query_scalar("SELECT id FROM secrets WHERE organization_id = $1 AND name = $2")
            .bind(organization_id.to_owned())
            .bind(name.to_owned())
            .fetch_optional(conn)
            .await?;
    if password.is_none() {
        return Err(StoreError::Invalid {
            field: "password_secret",
            message: format!("no secret {name:?} in this organization"),
        });
    }
    Ok(())
}

/// Inserts a new image pull secret's row; a name the organization already
/// uses is a conflict.
async fn insert(conn: &mut AnyConnection, record: &ImagePullSecret) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO image_pull_secrets ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ))
    .bind(record.id.clone())
    .bind(record.organization_id.clone())
    .bind(record.name.clone())
    .bind(record.registry.clone())
    .bind(record.username.clone())
    .bind(record.password_secret.clone())
    .bind(record.created_at)
    .bind(record.updated_at)
    .execute(conn)
    .await
    .map_err(|e| {
        conflict_on_unique(e, || {
            format!(
                "image pull secret {:?} already exists in this organization",
                record.name
            )
        })
    })?;
    Ok(())
}

impl Store {
    pub async fn create_image_pull_secret(
        &self,
        organization_id: &str,
        new: NewImagePullSecret,
        actor: &str,
    ) -> Result<ImagePullSecret> {
        let now = now_ms();
        let record = ImagePullSecret {
            id: new_id(),
            organization_id: organization_id.to_owned(),
            name: new.name,
            registry: new.registry,
            username: new.username,
            password_secret: new.password_secret,
            created_at: now,
            updated_at: now,
        };
        let mut w = self.write().await?;
        ensure_password_secret(&mut w.tx, organization_id, &record.password_secret).await?;
        insert(&mut w.tx, &record).await?;
        Change {
            organization_id: Some(organization_id),
            actor,
            action: "image_pull_secret.create",
            target_kind: "image_pull_secret",
            target_id: &record.id,
            target_name: &record.name,
        }
        .record(&mut w.tx)
        .await?;
        w.commit().await?;
        Ok(record)
    }

    /// Finds an image pull secret of an organization by id or by name.
    pub async fn find_image_pull_secret(
        &self,
        organization_id: &str,
        id_or_name: &str,
    ) -> Result<Option<ImagePullSecret>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM image_pull_secrets WHERE organization_id = $1 AND (id = $2 OR name = $2) \
             ORDER BY CASE WHEN id = $2 THEN 0 ELSE 1 END LIMIT 1"
        ))
        .bind(organization_id.to_owned())
        .bind(id_or_name.to_owned())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A page of an organization's image pull secrets by name (then id), and the
    /// cursor of the next page when more follow.
    pub async fn list_image_pull_secrets(
        &self,
        organization_id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ImagePullSecret>, Option<String>)> {
        // ("", "") sorts before every row.
        let (name, id): (String, String) = decode_cursor(LIST, cursor)?.unwrap_or_default();
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM image_pull_secrets WHERE organization_id = $1 AND (name, id) > ($2, $3) \
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

    pub async fn delete_image_pull_secret(
        &self,
        organization_id: &str,
        id: &str,
        actor: &str,
    ) -> Result<ImagePullSecret> {
        let record = self
            .find_image_pull_secret(organization_id, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("image pull secret {id:?} not found")))?;
        let mut w = self.write().await?;
        sqlx::query("DELETE FROM image_pull_secrets WHERE id = $1")
            .bind(record.id.clone())
            .execute(&mut *w.tx)
            .await?;
        Change {
            organization_id: Some(organization_id),
            actor,
            action: "image_pull_secret.delete",
            target_kind: "image_pull_secret",
            target_id: &record.id,
            target_name: &record.name,
        }
        .record(&mut w.tx)
        .await?;
        w.commit().await?;
        Ok(record)
    }
}
