//! Prometheus metrics. Labels carry routes, results, error kinds and
//! provider names; never a value and never a secret name.

use std::borrow::Cow;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub server: &'static str,
    pub method: Cow<'static, str>,
    pub route: Cow<'static, str>,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub delivery: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RestartLabels {
    pub kind: &'static str,
    pub result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderErrorLabels {
    pub provider: String,
    pub kind: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The provider metrics, shared with the resolver: requests, errors by kind,
/// latency, logins and renewals, each labelled `<organization>/<provider>`.
#[derive(Clone)]
pub struct ProviderMetrics {
    pub requests: Family<ProviderLabels, Counter>,
    pub errors: Family<ProviderErrorLabels, Counter>,
    pub duration: HistogramFamily<ProviderLabels>,
    pub logins: Family<ProviderLabels, Counter>,
    pub renewals: Family<ProviderLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    // 0.1 ms to about 6.5 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub admissions: Family<ResultLabels, Counter>,
    pub admission_duration: HistogramFamily<ResultLabels>,
    pub resolutions: Family<DeliveryLabels, Counter>,
    pub resolution_errors: Family<KindLabels, Counter>,
    pub decrypt_failures: Counter,
    /// Rollouts after rotations, by workload kind and how they ended.
    pub workload_restarts: Family<RestartLabels, Counter>,
    pub keyring_healthy: Gauge,
    pub provider_requests: Family<ProviderLabels, Counter>,
    pub provider_errors: Family<ProviderErrorLabels, Counter>,
    pub provider_duration: HistogramFamily<ProviderLabels>,
    pub provider_logins: Family<ProviderLabels, Counter>,
    pub provider_renewals: Family<ProviderLabels, Counter>,
    pub auth_failures: Counter,
    /// Webhook requests refused because the byte budget was spent.
    pub busy: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("agyn");
        let metrics = Self {
            http_requests: Family::default(),
            admissions: Family::default(),
            admission_duration: Family::new_with_constructor(latency_histogram),
            resolutions: Family::default(),
            resolution_errors: Family::default(),
            decrypt_failures: Counter::default(),
            workload_restarts: Family::default(),
            keyring_healthy: Gauge::default(),
            provider_requests: Family::default(),
            provider_errors: Family::default(),
            provider_duration: Family::new_with_constructor(latency_histogram),
            provider_logins: Family::default(),
            provider_renewals: Family::default(),
            auth_failures: Counter::default(),
            busy: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by server, route and status",
            metrics.http_requests.clone(),
        );
        registry.register(
            "admissions",
            "Admission reviews by result",
            metrics.admissions.clone(),
        );
        registry.register(
            "admission_duration_seconds",
            "Time to answer an admission review",
            metrics.admission_duration.clone(),
        );
        registry.register(
            "resolutions",
            "Admissions that resolved values, dry runs included, by delivery",
            metrics.resolutions.clone(),
        );
        registry.register(
            "resolution_errors",
            "Secrets that could not be resolved, by kind of error",
            metrics.resolution_errors.clone(),
        );
        registry.register(
            "decrypt_failures",
            "Stored values that failed to decrypt",
            metrics.decrypt_failures.clone(),
        );
        registry.register(
            "workload_restarts",
            "Workload rollouts after rotations, by kind and result (restarted, skipped, failed)",
            metrics.workload_restarts.clone(),
        );
        registry.register(
            "keyring_healthy",
            "1 while the key ring directory loads cleanly, 0 while the last good ring is kept",
            metrics.keyring_healthy.clone(),
        );
        registry.register(
            "provider_requests",
            "Requests to secret providers",
            metrics.provider_requests.clone(),
        );
        registry.register(
            "provider_errors",
            "Failed provider requests by kind",
            metrics.provider_errors.clone(),
        );
        registry.register(
            "provider_request_duration_seconds",
            "Latency of provider requests",
            metrics.provider_duration.clone(),
        );
        registry.register(
            "provider_logins",
            "Logins to secret providers",
            metrics.provider_logins.clone(),
        );
        registry.register(
            "provider_renewals",
            "Provider token renewals",
            metrics.provider_renewals.clone(),
        );
        registry.register(
            "webhook_busy",
            "Webhook requests answered 503 because the bytes in flight reached --max-bytes-in-flight",
            metrics.busy.clone(),
        );
        registry.register(
            "auth_failures",
            "Rejected API credentials",
            metrics.auth_failures.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// Handles on the provider metrics; they share state with this registry.
    pub fn providers(&self) -> ProviderMetrics {
        ProviderMetrics {
            requests: self.provider_requests.clone(),
            errors: self.provider_errors.clone(),
            duration: self.provider_duration.clone(),
            logins: self.provider_logins.clone(),
            renewals: self.provider_renewals.clone(),
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("write to a String");
        out
    }
}
