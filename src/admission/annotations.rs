//! Parsing `secrets.agyn.io/env` and `secrets.agyn.io/image-pull-secrets`.

use crate::validate::{is_dns_label, is_env_var_name};

/// One entry of `secrets.agyn.io/env`: `VAR=secret` or `container:VAR=secret`.
/// Borrowed from the annotation's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvEntry<'a> {
    /// 1-based position among the non-empty entries, for messages.
    pub position: usize,
    /// The entry as written, trimmed.
    pub text: &'a str,
    /// `None` for every container and init container.
    pub container: Option<&'a str>,
    pub var: &'a str,
    pub secret: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("annotation {annotation}: {message}")]
pub struct ParseError {
    pub annotation: &'static str,
    pub message: String,
}

/// Most entries one annotation may hold; more is a mistake, and each costs
/// a database lookup and a patch operation.
pub const MAX_ENTRIES: usize = 256;

/// Longest piece of user text quoted back in a message.
const QUOTE_MAX: usize = 80;

/// `text` quoted for a message, shortened to 80 characters with `…`.
pub fn quote(text: &str) -> String {
    if text.chars().count() <= QUOTE_MAX {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(QUOTE_MAX).collect();
        format!("{head:?}…")
    }
}

/// Parses `secrets.agyn.io/env`: entries separated by commas or newlines;
/// blank entries are ignored.
pub fn parse_env(text: &str) -> Result<Vec<EnvEntry<'_>>, ParseError> {
    let separators = text.bytes().filter(|b| matches!(b, b',' | b'\n')).count();
    let mut entries = Vec::with_capacity((separators + 1).min(MAX_ENTRIES));
    for raw in text.split([',', '\n']) {
        let item = raw.trim();
        if item.is_empty() {
            continue;
        }
        let position = entries.len() + 1;
        if position > MAX_ENTRIES {
            return Err(env_error(format!(
                "more than {MAX_ENTRIES} entries; split the secrets across fewer variables or pods"
            )));
        }
        entries.push(parse_env_entry(position, item)?);
    }
    Ok(entries)
}

/// An error in `secrets.agyn.io/env`.
fn env_error(message: String) -> ParseError {
    ParseError {
        annotation: super::ENV_ANNOTATION,
        message,
    }
}

/// Parses one non-blank, trimmed entry of `secrets.agyn.io/env`, the
/// `position`th.
fn parse_env_entry(position: usize, item: &str) -> Result<EnvEntry<'_>, ParseError> {
    let at = || format!("entry {position} {}", quote(item));
    let Some((target, secret)) = item.split_once('=') else {
        return Err(env_error(format!(
            "{} has no \"=\"; write VAR=secret-name or container:VAR=secret-name",
            at()
        )));
    };
    let (container, var) = match target.split_once(':') {
        Some((container, var)) => (Some(container.trim()), var.trim()),
        None => (None, target.trim()),
    };
    let secret = secret.trim();
    if let Some(container) = container
        && !is_dns_label(container)
    {
        return Err(env_error(format!(
            "{}: container name {} is not valid",
            at(),
            quote(container)
        )));
    }
    if !is_env_var_name(var) {
        return Err(env_error(format!(
            "{}: {} is not a valid environment variable name (letters, digits, '_', '-', '.'; not starting with a digit)",
            at(),
            quote(var)
        )));
    }
    if !is_dns_label(secret) {
        return Err(env_error(format!(
            "{}: secret name {} is not valid (lower-case letters, digits and '-', at most 63)",
            at(),
            quote(secret)
        )));
    }
    Ok(EnvEntry {
        position,
        text: item,
        container,
        var,
        secret,
    })
}

/// How resolved values reach a pod's containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Inline in the pod spec: the webhook's answer carries the values.
    Env,
    /// In a Kubernetes Secret in the pod's namespace, which each variable
    /// refers to: the answer carries no value.
    Secret,
    /// Only in the container's process memory: a wrapper fetches the values
    /// when the container starts and execs the container's command.
    Exec,
}

impl Delivery {
    pub const fn as_str(self) -> &'static str {
        match self {
            Delivery::Env => "env",
            Delivery::Secret => "secret",
            Delivery::Exec => "exec",
        }
    }
}

