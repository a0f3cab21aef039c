//! Memory that holds a token or values: wiped when dropped, never printed.

use std::collections::BTreeMap;
use std::fmt;

use zeroize::{Zeroize, Zeroizing};

/// The pod's service-account token, as read from its file.
pub(crate) struct Token(Zeroizing<String>);

impl Token {
    pub(crate) fn new(text: Zeroizing<String>) -> Self {
        Self(text)
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The values the server answered for this container: variable name to value.
///
/// `Debug` shows the names only; the values are wiped from memory when this is dropped
/// (in practice the process is replaced by the command before that).
#[derive(Default)]
pub struct Values(BTreeMap<String, Zeroizing<String>>);

impl Values {
    pub(crate) fn new(map: BTreeMap<String, Zeroizing<String>>) -> Self {
        Self(map)
    }

    /// The variable names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The value of one variable. Meant for the code that passes it on, never for a log.
    pub fn expose(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|value| value.as_str())
    }

    /// Every variable and its value. Meant for the code that passes them on.
    pub fn expose_all(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// How many variables there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the server answered no variable at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Values {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|name| (name, "<redacted>")))
            .finish()
    }
}

/// A growing byte buffer that wipes every copy it leaves behind: growth moves the bytes
/// into a new allocation and zeroes the old one, which a plain `Vec` would simply free.
pub(crate) struct SecretBuf(Zeroizing<Vec<u8>>);

impl SecretBuf {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self(Zeroizing::new(Vec::with_capacity(capacity)))
    }

    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        let needed = self.0.len() + bytes.len();
        if needed > self.0.capacity() {
            let capacity = needed.max(self.0.capacity() * 2).max(256);
            let mut grown = Zeroizing::new(Vec::with_capacity(capacity));
            grown.extend_from_slice(&self.0);
            // The old allocation is zeroed over its whole capacity when dropped here.
            self.0 = grown;
        }
        self.0.extend_from_slice(bytes);
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn into_inner(self) -> Zeroizing<Vec<u8>> {
        self.0
    }

    /// Removes the first `n` bytes, wiping the bytes that move.
    pub(crate) fn consume(&mut self, n: usize) {
        let rest = SecretBuf::from_slice(&self.0[n..]);
        self.0.zeroize();
        *self = rest;
    }

    fn from_slice(bytes: &[u8]) -> Self {
        let mut buf = Self::with_capacity(bytes.len());
        buf.extend(bytes);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_value_or_the_token() {
        let token = Token::new(Zeroizing::new("tok-3e1f".to_owned()));
        let values = Values::new(BTreeMap::from([(
            "API_KEY".to_owned(),
            Zeroizing::new("val-9a2c".to_owned()),
        )]));
        let shown = format!("{token:?} {values:?} {values:#?}");
        assert!(!shown.contains("tok-3e1f"), "{shown}");
        assert!(!shown.contains("val-9a2c"), "{shown}");
        assert!(shown.contains("API_KEY"), "{shown}");
    }

    #[test]
    fn buffer_keeps_bytes_in_order_while_growing() {
        let mut buf = SecretBuf::with_capacity(1);
        for chunk in [b"abc".as_slice(), &[b'x'; 1000], b"end"] {
            buf.extend(chunk);
        }
        assert_eq!(buf.len(), 1006);
        assert!(buf.as_slice().starts_with(b"abcxx"));
        assert!(buf.as_slice().ends_with(b"xxend"));
        buf.consume(1003);
        assert_eq!(buf.as_slice(), b"end");
    }
}
