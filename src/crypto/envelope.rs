use std::sync::OnceLock;

use aws_lc_rs::aead::{AES_256_GCM, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::{Zeroize, Zeroizing};

use super::{CryptoError, KeyRing, SecretValue};

const TAG_LEN: usize = 16;

/// What a ciphertext is bound to. Decryption under any other binding fails,
/// so a ciphertext copied onto another row does not decrypt.
#[derive(Debug, Clone, Copy)]
pub struct Aad<'a> {
    pub organization_id: &'a str,
    pub secret_id: &'a str,
    pub version: i64,
}

impl Aad<'_> {
    /// `agyn-secrets/v1|<purpose>|org=<id>|secret=<id>|version=<n>`, built
    /// without the formatting machinery: it is made for every opening. Ids
    /// are UUIDs and never contain the separator.
    fn bytes(&self, purpose: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            64 + purpose.len() + self.organization_id.len() + self.secret_id.len(),
        );
        out.extend_from_slice(b"agyn-secrets/v1|");
        out.extend_from_slice(purpose.as_bytes());
        out.extend_from_slice(b"|org=");
        out.extend_from_slice(self.organization_id.as_bytes());
        out.extend_from_slice(b"|secret=");
        out.extend_from_slice(self.secret_id.as_bytes());
        out.extend_from_slice(b"|version=");
        if self.version < 0 {
            out.push(b'-');
        }
        crate::decimal::push_decimal(&mut out, self.version.unsigned_abs());
        out
    }
}

/// An envelope-encrypted value as stored: the value sealed under a fresh data
/// key, and that data key wrapped by the key-encryption key `kek_id`. Both
/// blobs are `nonce || ciphertext || tag`.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub kek_id: String,
    pub wrapped_dek: Vec<u8>,
    pub ciphertext: Vec<u8>,
    /// The data key, once unwrapped; see [`DataKey`].
    pub data_key: DataKey,
}

impl Sealed {
    pub fn new(kek_id: String, wrapped_dek: Vec<u8>, ciphertext: Vec<u8>) -> Self {
        Sealed {
            kek_id,
            wrapped_dek,
            ciphertext,
            data_key: DataKey::default(),
        }
    }
}

impl PartialEq for Sealed {
    fn eq(&self, other: &Self) -> bool {
        (&self.kek_id, &self.wrapped_dek, &self.ciphertext)
            == (&other.kek_id, &other.wrapped_dek, &other.ciphertext)
    }
}

impl Eq for Sealed {}

/// The cipher of a sealed value's data key, kept after the first opening so
/// that opening the same sealed value again (a secret held by the read cache)
/// costs one AES-GCM operation instead of an unwrap and a key expansion.
///
/// It is tied to the key ring that unwrapped it: a reloaded ring unwraps
/// again, so a key that changed or went away is noticed. It lives exactly as
/// long as the sealed value it belongs to, and its key material is zeroized
/// when dropped.
#[derive(Default)]
pub struct DataKey(OnceLock<Box<(u64, LessSafeKey)>>);

