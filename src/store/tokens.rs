use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::audit::Change;
use super::paging::{decode_cursor, fetch_limit, into_page};
use super::{Result, Role, Store, StoreError, Token, now_ms};
use crate::crypto::SecretValue;

/// Every token starts with this prefix, which secret scanners can match on.
pub const TOKEN_PREFIX: &str = "agyn_";
const ID_LEN: usize = 32;
/// The name cursors of the token list carry.
const LIST: &str = "tokens";

/// SHA-256 of a token: what the database keeps instead of the token.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Splits `agyn_<id>_<secret>` into its id, without judging the secret.
fn token_id(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let id = rest.get(..ID_LEN)?;
    let tail = rest.get(ID_LEN..)?;
    (id.bytes().all(|b| b.is_ascii_hexdigit()) && tail.starts_with('_') && tail.len() > 1)
        .then_some(id)
}

fn from_row(row: &AnyRow) -> Result<Token> {
    let role: String = row.try_get("role")?;
    Ok(Token {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        name: row.try_get("name")?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown role {role:?}")))?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// Creates a token and returns it with its only plaintext copy.
    pub async fn create_token(
        &self,
        organization_id: Option<&str>,
        name: &str,
        role: Role,
        actor: &str,
    ) -> Result<(Token, SecretValue)> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut secret = Zeroizing::new([0u8; 32]);
        crate::crypto::fill_random(secret.as_mut_slice());
        let plaintext = SecretValue::new(format!(
            "{TOKEN_PREFIX}{id}_{}",
            URL_SAFE_NO_PAD.encode(secret.as_slice())
        ));
        let token = Token {
            id,
            organization_id: organization_id.map(str::to_owned),
            name: name.to_owned(),
            role,
            created_at: now_ms(),
        };
        let mut w = self.write().await?;
        sqlx::query(
            "INSERT INTO tokens (id, organization_id, name, role, token_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token.id.clone())
        .bind(token.organization_id.clone())
        .bind(token.name.clone())
        .bind(role.as_str())
        .bind(hash_token(plaintext.expose()).to_vec())
        .bind(token.created_at)
        .execute(&mut *w.tx)
        .await?;
        Change {
            organization_id,
            actor,
            action: "token.create",
            target_kind: "token",
            target_id: &token.id,
            target_name: name,
        }
        .record(&mut w.tx)
        .await?;
        w.commit().await?;
        Ok((token, plaintext))
    }

    /// The token that `presented` is, if any. The stored hash is compared in
    /// constant time, and a malformed token costs the same hash as a real one.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<Token>> {
        let presented_hash = hash_token(presented);
        let Some(id) = token_id(presented) else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT id, organization_id, name, role, token_hash, created_at FROM tokens WHERE id = $1",
        )
        .bind(id.to_owned())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stored: Vec<u8> = row.try_get("token_hash")?;
        if stored.ct_eq(&presented_hash).into() {
            from_row(&row).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A page of an organization's tokens (of the platform-admin tokens
    /// when `organization_id` is `None`), oldest first (then by id), and the
    /// cursor of the next page when more follow.
    pub async fn list_tokens(
        &self,
        organization_id: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Token>, Option<String>)> {
        let (created_at, id): (i64, String) =
            decode_cursor(LIST, cursor)?.unwrap_or((i64::MIN, String::new()));
        let owner = match organization_id {
            Some(_) => "organization_id = $4",
            None => "organization_id IS NULL",
        };
        let sql = format!(
            "SELECT id, organization_id, name, role, created_at FROM tokens \
             WHERE {owner} AND (created_at, id) > ($1, $2) \
             ORDER BY created_at, id LIMIT $3"
        );
        let mut query = sqlx::query(&sql)
            .bind(created_at)
            .bind(id)
            .bind(fetch_limit(limit));
        if let Some(organization_id) = organization_id {
            query = query.bind(organization_id.to_owned());
        }
        let rows = query.fetch_all(self.pool()).await?;
        let rows = rows
            .iter()
            .map(|row| from_row(row).map(|t| ((t.created_at, t.id.clone()), t)))
            .collect::<Result<Vec<_>>>()?;
        Ok(into_page(LIST, rows, limit))
    }

    pub async fn get_token(&self, organization_id: &str, id: &str) -> Result<Option<Token>> {
        let row = sqlx::query(
            "SELECT id, organization_id, name, role, created_at FROM tokens \
             WHERE organization_id = $1 AND id = $2",
        )
        .bind(organization_id.to_owned())
        .bind(id.to_owned())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Revokes a token of `organization_id`, or with `None` any token
    /// (the command line's `token revoke`, admin tokens included); false when
    /// there is no such token.
    pub async fn delete_token(
        &self,
        organization_id: Option<&str>,
        id: &str,
        actor: &str,
    ) -> Result<bool> {
        let mut w = self.write().await?;
        let row = sqlx::query("SELECT organization_id, name FROM tokens WHERE id = $1")
            .bind(id.to_owned())
            .fetch_optional(&mut *w.tx)
            .await?;
        let Some(row) = row else { return Ok(false) };
        let owner: Option<String> = row.try_get("organization_id")?;
        let name: String = row.try_get("name")?;
        if organization_id.is_some_and(|wanted| owner.as_deref() != Some(wanted)) {
            return Ok(false);
        }
        sqlx::query("DELETE FROM tokens WHERE id = $1")
            .bind(id.to_owned())
            .execute(&mut *w.tx)
            .await?;
        Change {
            organization_id: owner.as_deref(),
            actor,
            action: "token.revoke",
            target_kind: "token",
            target_id: id,
            target_name: &name,
        }
        .record(&mut w.tx)
        .await?;
        w.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids_are_parsed_strictly() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(token_id(&format!("agyn_{id}_secret")), Some(id));
        assert_eq!(token_id(&format!("agyn_{id}_")), None);
        assert_eq!(token_id(&format!("agyn_{id}")), None);
        assert_eq!(token_id("agyn_short_x"), None);
        assert_eq!(token_id(&format!("other_{id}_x")), None);
        assert_eq!(token_id("agyn_é"), None);
    }
}
