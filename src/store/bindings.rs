use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::Change;
use super::paging::{decode_cursor, fetch_limit, into_page};
use super::{NamespaceBinding, Result, Store, now_ms};

/// The name cursors of the binding list carry.
const LIST: &str = "namespaces";

fn from_row(row: &AnyRow) -> Result<NamespaceBinding> {
    Ok(NamespaceBinding {
        namespace: row.try_get("namespace")?,
        organization_id: row.try_get("organization_id")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// Binds a namespace to an organization, replacing an earlier binding.
    /// Returns the binding and whether it is new.
    pub async fn bind_namespace(
        &self,
        namespace: &str,
        organization_id: &str,
        actor: &str,
    ) -> Result<(NamespaceBinding, bool)> {
        let mut w = self.write().await?;
        let existing = sqlx::query(
            "SELECT namespace, organization_id, created_at FROM namespace_bindings WHERE namespace = $1",
        )
        .bind(namespace.to_owned())
        .fetch_optional(&mut *w.tx)
        .await?;
        let existing = existing.as_ref().map(from_row).transpose()?;
        if let Some(binding) = &existing
            && binding.organization_id == organization_id
        {
            return Ok((binding.clone(), false));
        }
        let binding = NamespaceBinding {
            namespace: namespace.to_owned(),
            organization_id: organization_id.to_owned(),
            created_at: now_ms(),
        };
        sqlx::query(
            "INSERT INTO namespace_bindings (namespace, organization_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (namespace) DO UPDATE SET organization_id = excluded.organization_id, \
             created_at = excluded.created_at",
        )
        .bind(binding.namespace.clone())
        .bind(binding.organization_id.clone())
        .bind(binding.created_at)
        .execute(&mut *w.tx)
        .await?;
        Change {
            organization_id: Some(organization_id),
            actor,
            action: "namespace.bind",
            target_kind: "namespace",
            target_id: namespace,
            target_name: namespace,
        }
        .record(&mut w.tx)
        .await?;
        w.commit_and_invalidate().await?;
        Ok((binding, existing.is_none()))
    }

    pub async fn find_namespace_binding(
        &self,
        namespace: &str,
    ) -> Result<Option<NamespaceBinding>> {
        if let Some(cached) = self.cache().binding(namespace) {
            return Ok(cached);
        }
        // Out of line: the query's state would otherwise enlarge every
        // caller's future, which an admission moves and mostly never needs.
        Box::pin(self.load_namespace_binding(namespace)).await
    }

    async fn load_namespace_binding(&self, namespace: &str) -> Result<Option<NamespaceBinding>> {
        let epoch = self.cache().epoch();
        let row = sqlx::query(
            "SELECT namespace, organization_id, created_at FROM namespace_bindings WHERE namespace = $1",
        )
        .bind(namespace.to_owned())
        .fetch_optional(self.pool())
        .await?;
        let binding = row.as_ref().map(from_row).transpose()?;
        self.cache().put_binding(epoch, namespace, binding.clone());
        Ok(binding)
    }

    /// A page of the bindings by namespace, and the cursor of the next page
    /// when more follow.
    pub async fn page_namespace_bindings(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<NamespaceBinding>, Option<String>)> {
        // "" sorts before every namespace.
        let after: String = decode_cursor(LIST, cursor)?.unwrap_or_default();
        let rows = sqlx::query(
            "SELECT namespace, organization_id, created_at FROM namespace_bindings \
             WHERE namespace > $1 ORDER BY namespace LIMIT $2",
        )
        .bind(after)
        .bind(fetch_limit(limit))
        .fetch_all(self.pool())
        .await?;
        let rows = rows
            .iter()
            .map(|row| from_row(row).map(|b| (b.namespace.clone(), b)))
            .collect::<Result<Vec<_>>>()?;
        Ok(into_page(LIST, rows, limit))
    }

    /// Every binding, for the clean-up of managed Secrets.
    pub async fn list_namespace_bindings(&self) -> Result<Vec<NamespaceBinding>> {
        let rows = sqlx::query(
            "SELECT namespace, organization_id, created_at FROM namespace_bindings ORDER BY namespace",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Removes a binding; false when the namespace was not bound.
    pub async fn unbind_namespace(&self, namespace: &str, actor: &str) -> Result<bool> {
        let mut w = self.write().await?;
        let organization_id: Option<String> = sqlx::query_scalar(
            "SELECT organization_id FROM namespace_bindings WHERE namespace = $1",
        )
        .bind(namespace.to_owned())
        .fetch_optional(&mut *w.tx)
        .await?;
        let Some(organization_id) = organization_id else {
            return Ok(false);
        };
        sqlx::query("DELETE FROM namespace_bindings WHERE namespace = $1")
            .bind(namespace.to_owned())
            .execute(&mut *w.tx)
            .await?;
        Change {
            organization_id: Some(&organization_id),
            actor,
            action: "namespace.unbind",
            target_kind: "namespace",
            target_id: namespace,
            target_name: namespace,
        }
        .record(&mut w.tx)
        .await?;
        w.commit_and_invalidate().await?;
        Ok(true)
    }
}
