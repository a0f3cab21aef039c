//! Host name resolution without libc.
//!
//! The wrapper is linked statically against glibc, whose `getaddrinfo` cannot load the NSS
//! modules it needs for names, and it runs in images that have no NSS modules at all
//! (scratch, distroless-static, Alpine with musl). So it reads `/etc/hosts` and
//! `/etc/resolv.conf` itself and asks the nameservers over UDP (TCP when an answer is
//! truncated), as a libc stub resolver does: `search` domains and `ndots` as Kubernetes
//! writes them, `timeout` and `attempts`, CNAMEs followed.
//!
//! The files are read under a root directory, `/` for the binary, so that tests can point
//! at files of their own.

mod conf;
mod hosts;
mod wire;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use conf::ResolvConf;

use wire::{QueryType, Reply};

/// Why a host name has no address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{0:?} is not a valid host name")]
    InvalidName(String),
    #[error("host {name:?} is not in {hosts} and DNS knows no address for it (tried {tried})")]
    NotFound {
        name: String,
        hosts: String,
        tried: String,
    },
    #[error("no nameserver answered for {name:?} ({last}); nameservers from {conf}: {servers}")]
    NoAnswer {
        name: String,
        last: String,
        conf: String,
        servers: String,
    },
    #[error("timed out resolving {0:?}")]
    TimedOut(String),
}

/// Resolves host names from the files under a root directory and the nameservers they name.
#[derive(Debug, Clone)]
pub struct Resolver {
    root: PathBuf,
    port: u16,
}

impl Resolver {
    /// The resolver of this machine: `/etc/hosts`, `/etc/resolv.conf`, nameservers on port 53.
    pub fn system() -> Self {
        Self::with_root("/")
    }

    /// A resolver that reads `etc/hosts` and `etc/resolv.conf` under `root`.
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            port: 53,
        }
    }

    /// Asks the nameservers on `port` instead of 53 (`resolv.conf` cannot say a port; tests
    /// without the privilege to bind port 53 serve DNS elsewhere).
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    fn hosts_path(&self) -> PathBuf {
        self.root.join("etc/hosts")
    }

    fn conf_path(&self) -> PathBuf {
        self.root.join("etc/resolv.conf")
    }

    /// The addresses of `host`, in the order to try them, by `deadline`.
    ///
    /// An IP address is its own answer; a name is looked up in `hosts` first, then in DNS.
    pub fn lookup(&self, host: &str, deadline: Instant) -> Result<Vec<IpAddr>, ResolveError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(address) = host.parse::<IpAddr>() {
            return Ok(vec![address]);
        }
        if !is_host_name(host) {
            return Err(ResolveError::InvalidName(host.to_owned()));
        }
        let hosts_path = self.hosts_path();
        // A missing or unreadable hosts file is common in minimal images: DNS still works.
        if let Ok(text) = std::fs::read_to_string(&hosts_path) {
            let found = hosts::lookup(&text, host);
            if !found.is_empty() {
                return Ok(found);
            }
        }
        let conf_path = self.conf_path();
        let conf = match std::fs::read_to_string(&conf_path) {
            Ok(text) => ResolvConf::parse(&text),
            // As libc does without the file: the local nameserver, no search domains.
            Err(_) => ResolvConf::default(),
        };
        self.query_dns(&conf, host, deadline)
            .map_err(|error| match error {
                DnsFailure::NotFound { tried } => ResolveError::NotFound {
                    name: host.to_owned(),
                    hosts: hosts_path.display().to_string(),
                    tried: tried.join(", "),
                },
                DnsFailure::NoAnswer { last } => ResolveError::NoAnswer {
                    name: host.to_owned(),
                    last,
                    conf: conf_path.display().to_string(),
                    servers: conf
                        .nameservers
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                },
                DnsFailure::TimedOut => ResolveError::TimedOut(host.to_owned()),
            })
    }

    fn query_dns(
        &self,
        conf: &ResolvConf,
        host: &str,
        deadline: Instant,
    ) -> Result<Vec<IpAddr>, DnsFailure> {
        let candidates = conf.candidates(host);
        let mut server_failure = None;
        for name in &candidates {
            for qtype in [QueryType::A, QueryType::Aaaa] {
                match self.query(conf, name, qtype, deadline) {
                    Outcome::Addresses(found) => return Ok(found),
                    // A name that does not exist has no AAAA either: next candidate.
                    Outcome::NoSuchName => break,
                    Outcome::NoData => {}
                    Outcome::Failed(reason) => server_failure = Some(reason),
                    Outcome::TimedOut => return Err(DnsFailure::TimedOut),
                }
            }
        }
        match server_failure {
            Some(last) => Err(DnsFailure::NoAnswer { last }),
            None => Err(DnsFailure::NotFound { tried: candidates }),
        }
    }

    /// One question, asked of each nameserver in turn, `attempts` rounds.
    fn query(&self, conf: &ResolvConf, name: &str, qtype: QueryType, deadline: Instant) -> Outcome {
        let mut last = String::from("no nameserver configured");
        for _ in 0..conf.attempts {
            for &server in &conf.nameservers {
                let now = Instant::now();
                let Some(left) = deadline
                    .checked_duration_since(now)
                    .filter(|d| !d.is_zero())
                else {
                    return Outcome::TimedOut;
                };
                let server = SocketAddr::new(server, self.port);
                let until = now + left.min(conf.timeout);
                let reply = match exchange_udp(server, name, qtype, until) {
                    Ok(reply) if reply.truncated => exchange_tcp(server, name, qtype, until),
                    other => other,
                };
                match reply {
                    Ok(reply) => match reply.rcode {
                        wire::RCODE_NO_ERROR => {
                            let found = reply.addresses(name, qtype);
                            return if found.is_empty() {
                                Outcome::NoData
                            } else {
                                Outcome::Addresses(found)
                            };
                        }
                        wire::RCODE_NAME_ERROR => return Outcome::NoSuchName,
                        rcode => last = format!("{server} answered {}", wire::rcode_name(rcode)),
                    },
                    Err(error) => last = format!("{server}: {}", crate::sys::describe_io(&error)),
                }
            }
        }
        Outcome::Failed(last)
    }
}

