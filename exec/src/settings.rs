//! The wrapper's settings, from `AGYN_EXEC_*` environment variables that the webhook
//! puts on the container. They name where to ask and whom to trust; never a value.

use std::ffi::{OsStr, OsString};
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Where the kubelet mounts the projected token the webhook asks for.
pub const DEFAULT_TOKEN_FILE: &str = "/var/run/secrets/agyn-secrets/token";
/// How long the wrapper keeps retrying when `AGYN_EXEC_TIMEOUT` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A setting that is missing or wrong. The messages name the variable to fix.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{0} is not set; the webhook sets it on containers with delivery exec")]
    Missing(&'static str),
    #[error("{0} is not valid UTF-8")]
    NotUtf8(&'static str),
    #[error("AGYN_EXEC_URL {url:?} {problem}")]
    Url { url: String, problem: &'static str },
    #[error("set only one of AGYN_EXEC_CA and AGYN_EXEC_CA_FILE")]
    TwoCas,
    #[error(
        "neither AGYN_EXEC_CA nor AGYN_EXEC_CA_FILE is set; one of them must hold the certificate authority of the agyn-secrets server"
    )]
    NoCa,
    #[error("cannot read AGYN_EXEC_CA_FILE {path}: {source}")]
    CaFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} holds no PEM certificate")]
    NoCertificate(&'static str),
    #[error("AGYN_EXEC_TIMEOUT {value:?}: {problem}")]
    Timeout { value: String, problem: String },
}

type Result<T, E = SettingsError> = std::result::Result<T, E>;

/// What the wrapper needs to fetch the values.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The server's base URL (`AGYN_EXEC_URL`).
    pub url: ServerUrl,
    /// The only certificate authorities trusted (`AGYN_EXEC_CA` or `AGYN_EXEC_CA_FILE`).
    pub roots: Vec<CertificateDer<'static>>,
    /// The name of the container the wrapper runs in (`AGYN_EXEC_CONTAINER`).
    pub container: String,
    /// The pod's projected service-account token (`AGYN_EXEC_TOKEN_FILE`); read afresh on
    /// every attempt, since the kubelet rotates it.
    pub token_file: PathBuf,
    /// How long to keep retrying (`AGYN_EXEC_TIMEOUT`).
    pub timeout: Duration,
}

impl Settings {
    /// Reads the settings from this process's environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// Reads the settings through `lookup`, which answers an environment variable's value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Self> {
        let text = |name: &'static str| -> Result<Option<String>> {
            match lookup(name) {
                None => Ok(None),
                Some(value) if value.is_empty() => Ok(None),
                Some(value) => value
                    .into_string()
                    .map(Some)
                    .map_err(|_| SettingsError::NotUtf8(name)),
            }
        };
        let url = text("AGYN_EXEC_URL")?.ok_or(SettingsError::Missing("AGYN_EXEC_URL"))?;
        let url = ServerUrl::parse(&url)?;
        let container = text("AGYN_EXEC_CONTAINER")?
            .ok_or(SettingsError::Missing("AGYN_EXEC_CONTAINER"))?
            .trim()
            .to_owned();
        if container.is_empty() {
            return Err(SettingsError::Missing("AGYN_EXEC_CONTAINER"));
        }
        let roots = match (text("AGYN_EXEC_CA")?, lookup("AGYN_EXEC_CA_FILE")) {
            (Some(_), Some(file)) if !file.is_empty() => return Err(SettingsError::TwoCas),
            (Some(pem), _) => certificates(pem.as_bytes(), "AGYN_EXEC_CA")?,
            (None, Some(file)) if !file.is_empty() => {
                let path = PathBuf::from(file);
                let pem = std::fs::read(&path)
                    .map_err(|source| SettingsError::CaFile { path, source })?;
                certificates(&pem, "AGYN_EXEC_CA_FILE")?
            }
            (None, _) => return Err(SettingsError::NoCa),
        };
        let token_file = lookup("AGYN_EXEC_TOKEN_FILE")
            .filter(|path| !path.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_TOKEN_FILE), PathBuf::from);
        let timeout = match text("AGYN_EXEC_TIMEOUT")? {
            None => DEFAULT_TIMEOUT,
            Some(value) => parse_duration(&value)
                .map_err(|problem| SettingsError::Timeout { value, problem })?,
        };
        Ok(Self {
            url,
            roots,
            container,
            token_file,
            timeout,
        })
    }
}

