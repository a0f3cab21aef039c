//! A small JSON client of the product's API.

use serde_json::{Value, json};

use crate::{record_response, record_sent_values};

/// A small JSON client of the API.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: Option<String>,
    pub http: reqwest::Client,
}

/// A response: status and parsed body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Reply {
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text);
        self.body
    }

    #[track_caller]
    pub fn expect_ok(self) -> Value {
        assert!(
            (200..300).contains(&self.status),
            "status {}: {}",
            self.status,
            self.text
        );
        self.body
    }

    pub fn error_message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }

    /// The request field an error names.
    pub fn field(&self) -> Option<&str> {
        self.body["error"]["field"].as_str()
    }
}

impl Api {
    pub fn anonymous(mut self) -> Self {
        self.token = None;
        self
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let mut request = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            record_sent_values(&body);
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        record_response(method, path, status, &text);
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, body, text }
    }

    /// Creates a token in `org` and returns its value.
    pub async fn create_token(&self, org: &str, name: &str, role: &str) -> String {
        self.post(
            &format!("/v1/organizations/{org}/tokens"),
            json!({"name": name, "role": role}),
        )
        .await
        .expect(201)["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send("POST", path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send("PUT", path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send("PATCH", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send("DELETE", path, None).await
    }
}
// ---------------------------------------------------------------------------
// Lists: every list answers pages of `{"items": [...], "next_cursor": "..."}`.

impl Api {
    /// One page of the list at `path`, at most `limit` items, after `cursor`.
    pub async fn page(&self, path: &str, limit: usize, cursor: Option<&str>) -> Value {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut url = format!("{path}{separator}limit={limit}");
        if let Some(cursor) = cursor {
            // base64url: nothing to escape.
            url.push_str("&cursor=");
            url.push_str(cursor);
        }
        let page = self.get(&url).await.expect(200);
        let items = page["items"].as_array().expect("a page has items");
        assert!(items.len() <= limit, "{url}: {} items", items.len());
        page
    }

    /// Every item of the list at `path`, following `next_cursor` in pages of
    /// `limit`.
    pub async fn all_pages(&self, path: &str, limit: usize) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.page(path, limit, cursor.as_deref()).await;
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return items,
            }
            assert!(items.len() < 1_000_000, "{path}: the cursor never ends");
        }
    }
}