/// A copy starts empty: whatever is done to the copy's blobs is checked
/// from scratch when it is opened.
impl Clone for DataKey {
    fn clone(&self) -> Self {
        DataKey::default()
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl KeyRing {
    /// Encrypts a value under a fresh data key wrapped by the primary key.
    pub fn seal(&self, value: &SecretValue, aad: Aad<'_>) -> Sealed {
        let mut dek = Zeroizing::new([0u8; 32]);
        super::fill_random(dek.as_mut_slice());
        let ciphertext = seal_with(
            &cipher(dek.as_slice()),
            value.expose().as_bytes(),
            &aad.bytes("value"),
        );
        let wrapped_dek = seal_with(self.primary_cipher(), dek.as_slice(), &aad.bytes("dek"));
        Sealed::new(self.primary.clone(), wrapped_dek, ciphertext)
    }

    /// Decrypts a stored value.
    pub fn open(&self, sealed: &Sealed, aad: Aad<'_>) -> Result<SecretValue, CryptoError> {
        let unwrapped;
        let cipher = match sealed.data_key.0.get().map(|kept| &**kept) {
            Some((generation, cipher)) if *generation == self.generation => cipher,
            _ => {
                let fresh = Box::new((self.generation, cipher(&self.unwrap_dek(sealed, aad)?)));
                // Kept for the next opening, unless a key unwrapped by an
                // earlier ring is kept already: then this one is used once.
                match sealed.data_key.0.set(fresh) {
                    Ok(()) => &sealed.data_key.0.get().expect("set just above").1,
                    Err(fresh) => {
                        unwrapped = fresh;
                        &unwrapped.1
                    }
                }
            }
        };
        let plain =
            open_with(cipher, &sealed.ciphertext, &aad.bytes("value")).ok_or_else(|| {
                CryptoError::Authentication {
                    kek_id: sealed.kek_id.clone(),
                }
            })?;
        match String::from_utf8(plain) {
            Ok(text) => Ok(SecretValue::new(text)),
            Err(error) => {
                error.into_bytes().zeroize();
                Err(CryptoError::NotUtf8)
            }
        }
    }

    /// Wraps the data key of `sealed` under the primary key, leaving the value
    /// ciphertext as it is. `None` when it is already under the primary key.
    pub fn rewrap(&self, sealed: &Sealed, aad: Aad<'_>) -> Result<Option<Sealed>, CryptoError> {
        if sealed.kek_id == self.primary {
            return Ok(None);
        }
        let dek = self.unwrap_dek(sealed, aad)?;
        Ok(Some(Sealed::new(
            self.primary.clone(),
            seal_with(self.primary_cipher(), &dek, &aad.bytes("dek")),
            sealed.ciphertext.clone(),
        )))
    }

    fn unwrap_dek(&self, sealed: &Sealed, aad: Aad<'_>) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let kek = self
            .keys
            .get(&sealed.kek_id)
            .ok_or_else(|| CryptoError::UnknownKey {
                kek_id: sealed.kek_id.clone(),
            })?;
        let dek = open_with(kek, &sealed.wrapped_dek, &aad.bytes("dek"))
            .map(Zeroizing::new)
            .ok_or_else(|| CryptoError::Authentication {
                kek_id: sealed.kek_id.clone(),
            })?;
        if dek.len() != 32 {
            return Err(CryptoError::Malformed);
        }
        Ok(dek)
    }

    fn primary_cipher(&self) -> &LessSafeKey {
        self.keys
            .get(&self.primary)
            .expect("the primary key is checked to be in the ring at load time")
    }
}

/// An AES-256-GCM key. aws-lc keeps its key schedule in memory it allocates
/// itself and cleanses when the key is dropped.
pub(super) fn cipher(key: &[u8]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("an AES-256 key is 32 bytes"))
}

fn seal_with(cipher: &LessSafeKey, plain: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    super::fill_random(&mut nonce);
    let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plain);
    let tag = cipher
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            aws_lc_rs::aead::Aad::from(aad),
            &mut out[NONCE_LEN..],
        )
        .expect("AES-GCM encryption of a small buffer cannot fail");
    out.extend_from_slice(tag.as_ref());
    out
}