/// Whether a variable is one of the wrapper's own settings, which the command must not see.
pub(crate) fn is_setting(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b"AGYN_EXEC_")
}

fn certificates(pem: &[u8], name: &'static str) -> Result<Vec<CertificateDer<'static>>> {
    let roots: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .filter_map(std::result::Result::ok)
        .collect();
    if roots.is_empty() {
        return Err(SettingsError::NoCertificate(name));
    }
    Ok(roots)
}

/// The server's base URL: `https://host[:port][/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    text: String,
    host: String,
    port: u16,
    path: String,
}

impl ServerUrl {
    /// Parses a base URL. Only `https` is accepted: the token must never travel in clear.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let fail = |problem| SettingsError::Url {
            url: text.to_owned(),
            problem,
        };
        let rest = match text.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => rest,
            Some(_) => return Err(fail("must start with https://")),
            None => return Err(fail("is not a URL; expected https://host:port")),
        };
        if rest.contains(['?', '#']) {
            return Err(fail("must not have a query or a fragment"));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.contains('@') {
            return Err(fail("must not hold a user name or password"));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (address, after) = bracketed
                .split_once(']')
                .ok_or_else(|| fail("has an IPv6 address without its closing ']'"))?;
            let address: Ipv6Addr = address
                .parse()
                .map_err(|_| fail("has an invalid IPv6 address"))?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| fail("has text after the IPv6 address"))?,
                ),
            };
            (address.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host.to_ascii_lowercase(), Some(port)),
                None => (authority.to_ascii_lowercase(), None),
            }
        };
        let port = match port {
            None => 443,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|&port| port != 0)
                .ok_or_else(|| fail("has an invalid port"))?,
        };
        if host.parse::<IpAddr>().is_err() && !crate::resolve::is_host_name(&host) {
            return Err(fail("has an invalid host name"));
        }
        Ok(Self {
            text: text.trim_end_matches('/').to_owned(),
            host,
            port,
            path: path.trim_end_matches('/').to_owned(),
        })
    }

    /// The host: a name (perhaps ending in `.`), or an IP address without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, 443 when the URL names none.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path prefix before `/v1/...`, empty or starting with `/`, with no trailing `/`.
    pub fn base_path(&self) -> &str {
        &self.path
    }

    /// `host:port` as the `Host` header spells it.
    pub(crate) fn authority(&self) -> String {
        let host = self.host.trim_end_matches('.');
        if host.contains(':') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl std::fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parses a duration such as `500ms`, `30s`, `2m`, `1h` or `1m30s`; a bare number is
/// seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let seconds = text.parse::<u64>().map_err(|_| "is too large".to_owned())?;
        return nonzero(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let units = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        if digits == 0 || units == 0 {
            return Err(
                "expected a number and a unit (ms, s, m or h), e.g. 500ms, 30s or 2m".into(),
            );
        }
        let number = rest[..digits]
            .parse::<u64>()
            .map_err(|_| "is too large".to_owned())?;
        let unit = match &rest[digits..digits + units] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            other => return Err(format!("unknown unit {other:?}; use ms, s, m or h")),
        };
        let part = u32::try_from(number)
            .ok()
            .and_then(|number| unit.checked_mul(number))
            .ok_or_else(|| "is too large".to_owned())?;
        total = total
            .checked_add(part)
            .ok_or_else(|| "is too large".to_owned())?;
        rest = rest[digits + units..].trim_start();
    }
    nonzero(total)
}

