//! What the webhook and the API share in one process.

use std::sync::Arc;
use std::time::Duration;

use crate::admission::Delivery;
use crate::auth_limit::AuthLimiter;
use crate::cluster::Cluster;
use crate::crypto::KeyRingHandle;
use crate::metrics::Metrics;
use crate::resolve::{NetPolicy, Resolver, TokenFiles};
use crate::store::Store;

/// Settings that shape request handling.
#[derive(Debug, Clone)]
pub struct Settings {
    pub admission_timeout: Duration,
    pub provider_timeout: Duration,
    /// Failed authentications allowed per source and minute (0: no limit).
    pub auth_failures_per_minute: u32,
    /// Whether `/mutate` answers only callers with a verified client
    /// certificate (`--webhook-client-ca`).
    pub client_auth: bool,
    /// The delivery of a pod that does not name one.
    pub default_delivery: Delivery,
    /// Whether `env` delivery is allowed for a caller without a verified
    /// client certificate (`serve --dev` only).
    pub env_without_client_auth: bool,
    /// Bytes the webhook may hold at once across requests and answers.
    pub max_bytes_in_flight: usize,
    /// Most bytes of values one admission may inject.
    pub max_injected_bytes: usize,
    /// How long to keep serving after SIGTERM while `/readyz` says so.
    pub shutdown_delay: Duration,
    /// Which addresses providers may be reached at.
    pub provider_net: NetPolicy,
    /// The token files of Kubernetes and web identity logins.
    pub token_files: TokenFiles,
    /// What pods with delivery `exec` are given.
    pub exec: ExecSettings,
    /// The shortest time between two restarts of one workload after
    /// rotations.
    pub restart_min_interval: Duration,
    /// How often remote secrets' versions are read for rotation detection;
    /// `None`: never.
    pub rotation_poll_interval: Option<Duration>,
}

/// Delivery `exec`: where pods reach the exec listener, and with what.
#[derive(Debug, Clone)]
pub struct ExecSettings {
    /// Whether delivery `exec` is offered at all (`--exec-enabled`).
    pub enabled: bool,
    /// The exec listener's base URL as pods reach it.
    pub url: String,
    /// The CA pods trust for it; without one, `exec` delivery is refused.
    pub ca_pem: Option<String>,
    /// The image of the init container that installs the wrapper.
    pub image: String,
}

impl Default for ExecSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            url: "https://agyn-secrets.agyn-secrets.svc:8444".into(),
            ca_pem: None,
            image: concat!("ghcr.io/agyn/agyn-secrets:", env!("CARGO_PKG_VERSION")).into(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            admission_timeout: Duration::from_secs(5),
            provider_timeout: Duration::from_secs(3),
            auth_failures_per_minute: 10,
            client_auth: false,
            default_delivery: Delivery::Secret,
            env_without_client_auth: false,
            max_bytes_in_flight: 32 << 20,
            max_injected_bytes: 1 << 20,
            shutdown_delay: Duration::from_secs(5),
            provider_net: NetPolicy::default(),
            token_files: TokenFiles::default(),
            exec: ExecSettings::default(),
            restart_min_interval: Duration::from_secs(300),
            rotation_poll_interval: None,
        }
    }
}

pub struct App {
    pub store: Store,
    pub keys: KeyRingHandle,
    pub resolver: Resolver,
    pub metrics: Metrics,
    pub settings: Settings,
    /// Writes managed Secrets through the Kubernetes API.
    pub cluster: Arc<Cluster>,
    /// Failed API authentications per source address.
    pub auth_limiter: AuthLimiter,
    /// Set on SIGTERM: `/readyz` answers 503 while in-flight work finishes.
    pub draining: std::sync::atomic::AtomicBool,
}

impl App {
    pub fn new(
        store: Store,
        keys: KeyRingHandle,
        settings: Settings,
        cluster: Cluster,
    ) -> Arc<Self> {
        let metrics = Metrics::new();
        let auth_limiter = AuthLimiter::new(settings.auth_failures_per_minute);
        Arc::new(Self {
            resolver: Resolver::new(
                store.clone(),
                keys.clone(),
                settings.provider_timeout,
                metrics.providers(),
                settings.provider_net.clone(),
                settings.token_files.clone(),
            ),
            store,
            keys,
            metrics,
            settings,
            cluster: Arc::new(cluster),
            auth_limiter,
            draining: Default::default(),
        })
    }
}