impl std::fmt::Display for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Delivery {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "env" => Ok(Delivery::Env),
            "secret" => Ok(Delivery::Secret),
            "exec" => Ok(Delivery::Exec),
            other => Err(format!(
                "{} is not a delivery; write \"secret\", \"exec\" or \"env\"",
                quote(other)
            )),
        }
    }
}

/// Parses `secrets.agyn.io/delivery`.
pub fn parse_delivery(text: &str) -> Result<Delivery, ParseError> {
    text.trim().parse().map_err(|message| ParseError {
        annotation: super::DELIVERY_ANNOTATION,
        message,
    })
}

/// Parses `secrets.agyn.io/image-pull-secrets`: comma-separated names,
/// duplicates dropped, order kept.
pub fn parse_pull_secrets(text: &str) -> Result<Vec<&str>, ParseError> {
    let mut names: Vec<&str> = Vec::new();
    for (i, raw) in text
        .split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
    {
        if i == MAX_ENTRIES {
            return Err(ParseError {
                annotation: super::PULL_SECRETS_ANNOTATION,
                message: format!("more than {MAX_ENTRIES} entries"),
            });
        }
        if !is_dns_label(raw) {
            return Err(ParseError {
                annotation: super::PULL_SECRETS_ANNOTATION,
                message: format!(
                    "entry {} {} is not a valid image pull secret name (lower-case letters, digits and '-', at most 63)",
                    i + 1,
                    quote(raw)
                ),
            });
        }
        if !names.contains(&raw) {
            names.push(raw);
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn parses_both_forms_and_both_separators() {
        let entries = parse_env("A=one, worker:B = two\n\n C=three,").unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].container, None);
        assert_eq!((entries[0].var, entries[0].secret), ("A", "one"));
        assert_eq!(entries[1].container, Some("worker"));
        assert_eq!((entries[1].var, entries[1].secret), ("B", "two"));
        assert_eq!(entries[2].position, 3);
    }

    #[rstest]
    #[case::no_equals(
        "A=a,B=b,FOO",
        "annotation secrets.agyn.io/env: entry 3 \"FOO\" has no \"=\""
    )]
    #[case::bad_var(
        "1A=a",
        "entry 1 \"1A=a\": \"1A\" is not a valid environment variable name"
    )]
    #[case::bad_secret("A=Not_Valid", "secret name \"Not_Valid\" is not valid")]
    #[case::empty_secret("A=", "secret name \"\" is not valid")]
    #[case::bad_container("Web:A=a", "container name \"Web\" is not valid")]
    #[case::empty_var("=a", "\"\" is not a valid environment variable name")]
    fn malformed_entries_are_named(#[case] text: &str, #[case] expected: &str) {
        let message = parse_env(text).unwrap_err().to_string();
        assert!(message.contains(expected), "{message}");
    }

    #[test]
    fn too_many_entries_are_refused() {
        let many: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("V{i}=s{i}")).collect();
        let message = parse_env(&many.join(",")).unwrap_err().to_string();
        assert!(message.contains("more than 256 entries"), "{message}");
        assert_eq!(
            parse_env(&many[..MAX_ENTRIES].join(",")).unwrap().len(),
            MAX_ENTRIES
        );
    }

    #[test]
    fn long_entries_are_shortened_in_messages() {
        let message = parse_env(&"X".repeat(500)).unwrap_err().to_string();
        assert!(message.len() < 250, "{message}");
    }

    #[rstest]
    #[case::secret("secret", Ok(Delivery::Secret))]
    #[case::env(" env ", Ok(Delivery::Env))]
    #[case::exec("exec", Ok(Delivery::Exec))]
    #[case::unknown(
        "Env",
        Err("\"Env\" is not a delivery; write \"secret\", \"exec\" or \"env\"")
    )]
    fn deliveries(#[case] text: &str, #[case] expected: Result<Delivery, &str>) {
        match (parse_delivery(text), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want),
            (Err(error), Err(want)) => {
                let message = error.to_string();
                assert!(
                    message.starts_with("annotation secrets.agyn.io/delivery: ")
                        && message.contains(want),
                    "{message}"
                );
            }
            (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn pull_secret_names() {
        assert_eq!(
            parse_pull_secrets("ghcr, quay ,ghcr").unwrap(),
            vec!["ghcr", "quay"]
        );
        assert!(
            parse_pull_secrets("ghcr,Bad Name")
                .unwrap_err()
                .to_string()
                .contains("entry 2")
        );
        assert!(parse_pull_secrets(" , ").unwrap().is_empty());
    }
}
