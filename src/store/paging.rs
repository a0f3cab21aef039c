//! Pages. Every list of the store is read in keyset pages: a stable order that
//! ends in a unique column, and a cursor that holds the last row's sort key, so
//! that the next page starts right after it whatever was added or removed in
//! between. A page is one query with `LIMIT limit + 1`; the extra row only says
//! whether more follow.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Result, StoreError};

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
