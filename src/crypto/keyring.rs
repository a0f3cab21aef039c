use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use aws_lc_rs::aead::LessSafeKey;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::CryptoError;

const PRIMARY_FILE: &str = "primary";

/// The key-encryption keys loaded from a key ring directory.
///
/// Each key's AES key schedule is built once at load time, so that unwrapping
/// a data key on the admission path costs one AES-GCM operation and nothing
/// more.
pub struct KeyRing {
    pub(super) primary: String,
    pub(super) keys: HashMap<String, LessSafeKey>,
    fingerprint: [u8; 32],
    /// Distinct for every ring loaded by this process.
    pub(super) generation: u64,
}

static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl KeyRing {
    /// Loads every key file of `dir` and the `primary` file naming the key for
    /// new writes. Files whose names start with `.` (the `..data` links that
    /// Kubernetes puts in a mounted Secret) are skipped.
    pub fn load(dir: &Path) -> Result<Self, CryptoError> {
        let files = read_files(dir)?;
        let fingerprint = fingerprint(&files);
        let mut keys = HashMap::new();
        let mut primary = None;
        for (name, content) in &files {
            let path = dir.join(name);
            if name == PRIMARY_FILE {
                let id = String::from_utf8_lossy(content).trim().to_owned();
                primary = Some((path, id));
                continue;
            }
            let bad = |reason: &str| CryptoError::BadKeyFile {
                path: path.clone(),
                id: name.clone(),
                reason: reason.to_owned(),
            };
            if !valid_key_id(name) {
                return Err(bad(
                    "a key id may use only letters, digits, '.', '_' and '-'",
                ));
            }
            let text = std::str::from_utf8(content).map_err(|_| bad("it is not base64 text"))?;
            let raw = Zeroizing::new(
                STANDARD
                    .decode(text.trim())
                    .map_err(|_| bad("it is not valid base64"))?,
            );
            if raw.len() != 32 {
                return Err(bad(&format!(
                    "it decodes to {} bytes; a key is base64 of exactly 32 random bytes",
                    raw.len()
                )));
            }
            keys.insert(name.clone(), super::envelope::cipher(&raw));
        }
        let Some((primary_path, primary)) = primary else {
            return Err(CryptoError::NoPrimary {
                dir: dir.to_owned(),
            });
        };
        if !keys.contains_key(&primary) {
            return Err(CryptoError::PrimaryUnknown {
                path: primary_path,
                id: primary,
            });
        }
        Ok(Self {
            primary,
            keys,
            fingerprint,
            generation: GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// Id of the key that wraps new data keys.
    pub fn primary_id(&self) -> &str {
        &self.primary
    }

    /// Ids of every key in the ring, sorted.
    pub fn key_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("primary", &self.primary)
            .field("keys", &self.key_ids())
            .finish()
    }
}

/// Reads the regular files of a key ring directory, following symbolic links
/// as a mounted Kubernetes Secret needs.
fn read_files(dir: &Path) -> Result<BTreeMap<String, Zeroizing<Vec<u8>>>, CryptoError> {
    let read_dir_error = |source| CryptoError::ReadDir {
        path: dir.to_owned(),
        source,
    };
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(dir).map_err(read_dir_error)? {
        let entry = entry.map_err(read_dir_error)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if !fs::metadata(&path).map(|m| m.is_file()).unwrap_or(false) {
            continue;
        }
        let content = fs::read(&path).map_err(|e| CryptoError::BadKeyFile {
            path: path.clone(),
            id: name.clone(),
            reason: e.to_string(),
        })?;
        files.insert(name, Zeroizing::new(content));
    }
    Ok(files)
}

fn fingerprint(files: &BTreeMap<String, Zeroizing<Vec<u8>>>) -> [u8; 32] {
    let mut hash = Sha256::new();
    for (name, content) in files {
        hash.update((name.len() as u64).to_le_bytes());
        hash.update(name.as_bytes());
        hash.update((content.len() as u64).to_le_bytes());
        hash.update(content.as_slice());
    }
    hash.finalize().into()
}

fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A shared, reloadable key ring.
///
/// The ring is re-read when the directory's contents change. A directory that
/// becomes unusable at run time (primary file removed, a key file corrupted)
/// keeps the last good ring in service, and the reason is reported through
/// [`KeyRingHandle::reload_error`] and the logs.
#[derive(Clone)]
pub struct KeyRingHandle {
    dir: PathBuf,
    current: Arc<ArcSwap<KeyRing>>,
    last_error: Arc<Mutex<Option<String>>>,
}

impl KeyRingHandle {
    pub fn load(dir: &Path) -> Result<Self, CryptoError> {
        let ring = KeyRing::load(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            current: Arc::new(ArcSwap::from_pointee(ring)),
            last_error: Arc::new(Mutex::new(None)),
        })
    }

    pub fn current(&self) -> Arc<KeyRing> {
        self.current.load_full()
    }

    /// The current key ring, borrowed: no reference count is touched, so
    /// threads that open values at once do not contend. Not to be held
    /// across an `await`.
    pub fn borrow(&self) -> arc_swap::Guard<Arc<KeyRing>> {
        self.current.load()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Why the last reload failed, while the directory stays unusable.
    pub fn reload_error(&self) -> Option<String> {
        self.last_error.lock().expect("lock poisoned").clone()
    }

    /// Re-reads the directory; returns whether a new ring was put in service.
    pub fn reload(&self) -> Result<bool, CryptoError> {
        let files = match read_files(&self.dir) {
            Ok(files) => files,
            Err(error) => return Err(self.record(error)),
        };
        if fingerprint(&files) == self.current.load().fingerprint {
            *self.last_error.lock().expect("lock poisoned") = None;
            return Ok(false);
        }
        match KeyRing::load(&self.dir) {
            Ok(ring) => {
                tracing::info!(primary = %ring.primary, keys = ?ring.key_ids(), "Key ring reloaded");
                self.current.store(Arc::new(ring));
                *self.last_error.lock().expect("lock poisoned") = None;
                Ok(true)
            }
            Err(error) => Err(self.record(error)),
        }
    }

    fn record(&self, error: CryptoError) -> CryptoError {
        let message = error.to_string();
        let mut last = self.last_error.lock().expect("lock poisoned");
        if last.as_deref() != Some(message.as_str()) {
            tracing::error!(%error, "Key ring reload failed; the last good key ring stays in service");
        }
        *last = Some(message);
        error
    }

    /// Polls the directory for changes until the task is aborted, calling
    /// `on_change` after a new ring goes into service.
    pub fn spawn_watcher(
        &self,
        every: Duration,
        on_change: impl Fn() + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let handle = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let handle = handle.clone();
                if let Ok(Ok(true)) = tokio::task::spawn_blocking(move || handle.reload()).await {
                    on_change();
                }
            }
        })
    }
}

