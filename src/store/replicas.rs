//! Keeping the read caches of several replicas on one PostgreSQL database
//! in step.
//!
//! Each replica holds one listening connection whose `application_name` is
//! `agyn-secrets-listener:<replica id>`, so `pg_stat_activity` shows exactly
//! which replicas can hear about changes. A write sends
//! `NOTIFY agyn_secrets_changes '<token>'` in its transaction and, after
//! commit, waits until every other listening replica answers
//! `NOTIFY agyn_secrets_acks '<token>:<replica>'`, which each sends right after
//! clearing its cache. So when the API answers a write, every replica has
//! already forgotten the old value. A replica turns its cache off whenever its
//! listening connection is down; a replica that dies drops its connection,
//! and writers stop waiting for it.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{Any, Transaction};

use super::{Result, Store, cache::Cache};

const CHANGES: &str = "agyn_secrets_changes";
const ACKS: &str = "agyn_secrets_acks";
const LISTENER_NAME: &str = "agyn-secrets-listener:";
/// How long a write waits for the other replicas' acknowledgements.
const ACK_WAIT: Duration = Duration::from_secs(2);

/// A write's wait for the other replicas.
pub(super) struct Waiter {
    token: String,
    cache: Arc<Cache>,
    rx: tokio::sync::oneshot::Receiver<()>,
}

impl Waiter {
    pub async fn wait(self) {
        if tokio::time::timeout(ACK_WAIT, self.rx).await.is_err() {
            self.cache.forget(&self.token);
            tracing::warn!(
                "Not every replica acknowledged a change in time; a slow one may serve a cached value for a moment"
            );
        }
    }
}

/// Inside a write transaction: notes the listening replicas and sends the
/// change notification (delivered at commit).
pub(super) async fn announce(store: &Store, tx: &mut Transaction<'static, Any>) -> Result<Waiter> {
    let token = uuid::Uuid::new_v4().simple().to_string();
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE $1",
    )
    .bind(format!("{LISTENER_NAME}%"))
    .fetch_all(&mut **tx)
    .await?;
    let others: HashSet<String> = names
        .iter()
        .filter_map(|n| n.strip_prefix(LISTENER_NAME))
        .filter(|id| **id != *store.replica_id)
        .map(str::to_owned)
        .collect();
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANGES)
        .bind(token.clone())
        .execute(&mut **tx)
        .await?;
    let rx = store.cache.wait_for_acks(&token, others);
    Ok(Waiter {
        token,
        cache: store.cache.clone(),
        rx,
    })
}

/// Listens for changes until aborted; the cache is on only while listening.
pub(super) async fn keep_in_sync(store: Store) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let connected = async {
            let options = PgConnectOptions::from_str(&store.url)?
                .application_name(&format!("{LISTENER_NAME}{}", store.replica_id));
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_lazy_with(options);
            let mut listener = PgListener::connect_with(&pool).await?;
            // Report a lost connection at once (the cache goes off) instead of
            // reconnecting inside try_recv for up to the pool's 30 s timeout.
            listener.eager_reconnect(false);
            listener.listen_all([CHANGES, ACKS]).await?;
            Ok::<_, sqlx::Error>(listener)
        }
        .await;
        let mut listener = match connected {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "Cannot listen for changes; read cache off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        store.cache.set_enabled(true);
        tracing::info!("Listening for changes from other replicas; read cache on");
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) if notification.channel() == CHANGES => {
                    store.cache.invalidate();
                    acknowledge(&store, notification.payload());
                }
                Ok(Some(notification)) => {
                    if let Some((token, replica)) = notification.payload().split_once(':') {
                        store.cache.acked(token, replica);
                    }
                }
                Ok(None) | Err(_) => {
                    store.cache.set_enabled(false);
                    tracing::warn!(
                        "Change listener disconnected; read cache off until it reconnects"
                    );
                    break;
                }
            }
        }
    }
}

fn acknowledge(store: &Store, token: &str) {
    let payload = format!("{token}:{}", store.replica_id);
    let pool = store.pool().clone();
    tokio::spawn(async move {
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(ACKS)
            .bind(payload)
            .execute(&pool)
            .await;
        if let Err(error) = sent {
            tracing::warn!(%error, "Cannot acknowledge a change");
        }
    });
}
