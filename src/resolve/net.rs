//! The network side of every provider: which addresses may be reached, the
//! HTTP client built from a provider's settings, and transport failures
//! turned into messages that say what to fix without mapping the network.

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::failure::{FailureKind, Invalid};

/// Cloud metadata and platform services, by address: never a provider.
/// AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack and most others answer
/// at 169.254.169.254 (inside the link-local range, refused whole); the
/// rest are listed.
const METADATA_V4: &[Ipv4Addr] = &[
    // Alibaba Cloud.
    Ipv4Addr::new(100, 100, 100, 200),
    // Oracle Cloud Infrastructure.
    Ipv4Addr::new(192, 0, 0, 192),
    // Azure's WireServer.
    Ipv4Addr::new(168, 63, 129, 16),
];
const METADATA_V6: &[Ipv6Addr] = &[
    // AWS (IMDS over IPv6).
    Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
    // GCP.
    Ipv6Addr::new(0xfd20, 0xce, 0, 0, 0, 0, 0, 0x254),
];

/// Host names that reach cloud metadata services.
const METADATA_HOSTS: &[&str] = &[
    "metadata.google.internal",
    "metadata",
    "instance-data",
    "metadata.azure.com",
    "metadata.tencentyun.com",
];

/// Whether an address is link-local, a cloud metadata or platform service,
/// or no address at all (unspecified, broadcast): never a provider,
/// whatever the operator's lists say.
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || METADATA_V4.contains(&v4)
        }
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
                return is_forbidden_ip(IpAddr::V4(Ipv4Addr::new(a, b, c, d)));
            }
            (seg[0] & 0xffc0) == 0xfe80 || v6.is_unspecified() || METADATA_V6.contains(&v6)
        }
    }
}

