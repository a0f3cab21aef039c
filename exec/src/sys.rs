//! What the wrapper takes from the system: the crypto library, random bytes,
//! and short words for I/O errors.

/// A short, lower-case description of an I/O error, for one log line.
pub(crate) fn describe_io(error: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match error.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset => "connection reset".into(),
        ConnectionAborted => "connection aborted".into(),
        TimedOut | WouldBlock => "timed out".into(),
        UnexpectedEof => "the connection closed early".into(),
        HostUnreachable => "host unreachable".into(),
        NetworkUnreachable => "network unreachable".into(),
        AddrNotAvailable => "address not available".into(),
        NotFound => "not found".into(),
        PermissionDenied => "permission denied".into(),
        _ => error.to_string(),
    }
}

/// The crypto library this build was made with (see the features in Cargo.toml).
pub(crate) fn crypto_provider() -> rustls::crypto::CryptoProvider {
    #[cfg(feature = "aws-lc-rs")]
    return rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    return rustls::crypto::ring::default_provider();
}

#[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
compile_error!("agyn-secrets-exec needs one of the features `ring` or `aws-lc-rs`");

/// Fills `buf` with random bytes from the operating system.
pub(crate) fn random(buf: &mut [u8]) {
    if crypto_provider().secure_random.fill(buf).is_err() {
        // Only jitter and DNS ids come from here; the clock is a poor but usable stand-in
        // on a kernel without getrandom.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
            ^ std::process::id();
        for (i, byte) in buf.iter_mut().enumerate() {
            *byte = (nanos >> ((i % 4) * 8)) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    #[test]
    fn describes_io_errors_briefly() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(describe_io(&refused), "connection refused");
        assert_eq!(describe_io(&io::ErrorKind::WouldBlock.into()), "timed out");
    }
}
