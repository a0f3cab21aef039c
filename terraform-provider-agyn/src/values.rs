//! Working with `tf_provider::value::Value`, which is known, null or
//! unknown (not decided until apply).

use std::collections::BTreeSet;

use tf_provider::value::Value;

/// A set of strings, such as `set(string)` attributes hold; the set or its
/// elements may be unknown until apply.
pub type StringSet = Value<BTreeSet<Value<String>>>;

/// The text of a known, non-null string.
pub fn text(value: &Value<String>) -> Option<&str> {
    value.as_ref_option().map(String::as_str)
}

/// Whether the configuration gives a value (possibly one not known yet).
pub fn given<T>(value: &Value<T>) -> bool {
    !value.is_null()
}

/// A known string.
pub fn known(text: impl Into<String>) -> Value<String> {
    Value::Value(text.into())
}

/// A string that the API may leave out.
pub fn nullable(text: Option<String>) -> Value<String> {
    text.map_or(Value::Null, Value::Value)
}

/// A known set of the known strings `items`.
pub fn known_set(items: impl IntoIterator<Item = String>) -> StringSet {
    Value::Value(items.into_iter().map(Value::Value).collect())
}

/// The strings of a set, sorted, when the set and all of its elements are
/// known; a null set has none.
pub fn set_items(set: &StringSet) -> Option<Vec<String>> {
    match set {
        Value::Value(items) => items.iter().map(|i| text(i).map(str::to_owned)).collect(),
        Value::Null => Some(Vec::new()),
        Value::Unknown => None,
    }
}

/// Keeps `current` when the API answers with its normal form: addresses
/// lose a trailing `/`, for instance, and the configuration must still
/// match the state.
pub fn keep_if_same(
    current: &Value<String>,
    answered: String,
    same: fn(&str, &str) -> bool,
) -> Value<String> {
    match text(current) {
        Some(current) if same(current, &answered) => known(current),
        _ => known(answered),
    }
}

/// Names follow Kubernetes' DNS-label rules, as the API checks them.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

pub const DNS_LABEL_RULE: &str = "must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters";

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::simple("stripe-api-key", true)]
    #[case::digits("a1", true)]
    #[case::upper("Acme", false)]
    #[case::leading_dash("-a", false)]
    #[case::trailing_dash("a-", false)]
    #[case::underscore("a_b", false)]
    #[case::empty("", false)]
    #[case::too_long(&"a".repeat(64), false)]
    fn dns_labels(#[case] name: &str, #[case] ok: bool) {
        assert_eq!(is_dns_label(name), ok);
    }

    #[test]
    fn keeps_the_configured_form() {
        let same = |a: &str, b: &str| a.trim_end_matches('/') == b;
        assert_eq!(
            keep_if_same(&known("https://v/"), "https://v".into(), same),
            known("https://v/")
        );
        assert_eq!(
            keep_if_same(&known("https://w"), "https://v".into(), same),
            known("https://v")
        );
        assert_eq!(
            keep_if_same(&Value::Null, "https://v".into(), same),
            known("https://v")
        );
    }
}
