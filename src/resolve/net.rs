//! The network side of a provider: which addresses may be reached, the
//! HTTP client built from a provider's settings, and transport failures
//! turned into messages a person can act on.

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether an address is in a link-local or cloud-metadata range, which a
/// provider may never point at (169.254.0.0/16, fe80::/10, fd00:ec2::254),
/// or is no address at all (unspecified, broadcast).
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden_ip(IpAddr::V4(v4));
            }
            // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
            let seg = v6.segments();
            if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b, c, d] = v6.octets()[12..] else {
                    unreachable!("an IPv6 address has 16 octets")
                };
                return is_forbidden_ip(IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)));
            }
            const EC2_METADATA: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
            (v6.segments()[0] & 0xffc0) == 0xfe80 || v6.is_unspecified() || v6 == EC2_METADATA
        }
    }
}

/// Why a provider's host was not connected to.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot resolve host {host}: {source}")]
    Lookup {
        host: String,
        source: std::io::Error,
    },
    #[error(
        "host {host} resolves to {ip}, a link-local or cloud metadata address, which a provider may not use"
    )]
    Forbidden { host: String, ip: IpAddr },
}

/// Resolves host names, refusing any name with a link-local or metadata
/// address among its answers. Checking here, at connection time, rather
/// than when the provider is written, is what holds when DNS later points
/// the name somewhere else.
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|source| HostError::Lookup {
                    host: host.clone(),
                    source,
                })?
                .collect();
            if let Some(bad) = addrs.iter().find(|a| is_forbidden_ip(a.ip())) {
                return Err(HostError::Forbidden { host, ip: bad.ip() }.into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Most requests one provider session has in flight at once; more wait
/// their turn, within the admission's deadline. A burst of pod creations
/// then opens at most this many connections to a provider instead of one
/// per read, which spares the provider and the webhook's memory alike.
pub const MAX_IN_FLIGHT: usize = 32;

/// The HTTP client of one provider.
///
/// - With `ca_pem`, the provider's CA is the only trust anchor: a private
///   Vault CA then cannot be bypassed by a certificate from a public CA
///   for the same name. Without it, the Mozilla web roots are trusted.
/// - No proxy from the environment: the connection must go where the
///   address (checked against forbidden ranges) says.
/// - No redirects: following one would send the token to another host.
/// - `timeout` bounds each request, connection included.
/// - At most [`MAX_IN_FLIGHT`] idle connections are kept.
pub fn client(
    address: &str,
    ca_pem: Option<&str>,
    timeout: Duration,
) -> Result<reqwest::Client, String> {
    let url = reqwest::Url::parse(address)
        .map_err(|e| format!("address {address:?} is not a URL: {e}"))?;
    let host = url.host_str().unwrap_or_default();
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        && is_forbidden_ip(ip)
    {
        return Err(format!(
            "address {address} is a link-local or cloud metadata address, which a provider may not use"
        ));
    }
    crate::tls::provider();
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .user_agent(concat!("agyn-secrets/", env!("CARGO_PKG_VERSION")))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .pool_max_idle_per_host(MAX_IN_FLIGHT)
        .dns_resolver(Arc::new(GuardedResolver));
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| format!("ca_pem cannot be read: {e}"))?;
        if certs.is_empty() {
            return Err("ca_pem holds no certificate".into());
        }
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| format!("cannot set up an HTTP client: {}", chain(&e)))
}

/// What kind of transport failure happened, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Timeout,
    Refused,
    Tls,
    Address,
    Connect,
}

/// Describes a failed request to `address`.
pub fn describe(error: &reqwest::Error, address: &str, timeout: Duration) -> (Transport, String) {
    if error.is_timeout() {
        return (
            Transport::Timeout,
            format!("timed out after {}", humantime::format_duration(timeout)),
        );
    }
    for candidate in causes(error) {
        if let Some(host) = candidate.downcast_ref::<HostError>() {
            let kind = match host {
                HostError::Forbidden { .. } => Transport::Address,
                HostError::Lookup { .. } => Transport::Connect,
            };
            return (kind, host.to_string());
        }
        if let Some(tls) = candidate.downcast_ref::<rustls::Error>() {
            let hint = match tls {
                rustls::Error::InvalidCertificate(_) => {
                    "; set the provider's ca_pem to the CA that signed the server's certificate"
                }
                _ => "",
            };
            return (
                Transport::Tls,
                format!("TLS error talking to {address}: {tls}{hint}"),
            );
        }
        if let Some(io) = candidate.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    return (
                        Transport::Refused,
                        format!(
                            "connection refused at {address} (is the server running and the address right?)"
                        ),
                    );
                }
                std::io::ErrorKind::TimedOut => {
                    return (
                        Transport::Timeout,
                        format!("timed out after {}", humantime::format_duration(timeout)),
                    );
                }
                _ => {}
            }
        }
    }
    (
        Transport::Connect,
        format!("cannot reach {address}: {}", chain(error)),
    )
}

/// Every cause of an error, outermost first. `io::Error::source` skips
/// the error an `io::Error` wraps (and TLS failures arrive as an io error
/// inside an io error), so wrapped errors are visited too.
fn causes<'a>(error: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut found = Vec::new();
    let mut pending = vec![error];
    while let Some(current) = pending.pop() {
        found.push(current);
        if let Some(source) = current.source() {
            pending.push(source);
        }
        if let Some(inner) = current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            pending.push(inner);
        }
    }
    found
}

/// An error and its causes on one line, without repeating a cause that
/// its parent already quotes.
fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::metadata_v4("169.254.169.254", true)]
    #[case::link_local_v4("169.254.1.1", true)]
    #[case::unspecified_v4("0.0.0.0", true)]
    #[case::broadcast("255.255.255.255", true)]
    #[case::metadata_v6("fd00:ec2::254", true)]
    #[case::link_local_v6("fe80::1", true)]
    #[case::mapped("::ffff:169.254.169.254", true)]
    #[case::loopback("127.0.0.1", false)]
    #[case::private("10.0.0.5", false)]
    #[case::loopback_v6("::1", false)]
    #[case::ula_v6("fd00:ec2::253", false)]
    fn forbidden_ips(#[case] ip: &str, #[case] forbidden: bool) {
        assert_eq!(is_forbidden_ip(ip.parse().unwrap()), forbidden, "{ip}");
    }

    #[tokio::test]
    async fn the_resolver_refuses_metadata_answers() {
        let name: Name = "169.254.169.254".parse().unwrap();
        let error = match GuardedResolver.resolve(name).await {
            Ok(_) => panic!("a metadata address was resolved"),
            Err(error) => error,
        };
        assert!(
            error.to_string().contains("link-local or cloud metadata"),
            "{error}"
        );
        let name: Name = "127.0.0.1".parse().unwrap();
        let addrs: Vec<_> = GuardedResolver.resolve(name).await.unwrap().collect();
        assert_eq!(addrs[0].ip(), IpAddr::from([127, 0, 0, 1]));
    }

    #[test]
    fn causes_look_inside_nested_io_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let nested =
            std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, tls));
        assert!(
            causes(&nested)
                .iter()
                .any(|e| e.downcast_ref::<rustls::Error>().is_some())
        );
    }

    #[test]
    fn clients_refuse_metadata_literals_and_bad_pem() {
        let t = Duration::from_secs(1);
        assert!(client("http://169.254.169.254", None, t).is_err());
        assert!(client("http://[fd00:ec2::254]:80", None, t).is_err());
        assert!(client("http://127.0.0.1:8200", None, t).is_ok());
        assert!(client("https://vault.example.com", Some("not a pem"), t).is_err());
    }
}
