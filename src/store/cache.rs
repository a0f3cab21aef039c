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
//!
//! Each thread answers the admission path's lookups from its own copies of
//! what it has read (see [`Local`]): two threads handing out the same
//! `Arc<Secret>` would bounce its reference count, and the lock, between
//! cores at every admission. The copies are tied to the epoch and dropped
//! when it moves, so they are cleared by the same writes.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use foldhash::HashMap as FastMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::{NamespaceBinding, Organization, Provider, Secret};

/// The maps use a fast, randomly seeded hash: every admission makes a
/// dozen lookups, and SipHash was a visible part of its cost.
#[derive(Default)]
struct Entries {
    epoch: u64,
    /// What the entries weigh, as [`weight`] counts it.
    bytes: usize,
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

pub struct Cache {
    /// Tells this cache's thread-local copies from another's.
    id: u64,
    enabled: AtomicBool,
    /// `entries.epoch`, readable without the lock; set under the write lock.
    epoch: AtomicU64,
    entries: RwLock<Entries>,
    /// Writers waiting for other replicas to acknowledge a change.
    waiters: Mutex<HashMap<String, AckWaiter>>,
}

impl Default for Cache {
    fn default() -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Cache {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            enabled: AtomicBool::default(),
            epoch: AtomicU64::default(),
            entries: RwLock::default(),
            waiters: Mutex::default(),
        }
    }
}

/// What the shared entries may weigh, in bytes of names and values, absent
/// names included; an insert that would go beyond clears them all first.
/// Names are counted one by one, so no sequence of lookups (say, reviews
/// that each ask for 256 names that do not exist) grows the cache past it.
const MAX_BYTES: usize = 16 << 20;
/// What one thread's copies may weigh; beyond, they are dropped and copied
/// again as they are read.
const MAX_LOCAL_BYTES: usize = 2 << 20;

/// What a binding or an organization weighs besides its key: a few ids.
const SMALL_VALUE: usize = 160;

/// Roughly what an entry costs in memory: its key, its value's strings and
/// blobs, and a fixed share for the map slot and the struct.
fn weight(key: &str, value: usize) -> usize {
    64 + key.len() + value
}

fn secret_weight(secret: Option<&Secret>) -> usize {
    let Some(secret) = secret else { return 0 };
    let content = match &secret.content {
        super::SecretContent::Local(sealed) => {
            sealed.kek_id.len() + sealed.wrapped_dek.len() + sealed.ciphertext.len()
        }
        super::SecretContent::Remote(remote) => {
            remote.provider_id.len()
                + remote.remote_path.len()
                + remote.remote_key.as_deref().map_or(0, str::len)
        }
    };
    std::mem::size_of::<Secret>() + secret.id.len() + secret.name.len() + content
}

fn provider_weight(p: &Provider) -> usize {
    std::mem::size_of::<Provider>()
        + p.id.len()
        + p.name.len()
        + p.kind.len()
        + serde_json::to_string(&p.settings).map_or(0, |s| s.len())
        + p.credential_secret.as_deref().map_or(0, str::len)
}

