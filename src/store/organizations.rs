use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::Change;
use super::{Organization, Result, Store, StoreError, conflict_on_unique, new_id, now_ms};

// ---------------------------------------------------------------------------
// Pages. Every list of the store is read in keyset pages: a stable order that
// ends in a unique column, and a cursor that holds the last row's sort key, so
// that the next page starts right after it whatever was added or removed in
// between. A page is one query with `LIMIT limit + 1`; the extra row only says
// whether more follow.

/// Longest cursor accepted; the longest real one (a reference's) is shorter.
const MAX_CURSOR_LEN: usize = 4096;

/// Why a cursor is refused. It never repeats the cursor.
const BAD_CURSOR: &str = "is not a cursor of this list; pass the next_cursor of the previous \
                          page unchanged, or leave it out to start at the first page";

/// What a cursor holds: the list it was made for and the sort key of the last
/// row of its page. Clients get it as base64url of this JSON and treat it as
/// opaque.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CursorBody<K> {
    #[serde(rename = "l")]
    list: String,
    #[serde(rename = "k")]
    key: K,
}

/// The cursor of a page that ended at `key`.
pub(super) fn encode_cursor<K: Serialize>(list: &str, key: &K) -> String {
    let body = CursorBody {
        list: list.to_owned(),
        key,
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).expect("a sort key serializes"))
}

/// The sort key a cursor of `list` holds; `None` (or an empty cursor) starts
/// at the beginning. Anything else is refused, without repeating it: the
/// cursor only ever positions within the list the caller is reading.
pub(super) fn decode_cursor<K: DeserializeOwned>(
    list: &str,
    cursor: Option<&str>,
) -> Result<Option<K>> {
    let Some(cursor) = cursor.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let invalid = || StoreError::Invalid {
        field: "cursor",
        message: BAD_CURSOR.into(),
    };
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let body: CursorBody<K> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if body.list != list {
        return Err(invalid());
    }
    Ok(Some(body.key))
}

/// Turns the rows of a `LIMIT limit + 1` query, each with its sort key, into
/// a page of at most `limit` items and the cursor of the next page when more
/// follow.
pub(super) fn into_page<K: Serialize, T>(
    list: &str,
    mut rows: Vec<(K, T)>,
    limit: usize,
) -> (Vec<T>, Option<String>) {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = match rows.last() {
        Some((key, _)) if more => Some(encode_cursor(list, key)),
        _ => None,
    };
    (rows.into_iter().map(|(_, item)| item).collect(), next)
}

/// The `LIMIT` of a page query: one row more than the page holds.
pub(super) fn fetch_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1
}

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
