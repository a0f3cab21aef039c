//! Encryption at rest: the key ring of key-encryption keys, envelope
//! encryption of secret values, and the redacted value type.

mod envelope;
mod keyring;
mod value;

pub use envelope::{Aad, Sealed};
pub use keyring::{KeyRing, KeyRingHandle, generate_key_file};
pub use value::SecretValue;

/// Fills `buf` from the operating system's random source, as every key,
/// nonce and token is made.
pub fn fill_random(buf: &mut [u8]) {
    aws_lc_rs::rand::fill(buf).expect("the operating system's random source is available");
}

/// Errors of the key ring and of envelope encryption. None carries a value.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("key ring directory {path} cannot be read: {source}")]
    ReadDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("key ring directory {dir} has no `primary` file naming the key for new writes")]
    NoPrimary { dir: std::path::PathBuf },
    #[error(
        "key ring file {path} names primary key {id:?}, but there is no key file {id:?} beside it"
    )]
    PrimaryUnknown {
        path: std::path::PathBuf,
        id: String,
    },
    #[error("key file {path} (key id {id:?}) is not usable: {reason}")]
    BadKeyFile {
        path: std::path::PathBuf,
        id: String,
        reason: String,
    },
    #[error("data key is wrapped by key id {kek_id:?}, which is not in the key ring")]
    UnknownKey { kek_id: String },
    #[error(
        "ciphertext under key id {kek_id:?} does not authenticate: it was tampered with or belongs to another secret or version"
    )]
    Authentication { kek_id: String },
    #[error("stored ciphertext is malformed")]
    Malformed,
    #[error("decrypted value is not valid UTF-8")]
    NotUtf8,
}
