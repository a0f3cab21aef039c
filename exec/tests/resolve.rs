//! The resolver against real files and a real DNS server on loopback (on a free port,
//! so that these run without root).

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use agyn_secrets_exec::Resolver;
use agyn_secrets_exec::resolve::ResolveError;
use common::dns::{Data, DnsServer, Zone};

const KUBE_SEARCH: &str =
    "search team-a.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n";

fn root(hosts: &str, resolv_conf: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("etc")).unwrap();
    std::fs::write(dir.path().join("etc/hosts"), hosts).unwrap();
    std::fs::write(dir.path().join("etc/resolv.conf"), resolv_conf).unwrap();
    dir
}

fn resolver(root: &Path, dns: &DnsServer) -> Resolver {
    Resolver::with_root(root).with_port(dns.addr.port())
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

fn v4(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn an_ip_address_is_its_own_answer() {
    let resolver = Resolver::with_root("/nonexistent");
    assert_eq!(
        resolver.lookup("10.1.2.3", soon()).unwrap(),
        [v4("10.1.2.3")]
    );
    assert_eq!(
        resolver.lookup("[::1]", soon()).unwrap(),
        [IpAddr::V6(Ipv6Addr::LOCALHOST)]
    );
}

#[test]
fn the_hosts_file_comes_before_dns() {
    let dns = DnsServer::start(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        0,
        Zone::new().record("pinned.example", Data::A(Ipv4Addr::new(10, 9, 9, 9))),
    );
    let dir = root(
        "127.0.0.1 localhost\n10.0.0.7 pinned.example pinned # comment\n",
        "nameserver 127.0.0.1\n",
    );
    let resolver = resolver(dir.path(), &dns);
    assert_eq!(
        resolver.lookup("pinned.example", soon()).unwrap(),
        [v4("10.0.0.7")]
    );
    assert_eq!(resolver.lookup("PINNED", soon()).unwrap(), [v4("10.0.0.7")]);
    assert!(dns.questions().is_empty(), "{:?}", dns.questions());
}

#[test]
fn search_domains_are_tried_in_order_before_the_name_itself() {
    let dns = DnsServer::start(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        0,
        Zone::new().record(
            "agyn-secrets.agyn-secrets.svc.cluster.local",
            Data::A(Ipv4Addr::new(10, 96, 0, 44)),
        ),
    );
    let dir = root("", &format!("nameserver 127.0.0.1\n{KUBE_SEARCH}"));
    let found = resolver(dir.path(), &dns)
        .lookup("agyn-secrets.agyn-secrets.svc", soon())
        .unwrap();
    assert_eq!(found, [v4("10.96.0.44")]);
    assert_eq!(
        dns.names_asked(),
        [
            "agyn-secrets.agyn-secrets.svc.team-a.svc.cluster.local",
            "agyn-secrets.agyn-secrets.svc.svc.cluster.local",
            "agyn-secrets.agyn-secrets.svc.cluster.local",
        ]
    );
}

#[test]
fn an_absolute_name_skips_the_search_domains() {
    let dns = DnsServer::start(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        0,
        Zone::new().record("svc.example", Data::A(Ipv4Addr::new(10, 0, 0, 5))),
    );
    let dir = root("", &format!("nameserver 127.0.0.1\n{KUBE_SEARCH}"));
    let found = resolver(dir.path(), &dns)
        .lookup("svc.example.", soon())
        .unwrap();
    assert_eq!(found, [v4("10.0.0.5")]);
    assert_eq!(dns.names_asked(), ["svc.example"]);
}

#[test]
fn cnames_are_followed() {
    let dns = DnsServer::start(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        0,
        Zone::new()
            .record("secrets.example", Data::Cname("lb.example".into()))
            .record("lb.example", Data::Cname("lb-1.example".into()))
            .record("lb-1.example", Data::A(Ipv4Addr::new(10, 0, 0, 6))),
    );
    let dir = root("", "nameserver 127.0.0.1\n");
    let found = resolver(dir.path(), &dns)
        .lookup("secrets.example", soon())
        .unwrap();
    assert_eq!(found, [v4("10.0.0.6")]);
}

#[test]
fn an_ipv6_only_name_is_found_by_aaaa() {
    let address: Ipv6Addr = "fd00::44".parse().unwrap();
    let dns = DnsServer::start(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        0,
        Zone::new().record("v6.example", Data::Aaaa(address)),
    );
    let dir = root("", "nameserver 127.0.0.1\n");
    let found = resolver(dir.path(), &dns)
        .lookup("v6.example", soon())
        .unwrap();
    assert_eq!(found, [IpAddr::V6(address)]);
}

#[test]
fn a_truncated_answer_is_asked_again_over_tcp() {
    let dns = DnsServer::start(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        0,
        Zone::new()
            .record("big.example", Data::A(Ipv4Addr::new(10, 0, 0, 8)))
            .truncate_udp(),
    );
    let dir = root("", "nameserver 127.0.0.1\n");
    let found = resolver(dir.path(), &dns)
        .lookup("big.example", soon())
        .unwrap();
    assert_eq!(found, [v4("10.0.0.8")]);
    let transports: Vec<_> = dns.questions().iter().map(|q| q.transport).collect();
    assert_eq!(transports, ["udp", "tcp"]);
}

#[test]
fn a_name_nobody_knows_is_not_found_with_what_was_tried() {
    let dns = DnsServer::start(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, Zone::new());
    let dir = root("", &format!("nameserver 127.0.0.1\n{KUBE_SEARCH}"));
    let error = resolver(dir.path(), &dns)
        .lookup("nowhere", soon())
        .unwrap_err();
    assert!(matches!(error, ResolveError::NotFound { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("nowhere.team-a.svc.cluster.local"),
        "{message}"
    );
    assert!(message.contains("etc/hosts"), "{message}");
    // A name that does not exist is not asked for AAAA as well.
    assert!(
        dns.questions().iter().all(|q| q.kind == 1),
        "{:?}",
        dns.questions()
    );
}

#[test]
fn a_failing_nameserver_is_reported_after_its_attempts() {
    let dns = DnsServer::start(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, Zone::new().fail());
    let dir = root("", "nameserver 127.0.0.1\noptions attempts:2\n");
    let error = resolver(dir.path(), &dns)
        .lookup("svc.example", soon())
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, ResolveError::NoAnswer { .. }), "{error:?}");
    assert!(message.contains("SERVFAIL"), "{message}");
    assert!(message.contains("resolv.conf"), "{message}");
}

#[test]
fn a_silent_nameserver_times_out_by_the_deadline() {
    // A bound socket that never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dir = root("", "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n");
    let resolver = Resolver::with_root(dir.path()).with_port(silent.local_addr().unwrap().port());
    let error = resolver
        .lookup("svc.example", Instant::now() + Duration::from_millis(300))
        .unwrap_err();
    assert!(
        matches!(
            error,
            ResolveError::TimedOut(_) | ResolveError::NoAnswer { .. }
        ),
        "{error:?}"
    );
}

#[test]
fn missing_files_mean_no_hosts_and_the_local_nameserver() {
    let dns = DnsServer::start(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        0,
        Zone::new().record("svc.example", Data::A(Ipv4Addr::new(10, 0, 0, 9))),
    );
    let dir = tempfile::tempdir().unwrap();
    let found = resolver(dir.path(), &dns)
        .lookup("svc.example", soon())
        .unwrap();
    assert_eq!(found, [v4("10.0.0.9")]);
}

#[test]
fn an_invalid_name_is_refused_before_any_question() {
    let error = Resolver::with_root("/nonexistent")
        .lookup("bad name", soon())
        .unwrap_err();
    assert!(matches!(error, ResolveError::InvalidName(_)), "{error:?}");
}
