//! What the webhook and the API share in one process.

use std::sync::Arc;
use std::time::Duration;

use crate::api::AuthLimiter;
use crate::crypto::KeyRingHandle;
use crate::metrics::Metrics;
use crate::pull::PullSecrets;
use crate::resolve::Resolver;
use crate::store::Store;

/// Settings that shape request handling.
#[derive(Debug, Clone)]
pub struct Settings {
    pub admission_timeout: Duration,
    pub provider_timeout: Duration,
    /// Failed authentications allowed per source and minute (0: no limit).
    pub auth_failures_per_minute: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            admission_timeout: Duration::from_secs(5),
            provider_timeout: Duration::from_secs(3),
            auth_failures_per_minute: 10,
        }
    }
}

pub struct App {
    pub store: Store,
    pub keys: KeyRingHandle,
    pub resolver: Resolver,
    pub metrics: Metrics,
    pub settings: Settings,
    /// Writes image pull Secrets through the Kubernetes API.
    pub pull: PullSecrets,
    /// Failed API authentications per source address.
    pub auth_limiter: AuthLimiter,
}

impl App {
    pub fn new(
        store: Store,
        keys: KeyRingHandle,
        settings: Settings,
        pull: PullSecrets,
    ) -> Arc<Self> {
        let metrics = Metrics::new();
        let auth_limiter = AuthLimiter::new(settings.auth_failures_per_minute);
        Arc::new(Self {
            resolver: Resolver::new(
                store.clone(),
                keys.clone(),
                settings.provider_timeout,
                metrics.providers(),
            ),
            store,
            keys,
            metrics,
            settings,
            pull,
            auth_limiter,
        })
    }
}