fn nonzero(duration: Duration) -> Result<Duration, String> {
    if duration.is_zero() {
        Err("must be more than zero".into())
    } else {
        Ok(duration)
    }
}

/// Writes a duration the way the settings spell it: `250ms`, `60s`, `1.5s`.
pub(crate) fn human(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{}ms", duration.as_millis())
    } else if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::millis("500ms", 500)]
    #[case::seconds("30s", 30_000)]
    #[case::minutes("2m", 120_000)]
    #[case::hours("1h", 3_600_000)]
    #[case::compound("1m30s", 90_000)]
    #[case::spaced(" 1m 30s ", 90_000)]
    #[case::bare("45", 45_000)]
    fn parses_durations(#[case] text: &str, #[case] millis: u64) {
        assert_eq!(parse_duration(text), Ok(Duration::from_millis(millis)));
    }

    #[rstest]
    #[case::empty("")]
    #[case::zero("0s")]
    #[case::bare_zero("0")]
    #[case::unit_only("s")]
    #[case::unknown_unit("5d")]
    #[case::fraction("1.5s")]
    #[case::negative("-1s")]
    #[case::overflow("99999999999999999999h")]
    fn refuses_bad_durations(#[case] text: &str) {
        assert!(parse_duration(text).is_err(), "{text}");
    }

    #[rstest]
    #[case::name_and_port(
        "https://agyn-secrets.agyn-secrets.svc:8444",
        "agyn-secrets.agyn-secrets.svc",
        8444,
        ""
    )]
    #[case::default_port("https://Example.COM/", "example.com", 443, "")]
    #[case::prefix("https://example.com:8444/agyn/", "example.com", 8444, "/agyn")]
    #[case::ipv4("https://127.0.0.1:9", "127.0.0.1", 9, "")]
    #[case::ipv6("https://[::1]:8444", "::1", 8444, "")]
    #[case::absolute(
        "https://svc.ns.svc.cluster.local.:8444",
        "svc.ns.svc.cluster.local.",
        8444,
        ""
    )]
    fn parses_urls(#[case] text: &str, #[case] host: &str, #[case] port: u16, #[case] path: &str) {
        let url = ServerUrl::parse(text).unwrap();
        assert_eq!(
            (url.host(), url.port(), url.base_path()),
            (host, port, path)
        );
    }

    #[test]
    fn the_host_header_brackets_ipv6_and_drops_the_root_dot() {
        let header = |text| ServerUrl::parse(text).unwrap().authority();
        assert_eq!(header("https://[::1]:8444"), "[::1]:8444");
        assert_eq!(header("https://svc.ns.:8444"), "svc.ns:8444");
    }

    #[rstest]
    #[case::http("http://example.com:8444")]
    #[case::no_scheme("example.com:8444")]
    #[case::userinfo("https://user:pass@example.com")]
    #[case::query("https://example.com/?a=b")]
    #[case::bad_port("https://example.com:http")]
    #[case::port_zero("https://example.com:0")]
    #[case::bad_host("https://exa mple.com")]
    #[case::empty_host("https://:8444")]
    #[case::open_bracket("https://[::1:8444")]
    fn refuses_bad_urls(#[case] text: &str) {
        assert!(ServerUrl::parse(text).is_err(), "{text}");
    }

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";

    fn settings(vars: &[(&str, &str)]) -> Result<Settings> {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(name, value)| ((*name).to_owned(), OsString::from(value)))
            .collect();
        Settings::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn reads_settings_with_defaults() {
        let settings = settings(&[
            (
                "AGYN_EXEC_URL",
                "https://agyn-secrets.agyn-secrets.svc:8444",
            ),
            ("AGYN_EXEC_CA", CA),
            ("AGYN_EXEC_CONTAINER", "app"),
        ])
        .unwrap();
        assert_eq!(settings.container, "app");
        assert_eq!(settings.roots.len(), 1);
        assert_eq!(settings.token_file, PathBuf::from(DEFAULT_TOKEN_FILE));
        assert_eq!(settings.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn reads_the_ca_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.crt");
        std::fs::write(&path, CA).unwrap();
        let settings = settings(&[
            ("AGYN_EXEC_URL", "https://127.0.0.1:8444"),
            ("AGYN_EXEC_CA_FILE", path.to_str().unwrap()),
            ("AGYN_EXEC_CONTAINER", "app"),
            ("AGYN_EXEC_TOKEN_FILE", "/token"),
            ("AGYN_EXEC_TIMEOUT", "2m"),
        ])
        .unwrap();
        assert_eq!(settings.roots.len(), 1);
        assert_eq!(settings.token_file, PathBuf::from("/token"));
        assert_eq!(settings.timeout, Duration::from_secs(120));
    }

    #[rstest]
    #[case::no_url(&[("AGYN_EXEC_CA", CA), ("AGYN_EXEC_CONTAINER", "app")], "AGYN_EXEC_URL is not set")]
    #[case::no_container(&[("AGYN_EXEC_URL", "https://h:1"), ("AGYN_EXEC_CA", CA)], "AGYN_EXEC_CONTAINER is not set")]
    #[case::no_ca(&[("AGYN_EXEC_URL", "https://h:1"), ("AGYN_EXEC_CONTAINER", "app")], "neither AGYN_EXEC_CA")]
    #[case::two_cas(&[("AGYN_EXEC_URL", "https://h:1"), ("AGYN_EXEC_CONTAINER", "app"), ("AGYN_EXEC_CA", CA), ("AGYN_EXEC_CA_FILE", "/ca")], "only one of")]
    #[case::ca_not_pem(&[("AGYN_EXEC_URL", "https://h:1"), ("AGYN_EXEC_CONTAINER", "app"), ("AGYN_EXEC_CA", "hello")], "holds no PEM certificate")]
    #[case::ca_file_missing(&[("AGYN_EXEC_URL", "https://h:1"), ("AGYN_EXEC_CONTAINER", "app"), ("AGYN_EXEC_CA_FILE", "/nonexistent/ca.crt")], "cannot read AGYN_EXEC_CA_FILE /nonexistent/ca.crt")]
    #[case::http(&[("AGYN_EXEC_URL", "http://h:1"), ("AGYN_EXEC_CONTAINER", "app"), ("AGYN_EXEC_CA", CA)], "must start with https://")]
    #[case::timeout(&[("AGYN_EXEC_URL", "https://h:1"), ("AGYN_EXEC_CONTAINER", "app"), ("AGYN_EXEC_CA", CA), ("AGYN_EXEC_TIMEOUT", "soon")], "AGYN_EXEC_TIMEOUT \"soon\"")]
    fn explains_bad_settings(#[case] vars: &[(&str, &str)], #[case] expected: &str) {
        let message = settings(vars).unwrap_err().to_string();
        assert!(message.contains(expected), "{message}");
    }

    #[test]
    fn only_the_wrapper_settings_are_hidden_from_the_command() {
        assert!(is_setting(OsStr::new("AGYN_EXEC_URL")));
        assert!(is_setting(OsStr::new("AGYN_EXEC_ANYTHING")));
        assert!(!is_setting(OsStr::new("AGYN_EXECUTOR")));
        assert!(!is_setting(OsStr::new("PATH")));
    }

    #[rstest]
    #[case(Duration::from_millis(250), "250ms")]
    #[case(Duration::from_secs(60), "60s")]
    #[case(Duration::from_millis(1500), "1.5s")]
    fn writes_durations(#[case] duration: Duration, #[case] text: &str) {
        assert_eq!(human(duration), text);
    }
}
