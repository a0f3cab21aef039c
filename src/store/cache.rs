//! A read cache for the admission path: namespace bindings, organizations
//! and secrets by name, so that an admission whose secrets have not changed
//! pays no database round trip.
//!
//! Every write that changes a cached table clears the cache after it commits;
//! on PostgreSQL the other replicas are told too (see `replicas`). While a
//! replica cannot hear about changes, it bypasses its cache entirely.
//!
//! Readers note the cache epoch before they read the database and insert
//! only if no invalidation happened since, so a value read just before a
//! write can never be put back after the write cleared it.

use std::collections::{HashMap, HashSet};

use foldhash::HashMap as FastMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::{NamespaceBinding, Organization, Provider, Secret};

/// The maps use a fast, randomly seeded hash: every admission makes a
/// dozen lookups, and SipHash was a visible part of its cost.
#[derive(Default)]
struct Entries {
    epoch: u64,
    bindings: FastMap<String, Option<NamespaceBinding>>,
    organizations: FastMap<String, Organization>,
    /// Organization id → secret name → the secret, or `None` when absent.
    secrets: FastMap<String, FastMap<String, Option<Arc<Secret>>>>,
    /// Organization id → provider id or name → the provider (remote
    /// secrets look theirs up at every admission).
    providers: FastMap<String, FastMap<String, Provider>>,
}

/// The replicas a writer still waits for, and how to wake it.
type AckWaiter = (HashSet<String>, tokio::sync::oneshot::Sender<()>);

#[derive(Default)]
pub struct Cache {
    enabled: AtomicBool,
    entries: RwLock<Entries>,
    /// Writers waiting for other replicas to acknowledge a change.
    waiters: Mutex<HashMap<String, AckWaiter>>,
}

/// Entries kept at most per map; a full map is cleared.
const MAX_ENTRIES: usize = 100_000;

impl Cache {
    pub fn set_enabled(&self, enabled: bool) {
        if !enabled {
            self.enabled.store(false, Ordering::SeqCst);
        }
        self.invalidate();
        if enabled {
            self.enabled.store(true, Ordering::SeqCst);
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::SeqCst)
    }

    /// Clears every entry.
    pub fn invalidate(&self) {
        let mut entries = self.entries.write().expect("lock poisoned");
        let epoch = entries.epoch + 1;
        *entries = Entries {
            epoch,
            ..Entries::default()
        };
    }

    /// Registers a writer that waits for `replicas` to acknowledge the
    /// change `token`.
    pub fn wait_for_acks(
        &self,
        token: &str,
        replicas: HashSet<String>,
    ) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if replicas.is_empty() {
            let _ = tx.send(());
        } else {
            self.waiters
                .lock()
                .expect("lock poisoned")
                .insert(token.to_owned(), (replicas, tx));
        }
        rx
    }

    /// Replica `replica` has cleared its cache for change `token`.
    pub fn acked(&self, token: &str, replica: &str) {
        let mut waiters = self.waiters.lock().expect("lock poisoned");
        let done = match waiters.get_mut(token) {
            Some((pending, _)) => {
                pending.remove(replica);
                pending.is_empty()
            }
            None => false,
        };
        if done && let Some((_, tx)) = waiters.remove(token) {
            let _ = tx.send(());
        }
    }

    /// Forgets a writer that stopped waiting.
    pub fn forget(&self, token: &str) {
        self.waiters.lock().expect("lock poisoned").remove(token);
    }

    /// The epoch a reader must quote to insert what it reads next, or `None`
    /// while the cache is off.
    pub fn epoch(&self) -> Option<u64> {
        self.is_enabled()
            .then(|| self.entries.read().expect("lock poisoned").epoch)
    }

    pub fn binding(&self, namespace: &str) -> Option<Option<NamespaceBinding>> {
        if !self.is_enabled() {
            return None;
        }
        self.entries
            .read()
            .expect("lock poisoned")
            .bindings
            .get(namespace)
            .cloned()
    }

    pub fn organization(&self, key: &str) -> Option<Organization> {
        if !self.is_enabled() {
            return None;
        }
        self.entries
            .read()
            .expect("lock poisoned")
            .organizations
            .get(key)
            .cloned()
    }

    pub fn provider(&self, organization_id: &str, key: &str) -> Option<Provider> {
        if !self.is_enabled() {
            return None;
        }
        self.entries
            .read()
            .expect("lock poisoned")
            .providers
            .get(organization_id)?
            .get(key)
            .cloned()
    }

    /// The cached secrets of `names`, and the names that are not cached.
    pub fn secrets<'a>(
        &self,
        organization_id: &str,
        names: &[&'a str],
    ) -> (Vec<Arc<Secret>>, Vec<&'a str>) {
        if !self.is_enabled() {
            return (Vec::new(), names.to_vec());
        }
        let entries = self.entries.read().expect("lock poisoned");
        let Some(org) = entries.secrets.get(organization_id) else {
            return (Vec::new(), names.to_vec());
        };
        let mut found = Vec::with_capacity(names.len());
        let mut missing = Vec::new();
        for name in names {
            match org.get(*name) {
                Some(Some(secret)) => found.push(secret.clone()),
                Some(None) => {}
                None => missing.push(*name),
            }
        }
        (found, missing)
    }

    fn insert(&self, epoch: Option<u64>, fill: impl FnOnce(&mut Entries)) {
        let Some(epoch) = epoch else { return };
        let mut entries = self.entries.write().expect("lock poisoned");
        if entries.epoch != epoch {
            return;
        }
        if entries.secrets.len() >= MAX_ENTRIES
            || entries.bindings.len() >= MAX_ENTRIES
            || entries.providers.len() >= MAX_ENTRIES
        {
            entries.secrets.clear();
            entries.bindings.clear();
            entries.providers.clear();
        }
        fill(&mut entries);
    }

    pub fn put_binding(
        &self,
        epoch: Option<u64>,
        namespace: &str,
        binding: Option<NamespaceBinding>,
    ) {
        self.insert(epoch, |e| {
            e.bindings.insert(namespace.to_owned(), binding);
        });
    }

    pub fn put_organization(&self, epoch: Option<u64>, key: &str, org: &Organization) {
        self.insert(epoch, |e| {
            e.organizations.insert(key.to_owned(), org.clone());
        });
    }

    pub fn put_provider(
        &self,
        epoch: Option<u64>,
        organization_id: &str,
        key: &str,
        provider: &Provider,
    ) {
        self.insert(epoch, |e| {
            e.providers
                .entry(organization_id.to_owned())
                .or_default()
                .insert(key.to_owned(), provider.clone());
        });
    }

    /// Records what the database said about `names`: found secrets, and
    /// absence for the others.
    pub fn put_secrets(
        &self,
        epoch: Option<u64>,
        organization_id: &str,
        names: &[&str],
        found: &[Arc<Secret>],
    ) {
        self.insert(epoch, |e| {
            let org = e.secrets.entry(organization_id.to_owned()).or_default();
            for name in names {
                let secret = found.iter().find(|s| s.name == *name).cloned();
                org.insert((*name).to_owned(), secret);
            }
        });
    }
}