enum Outcome {
    Addresses(Vec<IpAddr>),
    NoSuchName,
    NoData,
    Failed(String),
    TimedOut,
}

enum DnsFailure {
    NotFound { tried: Vec<String> },
    NoAnswer { last: String },
    TimedOut,
}

fn time_left(until: Instant) -> io::Result<Duration> {
    until
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
        .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))
}

fn random_id() -> u16 {
    let mut bytes = [0; 2];
    crate::sys::random(&mut bytes);
    u16::from_ne_bytes(bytes)
}

/// Sends one query over UDP and waits for its answer, ignoring datagrams that do not
/// answer it (a late answer to an earlier query, or a forgery without the id).
fn exchange_udp(
    server: SocketAddr,
    name: &str,
    qtype: QueryType,
    until: Instant,
) -> io::Result<Reply> {
    let id = random_id();
    let query = wire::query(id, name, qtype)?;
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)?;
    // Connected, so the kernel drops datagrams from any other address.
    socket.connect(server)?;
    socket.send(&query)?;
    let mut buf = [0; 4096];
    loop {
        socket.set_read_timeout(Some(time_left(until)?))?;
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                return Err(io::ErrorKind::TimedOut.into());
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        match Reply::decode(&buf[..n], id, name, qtype) {
            Ok(reply) => return Ok(reply),
            Err(wire::WireError::NotOurs) => continue,
            Err(error) => return Err(io::Error::new(io::ErrorKind::InvalidData, error)),
        }
    }
}

/// Asks again over TCP, where the whole answer fits.
fn exchange_tcp(
    server: SocketAddr,
    name: &str,
    qtype: QueryType,
    until: Instant,
) -> io::Result<Reply> {
    let id = random_id();
    let query = wire::query(id, name, qtype)?;
    let mut stream = TcpStream::connect_timeout(&server, time_left(until)?)?;
    stream.set_write_timeout(Some(time_left(until)?))?;
    let length = u16::try_from(query.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut framed = length.to_be_bytes().to_vec();
    framed.extend_from_slice(&query);
    stream.write_all(&framed)?;
    let mut read_exact = |buf: &mut [u8]| -> io::Result<()> {
        let mut filled = 0;
        while filled < buf.len() {
            stream.set_read_timeout(Some(time_left(until)?))?;
            match stream.read(&mut buf[filled..]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => filled += n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    };
    let mut length = [0; 2];
    read_exact(&mut length)?;
    let mut reply = vec![0; usize::from(u16::from_be_bytes(length))];
    read_exact(&mut reply)?;
    Reply::decode(&reply, id, name, qtype)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
}

/// Whether `name` is a host name DNS can carry: dot-separated labels of letters, digits,
/// `-` and `_`, each at most 63 bytes, at most 253 in all, perhaps ending in `.`.
pub(crate) fn is_host_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
