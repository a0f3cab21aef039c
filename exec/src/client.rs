//! One attempt at fetching the values: read the token, resolve, connect, TLS, one HTTP
//! exchange, and the answer sorted into values, a refusal, or a reason to try again.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use zeroize::Zeroizing;

use crate::error::{Error, NO_MESSAGE};
use crate::http::{self, HttpError, MAX_ANSWER};
use crate::resolve::{ResolveError, Resolver};
use crate::secret::{Token, Values};
use crate::settings::{Settings, SettingsError};
use crate::sys::describe_io;

/// The largest token file read; projected tokens are about a kilobyte.
const MAX_TOKEN: u64 = 64 << 10;

/// What one attempt came to.
pub(crate) enum Outcome {
    Values(Values),
    /// Retrying cannot help: stop now.
    Fatal(Error),
    /// Retrying may help; `after` is what the server asked for with `Retry-After`.
    Retry {
        reason: Transient,
        after: Option<Duration>,
    },
}

/// A failure that may pass: the network, the server restarting, a busy server.
pub(crate) enum Transient {
    Resolve(ResolveError),
    Connect(io::Error),
    Tls(rustls::Error),
    Io {
        during: &'static str,
        error: io::Error,
    },
    Http(HttpError),
    Status {
        status: u16,
        message: String,
    },
}

impl fmt::Display for Transient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Resolve(error) => error.fmt(f),
            Self::Connect(error) => f.write_str(&describe_io(error)),
            Self::Tls(error) => write!(f, "TLS handshake failed: {error}"),
            Self::Io { during, error } => write!(f, "{} {during}", describe_io(error)),
            Self::Http(error) => error.fmt(f),
            Self::Status { status, message } => {
                write!(f, "the server answered {status}: {message}")
            }
        }
    }
}

impl Transient {
    /// Whether the attempt ran out of time rather than being told something.
    pub(crate) fn is_timeout(&self) -> bool {
        match self {
            Self::Resolve(error) => matches!(error, ResolveError::TimedOut(_)),
            Self::Connect(error) | Self::Io { error, .. } => matches!(
                error.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ),
            Self::Tls(_) | Self::Http(_) | Self::Status { .. } => false,
        }
    }

    /// What a person should check when this was the last failure before giving up.
    pub(crate) fn hint(&self, settings: &Settings) -> String {
        let port = settings.url.port();
        match self {
            Self::Resolve(_) => format!(
                "check the host in AGYN_EXEC_URL and that this pod may reach its DNS server (port 53); the server itself listens on port {port}"
            ),
            Self::Connect(_) => format!(
                "check the NetworkPolicy for port {port} and that the agyn-secrets server is running"
            ),
            Self::Tls(_) => format!(
                "check that AGYN_EXEC_CA is the authority that issued the server's certificate and that the certificate names {}",
                settings.url.host().trim_end_matches('.')
            ),
            Self::Io { .. } | Self::Http(_) | Self::Status { .. } => format!(
                "check the agyn-secrets server's logs and anything between this pod and port {port} (a proxy or service mesh)"
            ),
        }
    }
}

/// Everything an attempt needs that does not change between attempts.
pub(crate) struct Client<'s> {
    settings: &'s Settings,
    resolver: &'s Resolver,
    tls: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl<'s> Client<'s> {
    pub(crate) fn new(settings: &'s Settings, resolver: &'s Resolver) -> Result<Self, Error> {
        let mut roots = RootCertStore::empty();
        for root in &settings.roots {
            roots
                .add(root.clone())
                .map_err(|error| Error::Ca(error.to_string()))?;
        }
        // The provider is named here rather than taken from the process default, so that
        // a program embedding this library with another provider installed still works.
        let provider = Arc::new(crate::sys::crypto_provider());
        let mut tls = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|error| Error::Ca(error.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let host = settings.url.host().trim_end_matches('.').to_owned();
        let server_name = ServerName::try_from(host).map_err(|_| SettingsError::Url {
            url: settings.url.to_string(),
            problem: "has a host that TLS cannot verify",
        })?;
        Ok(Self {
            settings,
            resolver,
            tls: Arc::new(tls),
            server_name,
        })
    }

    /// Makes one attempt, finished or abandoned by `deadline`.
    pub(crate) fn attempt(&self, deadline: Instant) -> Outcome {
        match self.exchange(deadline) {
            Ok(answer) => self.sort(answer),
            Err(outcome) => outcome,
        }
    }

    fn exchange(&self, deadline: Instant) -> Result<http::Answer, Outcome> {
        let Settings {
            url,
            container,
            token_file,
            ..
        } = self.settings;
        // Read afresh each time: the kubelet rotates the token, and a retry may outlive it.
        let token = read_token(token_file).map_err(Outcome::Fatal)?;
        let request = http::request(url, &token, container);
        drop(token);

        let retry = |reason| Outcome::Retry {
            reason,
            after: None,
        };
        let addresses = self
            .resolver
            .lookup(url.host(), deadline)
            .map_err(|error| retry(Transient::Resolve(error)))?;
        let socket = connect(&addresses, url.port(), deadline)
            .map_err(|error| retry(Transient::Connect(error)))?;
        let connection = ClientConnection::new(self.tls.clone(), self.server_name.clone())
            .map_err(|error| retry(Transient::Tls(error)))?;
        let mut stream = StreamOwned::new(connection, Timed { socket, deadline });

        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|error| retry(io_failure(error, "during the TLS handshake")))?;
        }
        stream
            .write_all(request.as_slice())
            .and_then(|()| stream.flush())
            .map_err(|error| retry(io_failure(error, "while sending the request")))?;
        drop(request);
        match http::read_answer(&mut stream, MAX_ANSWER) {
            Ok(answer) => Ok(answer),
            Err(HttpError::TooLarge(limit)) => Err(Outcome::Fatal(Error::TooLarge {
                url: url.to_string(),
                mib: limit >> 20,
            })),
            Err(HttpError::Io(error)) => {
                Err(retry(io_failure(error, "while waiting for the answer")))
            }
            Err(error) => Err(retry(Transient::Http(error))),
        }
    }

    fn sort(&self, answer: http::Answer) -> Outcome {
        let status = answer.status;
        if status == 200 {
            return match http::parse_env(&answer.body) {
                Ok(values) => Outcome::Values(values),
                Err(source) => Outcome::Fatal(Error::Answer {
                    url: self.settings.url.to_string(),
                    source,
                }),
            };
        }
        let message = http::error_message(&answer.body).unwrap_or_else(|| NO_MESSAGE.to_owned());
        match status {
            400 => Outcome::Fatal(Error::BadRequest { message }),
            401 => Outcome::Fatal(Error::Unauthorized { message }),
            403 => Outcome::Fatal(Error::Forbidden { message }),
            404 => Outcome::Fatal(Error::NotFound {
                container: self.settings.container.clone(),
                message,
            }),
            408 | 429 | 500 | 502 | 503 | 504 => Outcome::Retry {
                reason: Transient::Status { status, message },
                after: answer.retry_after,
            },
            _ => Outcome::Fatal(Error::Status { status, message }),
        }
    }
}