/// An address range, e.g. `10.0.0.0/8` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{text:?} is not an address range such as 10.0.0.0/8");
        let (address, prefix) = text.trim().split_once('/').ok_or_else(bad)?;
        let network: IpAddr = address.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        if prefix > bits {
            return Err(bad());
        }
        Ok(Cidr { network, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Which addresses providers may be reached at: never a forbidden one
/// ([`is_forbidden_ip`]), never one in `deny`, and, when `allow` is not
/// empty, only one in `allow` (`--provider-deny-cidrs`,
/// `--provider-allow-cidrs`).
#[derive(Debug, Clone, Default)]
pub struct NetPolicy {
    pub deny: Vec<Cidr>,
    pub allow: Vec<Cidr>,
}

impl NetPolicy {
    /// Why `ip` may not be reached, if it may not.
    pub fn refuses(&self, ip: IpAddr) -> Option<String> {
        if is_forbidden_ip(ip) {
            return Some(format!(
                "{ip} is a link-local or cloud metadata address, which a provider may not use"
            ));
        }
        if let Some(range) = self.deny.iter().find(|r| r.contains(ip)) {
            return Some(format!(
                "{ip} is in {range}, which --provider-deny-cidrs refuses"
            ));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|r| r.contains(ip)) {
            return Some(format!(
                "{ip} is outside the ranges of --provider-allow-cidrs"
            ));
        }
        None
    }
}

/// Checks a provider's base URL (`field` names it in the error): http or
/// https, a host, no user, path, query or fragment, an IPv4 address only in
/// plain dotted decimal, and no address or host the policy refuses.
/// Returns it without a trailing slash.
pub fn check_url(field: &str, text: &str, net: &NetPolicy) -> Result<String, Invalid> {
    let invalid = |message: String| Invalid::new(field, message);
    let url = reqwest::Url::parse(text)
        .map_err(|_| invalid("must be a URL such as https://vault.example.com:8200".to_owned()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(
            "must start with https:// (or http:// for a development server)".to_owned(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not hold a user name or password".to_owned()));
    }
    let written = written_authority(text, &url).map_err(invalid)?;
    check_plain_ipv4(written_host(written)).map_err(invalid)?;
    check_host(url.host(), net).map_err(invalid)?;
    Ok(url.origin().ascii_serialization())
}

/// The `host[:port]` of `text` as written, when nothing but a `/` follows
/// it. What was written, not what the parser made of it (`url`): the
/// parser drops `/v1/..` and an empty `#`.
fn written_authority<'t>(text: &'t str, url: &reqwest::Url) -> Result<&'t str, String> {
    let after_scheme = text.split_once("://").map_or("", |(_, rest)| rest);
    let (written, rest) = after_scheme
        .find(['/', '?', '#', '\\'])
        .map_or((after_scheme, ""), |at| after_scheme.split_at(at));
    if url.query().is_some() || url.fragment().is_some() || !matches!(rest, "" | "/") {
        return Err("must be the server's base URL, without a path, query or fragment".to_owned());
    }
    Ok(written)
}

/// The host of a written `host[:port]` or `[v6]:port`, without brackets.
fn written_host(written: &str) -> &str {
    if written.starts_with('[') {
        written
            .split(']')
            .next()
            .unwrap_or_default()
            .trim_start_matches('[')
    } else {
        written.rsplit_once(':').map_or(written, |(host, _)| host)
    }
}

/// Refuses a numeric host that is not an IPv4 address in plain dotted
/// decimal. The URL parser turns 2852039166, 0xa9fea9fe or
/// 0251.0376.0251.0376 into an address; only what was written plainly is
/// accepted.
fn check_plain_ipv4(host: &str) -> Result<(), String> {
    let bare = host.trim_end_matches('.');
    let numeric = !bare.is_empty()
        && bare.split('.').all(|part| {
            let part = part.to_ascii_lowercase();
            part.strip_prefix("0x")
                .map_or(part.chars().all(|c| c.is_ascii_digit()), |hex| {
                    hex.chars().all(|c| c.is_ascii_hexdigit())
                })
        });
    if numeric && bare.parse::<Ipv4Addr>().is_err() {
        return Err("must spell an IPv4 address in plain dotted decimal (a.b.c.d)".to_owned());
    }
    if numeric && bare.split('.').any(|p| p.len() > 1 && p.starts_with('0')) {
        return Err("must spell an IPv4 address without leading zeros".to_owned());
    }
    Ok(())
}

/// Refuses a missing host, an address the policy refuses and a cloud
/// metadata host.
fn check_host(host: Option<url::Host<&str>>, net: &NetPolicy) -> Result<(), String> {
    match host {
        None => return Err("must name a host".to_owned()),
        Some(url::Host::Ipv4(v4)) => {
            if let Some(why) = net.refuses(IpAddr::V4(v4)) {
                return Err(why);
            }
        }
        Some(url::Host::Ipv6(v6)) => {
            if let Some(why) = net.refuses(IpAddr::V6(v6)) {
                return Err(why);
            }
        }
        Some(url::Host::Domain(domain)) => {
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            if METADATA_HOSTS.contains(&domain.as_str()) {
                return Err(format!(
                    "{domain} is a cloud metadata host, which a provider may not use"
                ));
            }
        }
    }
    Ok(())
}

/// Why a provider's host was not connected to.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot resolve host {host}: {source}")]
    Lookup {
        host: String,
        source: std::io::Error,
    },
    #[error("host {host} resolves to {ip}: {why}")]
    Forbidden {
        host: String,
        ip: IpAddr,
        why: String,
    },
}

/// Resolves host names, refusing any name with an address the policy
/// refuses among its answers. Checking here, at connection time, rather
/// than when the provider is written, is what holds when DNS later points
/// the name somewhere else.
struct GuardedResolver(Arc<NetPolicy>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let policy = self.0.clone();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|source| HostError::Lookup {
                    host: host.clone(),
                    source,
                })?
                .collect();
            for addr in &addrs {
                if let Some(why) = policy.refuses(addr.ip()) {
                    return Err(HostError::Forbidden {
                        host,
                        ip: addr.ip(),
                        why,
                    }
                    .into());
                }
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
///   CA then cannot be bypassed by a certificate from a public CA for the
///   same name. Without it, the Mozilla web roots are trusted.
/// - No proxy from the environment: the connection must go where the
///   address (checked against the policy) says.
/// - No redirects: following one would send credentials to another host.
/// - `timeout` bounds each request, connection included.
/// - At most [`MAX_IN_FLIGHT`] idle connections are kept.
pub fn client(
    ca_pem: Option<&str>,
    timeout: Duration,
    net: &NetPolicy,
) -> Result<reqwest::Client, String> {
    crate::tls::provider();
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .user_agent(concat!("agyn-secrets/", env!("CARGO_PKG_VERSION")))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .pool_max_idle_per_host(MAX_IN_FLIGHT)
        .dns_resolver(Arc::new(GuardedResolver(Arc::new(net.clone()))));
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

/// Checks an address the client is about to send to, literal IPs included
/// (the resolver only sees names), against the policy.
pub fn check_target(url: &reqwest::Url, net: &NetPolicy) -> Result<(), String> {
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        _ => return Ok(()),
    };
    net.refuses(ip).map_or(Ok(()), Err)
}

/// What a person is told about a failed request to `address`: that it
/// timed out, that the address is refused, or that the provider cannot be
/// reached. Whether a port is closed, speaks TLS or plain HTTP is not told
/// (it would make the provider check a port scanner); it is logged at info
/// for the operator.
pub fn describe(error: &reqwest::Error, address: &str, timeout: Duration) -> (FailureKind, String) {
    if error.is_timeout() {
        return (
            FailureKind::Timeout,
            format!("timed out after {}", humantime::format_duration(timeout)),
        );
    }
    for candidate in causes(error) {
        if let Some(HostError::Forbidden { host, why, .. }) = candidate.downcast_ref::<HostError>()
        {
            return (
                FailureKind::ForbiddenAddress,
                format!("{host} may not be reached: {why}"),
            );
        }
        if let Some(io) = candidate.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return (
                FailureKind::Timeout,
                format!("timed out after {}", humantime::format_duration(timeout)),
            );
        }
    }
    tracing::info!(address, error = %chain(error), "Provider unreachable");
    (FailureKind::Unreachable, unreachable(address))
}

/// The message for a provider that cannot be reached, or does not answer
/// as the kind it is configured as.
pub fn unreachable(address: &str) -> String {
    format!(
        "cannot reach the provider at {address} (check the address, the network path and, for https, its ca_pem)"
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
    #[case::alibaba("100.100.100.200", true)]
    #[case::oracle("192.0.0.192", true)]
    #[case::azure_wireserver("168.63.129.16", true)]
    #[case::unspecified_v4("0.0.0.0", true)]
    #[case::broadcast("255.255.255.255", true)]
    #[case::metadata_v6("fd00:ec2::254", true)]
    #[case::gcp_v6("fd20:ce::254", true)]
    #[case::link_local_v6("fe80::1", true)]
    #[case::mapped("::ffff:169.254.169.254", true)]
    #[case::mapped_alibaba("::ffff:100.100.100.200", true)]
    #[case::nat64("64:ff9b::a9fe:a9fe", true)]
    #[case::loopback("127.0.0.1", false)]
    #[case::private("10.0.0.5", false)]
    #[case::cgnat_neighbour("100.100.100.201", false)]
    #[case::loopback_v6("::1", false)]
    #[case::ula_v6("fd00:ec2::253", false)]
    fn forbidden_ips(#[case] ip: &str, #[case] forbidden: bool) {
        assert_eq!(is_forbidden_ip(ip.parse().unwrap()), forbidden, "{ip}");
    }

    #[test]
    fn operators_narrow_the_policy() {
        let net = NetPolicy {
            deny: vec!["10.1.0.0/16".parse().unwrap()],
            allow: vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
        };
        assert!(net.refuses("10.2.3.4".parse().unwrap()).is_none());
        assert!(net.refuses("::1".parse().unwrap()).is_none());
        assert!(
            net.refuses("10.1.2.3".parse().unwrap())
                .unwrap()
                .contains("--provider-deny-cidrs")
        );
        assert!(
            net.refuses("192.168.1.1".parse().unwrap())
                .unwrap()
                .contains("--provider-allow-cidrs")
        );
        assert!(net.refuses("169.254.169.254".parse().unwrap()).is_some());
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("10.0.0.0".parse::<Cidr>().is_err());
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert!(all.contains("::ffff:8.8.8.8".parse().unwrap()));
    }

    #[rstest]
    #[case::https("https://vault.example.com:8200", true)]
    #[case::loopback("http://127.0.0.1:8200", true)]
    #[case::trailing_slash("https://vault.example.com/", true)]
    #[case::metadata_v4("http://169.254.169.254", false)]
    #[case::link_local("http://169.254.1.1:8200", false)]
    #[case::alibaba("http://100.100.100.200", false)]
    #[case::metadata_v6("http://[fd00:ec2::254]", false)]
    #[case::link_local_v6("http://[fe80::1]:8200", false)]
    #[case::mapped("http://[::ffff:169.254.169.254]", false)]
    #[case::gcp("http://metadata.google.internal", false)]
    #[case::gcp_trailing_dot("http://metadata.google.internal.", false)]
    #[case::decimal("http://2852039166", false)]
    #[case::hex("http://0xa9fea9fe", false)]
    #[case::octal("http://0251.0376.0251.0376", false)]
    #[case::trailing_dot_ip("http://169.254.169.254.", false)]
    #[case::nat64("http://[64:ff9b::a9fe:a9fe]", false)]
    #[case::plain_ip("http://10.0.0.5:8200", true)]
    #[case::no_scheme("vault.example.com", false)]
    #[case::file("file:///etc/passwd", false)]
    #[case::path("https://vault.example.com/v1/secret", false)]
    #[case::fragment("https://vault.example.com#frag", false)]
    #[case::query("https://vault.example.com?x=1", false)]
    #[case::dot_dot("https://vault.example.com/v1/../", false)]
    #[case::empty_fragment("https://vault.example.com/#", false)]
    #[case::backslash("https://vault.example.com\\..\\x", false)]
    #[case::user("https://user:pw@vault.example.com", false)]
    fn urls(#[case] url: &str, #[case] ok: bool) {
        let result = check_url("address", url, &NetPolicy::default());
        assert_eq!(result.is_ok(), ok, "{url}: {result:?}");
    }

    #[tokio::test]
    async fn the_resolver_refuses_what_the_policy_refuses() {
        let resolver = GuardedResolver(Arc::new(NetPolicy::default()));
        let name: Name = "169.254.169.254".parse().unwrap();
        let error = match resolver.resolve(name).await {
            Ok(_) => panic!("a metadata address was resolved"),
            Err(error) => error,
        };
        assert!(
            error.to_string().contains("link-local or cloud metadata"),
            "{error}"
        );
        let name: Name = "127.0.0.1".parse().unwrap();
        let addrs: Vec<_> = resolver.resolve(name).await.unwrap().collect();
        assert_eq!(addrs[0].ip(), IpAddr::from([127, 0, 0, 1]));
        let narrow = GuardedResolver(Arc::new(NetPolicy {
            deny: vec!["127.0.0.0/8".parse().unwrap()],
            allow: Vec::new(),
        }));
        let name: Name = "localhost".parse().unwrap();
        assert!(narrow.resolve(name).await.is_err());
    }

    #[test]
    fn clients_refuse_bad_pem() {
        let t = Duration::from_secs(1);
        let net = NetPolicy::default();
        assert!(client(None, t, &net).is_ok());
        assert!(client(Some("not a pem"), t, &net).is_err());
    }
}
