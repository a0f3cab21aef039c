//! Shape checks shared by the API and the webhook.

/// Kubernetes' DNS label rule (RFC 1123): lower-case letters, digits and
/// '-', starting and ending with a letter or digit, at most 63 characters.
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// Why a name is not a DNS label, for messages.
pub const DNS_LABEL_RULE: &str = "must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters";

/// Kubernetes' classic environment variable name rule.
pub fn is_env_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b'-' || b == b'.' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::simple("stripe-api-key", true)]
    #[case::digits("a1", true)]
    #[case::max(&"a".repeat(63), true)]
    #[case::too_long(&"a".repeat(64), false)]
    #[case::upper("Stripe", false)]
    #[case::leading_dash("-a", false)]
    #[case::trailing_dash("a-", false)]
    #[case::dot("a.b", false)]
    #[case::empty("", false)]
    fn dns_labels(#[case] name: &str, #[case] ok: bool) {
        assert_eq!(is_dns_label(name), ok);
    }

    #[rstest]
    #[case::upper("STRIPE_KEY", true)]
    #[case::underscore("_X", true)]
    #[case::dotted("my.var", true)]
    #[case::digit_first("1X", false)]
    #[case::space("A B", false)]
    #[case::equals("A=B", false)]
    #[case::empty("", false)]
    fn env_var_names(#[case] name: &str, #[case] ok: bool) {
        assert_eq!(is_env_var_name(name), ok);
    }
}
