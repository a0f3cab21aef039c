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

/// Kubernetes' DNS subdomain rule (RFC 1123), the rule of most object names:
/// dot-separated DNS labels, at most 253 characters.
pub fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label)
}

/// Whether `prefix` is a valid `metadata.generateName`: a DNS subdomain once
/// the API server appends its random suffix, so it may end with '-'.
pub fn is_generate_name(prefix: &str) -> bool {
    let stem = prefix.trim_end_matches('-');
    prefix.len() <= 248 && !stem.is_empty() && is_dns_subdomain(stem)
}

/// A Kubernetes kind: a letter, then letters and digits, at most 63.
pub fn is_kind(kind: &str) -> bool {
    let bytes = kind.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphabetic()
        && bytes.iter().all(u8::is_ascii_alphanumeric)
}

/// serde's message for a value of the wrong type or shape, with the value
/// taken out: `invalid type: integer `4111…`, expected a string` becomes
/// `invalid type: integer, expected a string`. The value could be a secret
/// sent in the wrong field or the wrong form, and an error message ends up
/// in logs, terminals and CI output.
pub fn without_value(text: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = text.strip_prefix(prefix) {
            let (got, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
            // `integer `5``, `string "x"`, `floating point `1.5``, `map`, …
            let kind = got.split(['`', '"']).next().unwrap_or("").trim();
            return match expected {
                "" => format!("{prefix}{kind}"),
                expected => format!("{prefix}{kind}, expected {expected}"),
            };
        }
    }
    if let Some(rest) = text.strip_prefix("unknown variant ") {
        let expected = rest.split_once(", expected ").map_or("", |(_, e)| e);
        return format!("unknown variant, expected {expected}");
    }
    text.to_owned()
}

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
    #[case::label("web", true)]
    #[case::dotted("web.v1", true)]
    #[case::max(&format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)), true)]
    #[case::too_long(&format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(62)), false)]
    #[case::empty_label("web..v1", false)]
    #[case::nul("web\0", false)]
    #[case::bidi("web\u{202e}", false)]
    fn dns_subdomains(#[case] name: &str, #[case] ok: bool) {
        assert_eq!(is_dns_subdomain(name), ok);
    }

    #[rstest]
    #[case::replica_set("agent-7d9f8c6b5d-", true)]
    #[case::plain("web", true)]
    #[case::dashes_only("--", false)]
    #[case::upper("Web-", false)]
    #[case::long(&"a".repeat(249), false)]
    fn generate_names(#[case] prefix: &str, #[case] ok: bool) {
        assert_eq!(is_generate_name(prefix), ok);
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