fn io_failure(error: io::Error, during: &'static str) -> Transient {
    let tls = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned();
    match tls {
        Some(tls) => Transient::Tls(tls),
        None => Transient::Io { during, error },
    }
}

/// Reads the token, wiping every copy but the one kept.
fn read_token(path: &Path) -> Result<Token, Error> {
    let fail = |reason: String| Error::Token {
        path: path.to_owned(),
        reason,
    };
    let file = File::open(path).map_err(|error| fail(describe_io(&error)))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0).min(MAX_TOKEN);
    // Sized up front, so that reading never reallocates and leaves a copy behind.
    let mut text = Zeroizing::new(String::with_capacity(
        usize::try_from(size).unwrap_or(0) + 1,
    ));
    file.take(MAX_TOKEN)
        .read_to_string(&mut text)
        .map_err(|error| fail(describe_io(&error)))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(fail("the file is empty".into()));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(fail(
            "the file holds characters that a token cannot have".into(),
        ));
    }
    Ok(Token::new(Zeroizing::new(token.to_owned())))
}

fn connect(addresses: &[IpAddr], port: u16, deadline: Instant) -> io::Result<TcpStream> {
    let mut last = io::Error::from(io::ErrorKind::TimedOut);
    for &address in addresses {
        let left = time_left(deadline)?;
        match TcpStream::connect_timeout(&SocketAddr::new(address, port), left) {
            Ok(socket) => {
                socket.set_nodelay(true)?;
                return Ok(socket);
            }
            Err(error) => last = error,
        }
    }
    Err(last)
}

fn time_left(deadline: Instant) -> io::Result<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
        .ok_or_else(|| io::ErrorKind::TimedOut.into())
}

/// A socket whose every read and write ends by the attempt's deadline.
struct Timed {
    socket: TcpStream,
    deadline: Instant,
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket
            .set_read_timeout(Some(time_left(self.deadline)?))?;
        self.socket.read(buf).map_err(timed_out)
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.socket
            .set_write_timeout(Some(time_left(self.deadline)?))?;
        self.socket.write(buf).map_err(timed_out)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.socket.flush()
    }
}

/// A socket timeout shows as `WouldBlock` on Unix; call it what it is.
fn timed_out(error: io::Error) -> io::Error {
    if error.kind() == io::ErrorKind::WouldBlock {
        io::ErrorKind::TimedOut.into()
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_token_and_trims_its_line_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "eyJhbGciOi.tok-8c2d.sig\n").unwrap();
        assert_eq!(
            read_token(&path).unwrap().expose(),
            "eyJhbGciOi.tok-8c2d.sig"
        );
    }

    #[test]
    fn token_errors_never_show_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        for content in [
            "",
            " \n",
            "tok-8c2d\r\nInjected: header",
            "tok-8c2d tok-8c2d",
        ] {
            std::fs::write(&path, content).unwrap();
            let message = read_token(&path).unwrap_err().to_string();
            assert!(!message.contains("tok-8c2d"), "{message}");
            assert!(message.contains(path.to_str().unwrap()), "{message}");
        }
        let missing = read_token(&dir.path().join("absent"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("not found"), "{missing}");
        assert!(missing.contains("projected token volume"), "{missing}");
    }
}