/// One thread's copies of what it read from one cache at one epoch: the
/// bindings, organizations and secrets of the admission path. Secrets are
/// copied, not shared, so that their reference counts stay on this thread.
#[derive(Default)]
struct Local {
    /// The cache id and epoch the copies belong to.
    of: Option<(u64, u64)>,
    /// What the copies weigh.
    bytes: usize,
    bindings: FastMap<String, Option<NamespaceBinding>>,
    organizations: FastMap<String, Organization>,
    secrets: FastMap<String, FastMap<String, Option<Arc<Secret>>>>,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::default();
}

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

    /// Clears every entry, and with the epoch every thread's copies.
    pub fn invalidate(&self) {
        let mut entries = self.entries.write().expect("lock poisoned");
        let epoch = entries.epoch + 1;
        *entries = Entries {
            epoch,
            ..Entries::default()
        };
        self.epoch.store(epoch, Ordering::Release);
    }

    /// Runs `f` on this thread's copies of this cache at `epoch`, which are
    /// emptied first if they belong to another cache or epoch, or would
    /// weigh more than [`MAX_LOCAL_BYTES`] with `adding` more bytes.
    fn local<R>(&self, epoch: u64, adding: usize, f: impl FnOnce(&mut Local) -> R) -> R {
        LOCAL.with_borrow_mut(|local| {
            let full = local.bytes + adding > MAX_LOCAL_BYTES;
            if local.of != Some((self.id, epoch)) || full {
                *local = Local {
                    of: Some((self.id, epoch)),
                    ..Local::default()
                };
            }
            local.bytes += adding;
            f(local)
        })
    }

    /// The epoch this thread's copies must be of to be used.
    fn current_epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
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
        self.copied(
            namespace,
            |local| &mut local.bindings,
            |shared| &shared.bindings,
        )
    }

    pub fn organization(&self, key: &str) -> Option<Organization> {
        self.copied(
            key,
            |local| &mut local.organizations,
            |shared| &shared.organizations,
        )
    }

    /// The entry `key` of one map: from this thread's copy of the map, or
    /// else from the shared one, then copied for this thread. Bindings and
    /// organizations weigh about as much as their key and a few ids.
    fn copied<T: Clone>(
        &self,
        key: &str,
        local_map: fn(&mut Local) -> &mut FastMap<String, T>,
        shared_map: fn(&Entries) -> &FastMap<String, T>,
    ) -> Option<T> {
        if !self.is_enabled() {
            return None;
        }
        if let Some(copy) = self.local(self.current_epoch(), 0, |local| {
            local_map(local).get(key).cloned()
        }) {
            return Some(copy);
        }
        let entries = self.entries.read().expect("lock poisoned");
        let value = shared_map(&entries).get(key)?.clone();
        self.local(entries.epoch, weight(key, SMALL_VALUE), |local| {
            local_map(local).insert(key.to_owned(), value.clone())
        });
        Some(value)
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
    /// All of them come from one epoch: this thread's copies when they hold
    /// every name, the shared entries otherwise.
    pub fn secrets<'a>(
        &self,
        organization_id: &str,
        names: &[&'a str],
    ) -> (Vec<Arc<Secret>>, Vec<&'a str>) {
        if !self.is_enabled() {
            return (Vec::new(), names.to_vec());
        }
        let mut found = Vec::with_capacity(names.len());
        let copied = self.local(self.current_epoch(), 0, |local| {
            let Some(org) = local.secrets.get(organization_id) else {
                return false;
            };
            for name in names {
                match org.get(*name) {
                    Some(Some(secret)) => found.push(secret.clone()),
                    Some(None) => {}
                    None => return false,
                }
            }
            true
        });
        if copied {
            return (found, Vec::new());
        }
        found.clear();
        let entries = self.entries.read().expect("lock poisoned");
        let Some(org) = entries.secrets.get(organization_id) else {
            return (Vec::new(), names.to_vec());
        };
        let mut copies = Vec::with_capacity(names.len());
        let mut missing = Vec::new();
        let mut adding = 0;
        for name in names {
            match org.get(*name) {
                Some(entry) => {
                    let copy = entry.as_deref().map(|s| Arc::new(s.clone()));
                    adding += weight(name, secret_weight(copy.as_deref()));
                    found.extend(copy.clone());
                    copies.push((*name, copy));
                }
                None => missing.push(*name),
            }
        }
        self.local(entries.epoch, adding, |local| {
            let org = local.secrets.entry(organization_id.to_owned()).or_default();
            for (name, copy) in copies {
                org.insert(name.to_owned(), copy);
            }
        });
        (found, missing)
    }

    /// Runs `fill` on the shared entries if they are still at `epoch`,
    /// clearing them first when `adding` more bytes would weigh more than
    /// [`MAX_BYTES`]. The epoch stays: the cleared entries were true, and
    /// the threads' copies of them stay true until the next write.
    fn insert(&self, epoch: Option<u64>, adding: usize, fill: impl FnOnce(&mut Entries)) {
        let Some(epoch) = epoch else { return };
        if adding > MAX_BYTES {
            return;
        }
        let mut entries = self.entries.write().expect("lock poisoned");
        if entries.epoch != epoch {
            return;
        }
        if entries.bytes + adding > MAX_BYTES {
            *entries = Entries {
                epoch,
                ..Entries::default()
            };
        }
        entries.bytes += adding;
        fill(&mut entries);
    }

    pub fn put_binding(
        &self,
        epoch: Option<u64>,
        namespace: &str,
        binding: Option<NamespaceBinding>,
    ) {
        self.insert(epoch, weight(namespace, SMALL_VALUE), |e| {
            e.bindings.insert(namespace.to_owned(), binding);
        });
    }

    pub fn put_organization(&self, epoch: Option<u64>, key: &str, org: &Organization) {
        let adding = weight(key, SMALL_VALUE + org.name.len());
        self.insert(epoch, adding, |e| {
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
        let adding = weight(key, provider_weight(provider));
        self.insert(epoch, adding, |e| {
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
        let secret = |name: &str| found.iter().find(|s| s.name == name).cloned();
        let adding = names
            .iter()
            .map(|name| weight(name, secret_weight(secret(name).as_deref())))
            .sum();
        self.insert(epoch, adding, |e| {
            let org = e.secrets.entry(organization_id.to_owned()).or_default();
            for name in names {
                org.insert((*name).to_owned(), secret(name));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{RemoteRef, SecretContent};

    fn secret(name: &str, version: i64) -> Arc<Secret> {
        Arc::new(Secret {
            id: format!("id-{name}"),
            organization_id: "org".into(),
            name: name.into(),
            version,
            created_at: 0,
            updated_at: 0,
            content: SecretContent::Remote(RemoteRef {
                provider_id: "p".into(),
                remote_path: "kv/data/x".into(),
                remote_key: Some("k".into()),
            }),
            allowed_namespaces: Vec::new(),
        })
    }

    fn enabled() -> Arc<Cache> {
        let cache = Arc::new(Cache::default());
        cache.set_enabled(true);
        cache
    }

    #[test]
    fn each_thread_reads_its_own_copy() {
        let cache = enabled();
        let shared = secret("a", 1);
        cache.put_secrets(
            cache.epoch(),
            "org",
            &["a", "b"],
            std::slice::from_ref(&shared),
        );

        let (first, missing) = cache.secrets("org", &["a", "b"]);
        assert!(missing.is_empty(), "b is known to be absent");
        let (again, _) = cache.secrets("org", &["a", "b"]);
        assert_eq!(first.len(), 1);
        assert!(Arc::ptr_eq(&first[0], &again[0]), "one copy per thread");
        assert!(
            !Arc::ptr_eq(&first[0], &shared),
            "a copy, not the shared Arc"
        );

        let other = {
            let cache = cache.clone();
            std::thread::spawn(move || cache.secrets("org", &["a"]).0)
                .join()
                .unwrap()
        };
        assert!(!Arc::ptr_eq(&first[0], &other[0]), "another thread's copy");
        assert_eq!((other[0].name.as_str(), other[0].version), ("a", 1));
    }

    #[test]
    fn no_sequence_of_names_grows_the_cache_past_its_bound() {
        let cache = enabled();
        // Reviews that each ask for 256 names nobody has.
        for review in 0..2_000 {
            let names: Vec<String> = (0..256).map(|i| format!("missing-{review}-{i}")).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let (_, missing) = cache.secrets("org", &names);
            cache.put_secrets(cache.epoch(), "org", &missing, &[]);
            assert!(
                cache.secrets("org", &names).1.is_empty(),
                "cached as absent"
            );
        }
        let entries = cache.entries.read().unwrap();
        let held: usize = entries.secrets.values().map(|m| m.len()).sum();
        assert!(entries.bytes <= MAX_BYTES, "{} bytes", entries.bytes);
        assert!(held < 2_000 * 256, "cleared on the way: {held} names held");
        LOCAL.with_borrow(|local| {
            assert!(
                local.bytes <= MAX_LOCAL_BYTES,
                "{} bytes copied",
                local.bytes
            );
        });
    }

    #[test]
    fn invalidation_reaches_every_threads_copies() {
        let cache = enabled();
        let epoch = cache.epoch();
        cache.put_secrets(epoch, "org", &["a"], &[secret("a", 1)]);
        cache.put_binding(
            epoch,
            "team-a",
            Some(NamespaceBinding {
                namespace: "team-a".into(),
                organization_id: "org".into(),
                created_at: 0,
            }),
        );
        let warm = |cache: &Cache| {
            assert_eq!(cache.secrets("org", &["a"]).0.len(), 1);
            assert!(cache.binding("team-a").is_some());
        };
        warm(&cache);
        let other = cache.clone();
        let (warmed, is_warm) = std::sync::mpsc::channel::<()>();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            warm(&other);
            warmed.send(()).unwrap();
            wait.recv().unwrap();
            // Copied before the write; the write must still be seen.
            (other.secrets("org", &["a"]), other.binding("team-a"))
        });

        is_warm.recv().unwrap();
        cache.invalidate();
        go.send(()).unwrap();
        let ((found, missing), binding) = thread.join().unwrap();
        assert!(found.is_empty() && missing == ["a"] && binding.is_none());
        let (found, missing) = cache.secrets("org", &["a"]);
        assert!(found.is_empty() && missing == ["a"]);
        assert!(cache.binding("team-a").is_none());

        // What is read at the new epoch is copied again.
        cache.put_secrets(cache.epoch(), "org", &["a"], &[secret("a", 2)]);
        assert_eq!(cache.secrets("org", &["a"]).0[0].version, 2);
    }
}