/// Opens `nonce || ciphertext || tag`, returning the plaintext in a buffer
/// of its own, or `None` when the blob does not authenticate.
fn open_with(cipher: &LessSafeKey, blob: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if blob.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, sealed) = blob.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    // Wiped when it does not authenticate: it may hold a decryption of
    // tampered ciphertext.
    let mut plain = Zeroizing::new(sealed.to_vec());
    let len = cipher
        .open_in_place(nonce, aws_lc_rs::aead::Aad::from(aad), &mut plain)
        .ok()?
        .len();
    plain.truncate(len);
    Some(std::mem::take(&mut *plain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::generate_key_file;

    fn ring(dir: &std::path::Path) -> KeyRing {
        KeyRing::load(dir).unwrap()
    }

    const AAD: Aad<'static> = Aad {
        organization_id: "org-1",
        secret_id: "secret-1",
        version: 1,
    };

    #[test]
    fn the_binding_text_is_the_stored_format() {
        for version in [0, 1, 9, 10, 12345, i64::MAX, -3, i64::MIN] {
            let aad = Aad { version, ..AAD };
            let expected = format!(
                "agyn-secrets/v1|value|org={}|secret={}|version={version}",
                AAD.organization_id, AAD.secret_id
            );
            assert_eq!(aad.bytes("value"), expected.into_bytes());
        }
    }

    /// A value sealed by an earlier release (RustCrypto's `aes-gcm`), with
    /// fixed keys and nonces: what is stored keeps opening.
    #[test]
    fn opens_what_earlier_releases_stored() {
        use base64::Engine;
        let dir = tempfile::tempdir().unwrap();
        let kek: Vec<u8> = (0u8..32).collect();
        let encoded = base64::engine::general_purpose::STANDARD.encode(&kek);
        std::fs::write(dir.path().join("k1"), format!("{encoded}\n")).unwrap();
        std::fs::write(dir.path().join("primary"), "k1\n").unwrap();
        let hex = |text: &str| -> Vec<u8> {
            (0..text.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
                .collect()
        };
        let sealed = Sealed::new(
            "k1".into(),
            hex(concat!(
                "010101010101010101010101",
                "d7624796cc20cec17cfdcdb3b4cafc777bdf3d682536a06b4b62bd5721b4408e",
                "7449d1e820495062f3f37c13b1b4e88d"
            )),
            hex("020202020202020202020202e3390cf83b0876d89d3a1ea1e2cca9f8d3ee8e86cc7701"),
        );
        let ring = ring(dir.path());
        assert_eq!(ring.open(&sealed, AAD).unwrap().expose(), "hunter2");
        assert!(matches!(
            ring.open(&sealed, Aad { version: 2, ..AAD }),
            Err(CryptoError::Authentication { .. })
        ));
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        generate_key_file(dir.path(), Some("k1"), false).unwrap();
        let ring = ring(dir.path());
        let sealed = ring.seal(&SecretValue::from("hunter2"), AAD);
        assert_eq!(sealed.kek_id, "k1");
        assert!(!sealed.ciphertext.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(ring.open(&sealed, AAD).unwrap().expose(), "hunter2");
    }

    #[test]
    fn every_seal_uses_a_fresh_data_key_and_nonce() {
        let dir = tempfile::tempdir().unwrap();
        generate_key_file(dir.path(), Some("k1"), false).unwrap();
        let ring = ring(dir.path());
        let a = ring.seal(&SecretValue::from("same"), AAD);
        let b = ring.seal(&SecretValue::from("same"), AAD);
        assert_ne!(a.wrapped_dek, b.wrapped_dek);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn tampering_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        generate_key_file(dir.path(), Some("k1"), false).unwrap();
        let ring = ring(dir.path());
        let sealed = ring.seal(&SecretValue::from("hunter2"), AAD);
        for i in 0..sealed.ciphertext.len() {
            let mut bad = sealed.clone();
            bad.ciphertext[i] ^= 1;
            assert!(matches!(
                ring.open(&bad, AAD),
                Err(CryptoError::Authentication { .. })
            ));
        }
        let mut bad = sealed.clone();
        bad.wrapped_dek[20] ^= 0x80;
        assert!(matches!(
            ring.open(&bad, AAD),
            Err(CryptoError::Authentication { .. })
        ));
        let mut bad = sealed;
        bad.ciphertext.truncate(10);
        assert!(ring.open(&bad, AAD).is_err());
    }

    #[test]
    fn a_data_key_kept_from_one_ring_is_not_trusted_by_another() {
        let dir = tempfile::tempdir().unwrap();
        generate_key_file(dir.path(), Some("k1"), false).unwrap();
        let first = ring(dir.path());
        let sealed = first.seal(&SecretValue::from("hunter2"), AAD);
        for _ in 0..2 {
            assert_eq!(first.open(&sealed, AAD).unwrap().expose(), "hunter2");
        }
        // The same key id, another key: the kept data key must not be used.
        std::fs::remove_file(dir.path().join("k1")).unwrap();
        generate_key_file(dir.path(), Some("k1"), false).unwrap();
        let second = ring(dir.path());
        assert!(matches!(
            second.open(&sealed, AAD),
            Err(CryptoError::Authentication { .. })
        ));
        // Another binding still fails with the kept data key.
        assert!(first.open(&sealed, Aad { version: 9, ..AAD }).is_err());
        assert_eq!(first.open(&sealed, AAD).unwrap().expose(), "hunter2");
    }

    #[test]
    fn a_ciphertext_moved_to_another_binding_fails() {
        let dir = tempfile::tempdir().unwrap();
        generate_key_file(dir.path(), Some("k1"), false).unwrap();
        let ring = ring(dir.path());
        let sealed = ring.seal(&SecretValue::from("hunter2"), AAD);
        for other in [
            Aad {
                organization_id: "org-2",
                ..AAD
            },
            Aad {
                secret_id: "secret-2",
                ..AAD
            },
            Aad { version: 2, ..AAD },
        ] {
            let error = ring.open(&sealed, other).unwrap_err();
            assert!(
                matches!(error, CryptoError::Authentication { .. }),
                "{error}"
            );
        }
    }

    #[test]
    fn unknown_key_id_is_named() {
        let dir = tempfile::tempdir().unwrap();
        generate_key_file(dir.path(), Some("k1"), false).unwrap();
        let mut sealed = ring(dir.path()).seal(&SecretValue::from("x"), AAD);
        sealed.kek_id = "gone".into();
        let error = ring(dir.path()).open(&sealed, AAD).unwrap_err().to_string();
        assert!(error.contains("\"gone\""), "{error}");
    }

    #[test]
    fn rewrap_moves_to_the_new_primary_and_survives_removal_of_the_old_key() {
        let dir = tempfile::tempdir().unwrap();
        generate_key_file(dir.path(), Some("old"), false).unwrap();
        let sealed = ring(dir.path()).seal(&SecretValue::from("hunter2"), AAD);
        generate_key_file(dir.path(), Some("new"), true).unwrap();
        let ring2 = ring(dir.path());
        let moved = ring2.rewrap(&sealed, AAD).unwrap().expect("rewrapped");
        assert_eq!(moved.kek_id, "new");
        assert_eq!(moved.ciphertext, sealed.ciphertext);
        assert!(ring2.rewrap(&moved, AAD).unwrap().is_none());
        std::fs::remove_file(dir.path().join("old")).unwrap();
        let ring3 = ring(dir.path());
        assert_eq!(ring3.open(&moved, AAD).unwrap().expose(), "hunter2");
        assert!(matches!(
            ring3.open(&sealed, AAD),
            Err(CryptoError::UnknownKey { .. })
        ));
    }
}