/// Writes a new key file of 32 random bytes into `dir`, creating the directory
/// when needed. The key becomes primary when `make_primary` is set or when the
/// ring has no primary yet. Returns the key id.
pub fn generate_key_file(
    dir: &Path,
    id: Option<&str>,
    make_primary: bool,
) -> std::io::Result<String> {
    let id = match id {
        Some(id) => id.to_owned(),
        None => format!(
            "key-{}",
            time::OffsetDateTime::now_utc()
                .format(time::macros::format_description!(
                    "[year][month][day]-[hour][minute][second]"
                ))
                .expect("format a timestamp")
        ),
    };
    if !valid_key_id(&id) || id == PRIMARY_FILE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("key id {id:?} is not valid: use letters, digits, '.', '_' and '-'"),
        ));
    }
    fs::create_dir_all(dir)?;
    set_mode(dir, 0o700)?;
    let mut raw = Zeroizing::new([0u8; 32]);
    super::fill_random(raw.as_mut_slice());
    let encoded = Zeroizing::new(format!("{}\n", STANDARD.encode(raw.as_slice())));
    let path = dir.join(&id);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot create key file {}: {e}", path.display()),
            )
        })?;
    set_mode(&path, 0o600)?;
    std::io::Write::write_all(&mut file, encoded.as_bytes())?;
    file.sync_all()?;
    let primary = dir.join(PRIMARY_FILE);
    if make_primary || !primary.exists() {
        let tmp = dir.join(".primary.tmp");
        fs::write(&tmp, format!("{id}\n"))?;
        fs::rename(&tmp, &primary)?;
    }
    Ok(id)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ring_loads_with_its_primary() {
        let dir = tempfile::tempdir().unwrap();
        let id = generate_key_file(dir.path(), Some("k1"), false).unwrap();
        let ring = KeyRing::load(dir.path()).unwrap();
        assert_eq!(id, "k1");
        assert_eq!(ring.primary_id(), "k1");
        let second = generate_key_file(dir.path(), Some("k2"), false).unwrap();
        assert_eq!(KeyRing::load(dir.path()).unwrap().primary_id(), "k1");
        generate_key_file(dir.path(), Some("k3"), true).unwrap();
        let ring = KeyRing::load(dir.path()).unwrap();
        assert_eq!(ring.primary_id(), "k3");
        assert_eq!(ring.key_ids(), vec!["k1", second.as_str(), "k3"]);
    }

    #[test]
    fn refuses_to_overwrite_a_key() {
        let dir = tempfile::tempdir().unwrap();
        generate_key_file(dir.path(), Some("k1"), false).unwrap();
        assert!(generate_key_file(dir.path(), Some("k1"), false).is_err());
    }

    #[test]
    fn errors_name_the_file_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        let error = KeyRing::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("no `primary` file"), "{error}");

        fs::write(dir.path().join("primary"), "k9\n").unwrap();
        generate_key_file(dir.path(), Some("k1"), false).unwrap();
        let error = KeyRing::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("\"k9\""), "{error}");

        fs::write(dir.path().join("k9"), "bm90IDMyIGJ5dGVz\n").unwrap();
        let error = KeyRing::load(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("k9") && error.contains("decodes to 12 bytes"),
            "{error}"
        );

        fs::write(dir.path().join("k9"), "%%%").unwrap();
        let error = KeyRing::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("not valid base64"), "{error}");
    }

    #[test]
    fn hidden_entries_of_a_mounted_secret_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        generate_key_file(dir.path(), Some("k1"), false).unwrap();
        fs::create_dir(dir.path().join("..2026_11_28")).unwrap();
        fs::write(dir.path().join("..data_tmp"), "junk").unwrap();
        assert_eq!(KeyRing::load(dir.path()).unwrap().key_ids(), vec!["k1"]);
    }

    #[test]
    fn a_broken_reload_keeps_the_last_good_ring() {
        let dir = tempfile::tempdir().unwrap();
        generate_key_file(dir.path(), Some("k1"), false).unwrap();
        let handle = KeyRingHandle::load(dir.path()).unwrap();
        fs::remove_file(dir.path().join("primary")).unwrap();
        assert!(handle.reload().is_err());
        assert_eq!(handle.current().primary_id(), "k1");
        assert!(handle.reload_error().unwrap().contains("primary"));
        generate_key_file(dir.path(), Some("k2"), true).unwrap();
        assert!(handle.reload().unwrap());
        assert_eq!(handle.current().primary_id(), "k2");
        assert!(handle.reload_error().is_none());
    }
}
