use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::Change;
use super::paging::{decode_cursor, fetch_limit, into_page};
use super::{Organization, Result, Store, conflict_on_unique, new_id, now_ms};

/// The name cursors of the organization list carry.
const LIST: &str = "organizations";

fn from_row(row: &AnyRow) -> Result<Organization> {
    Ok(Organization {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    pub async fn create_organization(&self, name: &str, actor: &str) -> Result<Organization> {
        let org = Organization {
            id: new_id(),
            name: name.to_owned(),
            created_at: now_ms(),
        };
        let mut w = self.write().await?;
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(org.id.clone())
            .bind(org.name.clone())
            .bind(org.created_at)
            .execute(&mut *w.tx)
            .await
            .map_err(|e| {
                conflict_on_unique(e, || format!("organization {name:?} already exists"))
            })?;
        Change {
            organization_id: Some(&org.id),
            actor,
            action: "organization.create",
            target_kind: "organization",
            target_id: &org.id,
            target_name: name,
        }
        .record(&mut w.tx)
        .await?;
        w.commit().await?;
        Ok(org)
    }

    /// Finds an organization by id or by name.
    pub async fn find_organization(&self, id_or_name: &str) -> Result<Option<Organization>> {
        if let Some(org) = self.cache().organization(id_or_name) {
            return Ok(Some(org));
        }
        // Out of line, as in `find_namespace_binding`.
        Box::pin(self.load_organization(id_or_name)).await
    }

    async fn load_organization(&self, id_or_name: &str) -> Result<Option<Organization>> {
        let epoch = self.cache().epoch();
        let row = sqlx::query(
            "SELECT id, name, created_at FROM organizations WHERE id = $1 OR name = $1 \
             ORDER BY CASE WHEN id = $1 THEN 0 ELSE 1 END LIMIT 1",
        )
        .bind(id_or_name.to_owned())
        .fetch_optional(self.pool())
        .await?;
        let org = row.as_ref().map(from_row).transpose()?;
        if let Some(org) = &org {
            self.cache().put_organization(epoch, id_or_name, org);
        }
        Ok(org)
    }

    /// A page of organizations by name (then id): all of them, or with
    /// `only` just that one. Returns the page and, when more follow, the
    /// cursor of the next.
    pub async fn list_organizations(
        &self,
        only: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Organization>, Option<String>)> {
        // ("", "") sorts before every row: the first page needs no other query.
        let (name, id): (String, String) = decode_cursor(LIST, cursor)?.unwrap_or_default();
        let sql = match only {
            None => {
                "SELECT id, name, created_at FROM organizations \
                 WHERE (name, id) > ($1, $2) ORDER BY name, id LIMIT $3"
            }
            Some(_) => {
                "SELECT id, name, created_at FROM organizations \
                 WHERE (name, id) > ($1, $2) AND id = $4 ORDER BY name, id LIMIT $3"
            }
        };
        let mut query = sqlx::query(sql)
            .bind(name)
            .bind(id)
            .bind(fetch_limit(limit));
        if let Some(only) = only {
            query = query.bind(only.to_owned());
        }
        let rows = query.fetch_all(self.pool()).await?;
        let rows = rows
            .iter()
            .map(|row| from_row(row).map(|org| ((org.name.clone(), org.id.clone()), org)))
            .collect::<Result<Vec<_>>>()?;
        Ok(into_page(LIST, rows, limit))
    }
}
