//! A loopback HTTPS server that plays the exec listener: it records each request and
//! answers from a script (an answer, a hang, or a dropped connection).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::Pki;

/// One scripted answer.
#[derive(Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    chunked: bool,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into().into_bytes(),
            chunked: false,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends the body in chunks instead of with a `Content-Length`.
    pub fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} Scripted\r\n", self.status).into_bytes();
        for (name, value) in &self.headers {
            out.extend(format!("{name}: {value}\r\n").as_bytes());
        }
        if self.chunked {
            out.extend(b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
            let middle = self.body.len() / 2;
            for part in [&self.body[..middle], &self.body[middle..]] {
                if !part.is_empty() {
                    out.extend(format!("{:x}\r\n", part.len()).as_bytes());
                    out.extend(part);
                    out.extend(b"\r\n");
                }
            }
            out.extend(b"0\r\n\r\n");
        } else {
            out.extend(
                format!(
                    "Content-Length: {}\r\nConnection: close\r\n\r\n",
                    self.body.len()
                )
                .as_bytes(),
            );
            out.extend(&self.body);
        }
        out
    }
}

/// What the server does with the n-th request.
#[derive(Clone)]
pub enum Step {
    Reply(Reply),
    /// Reads the request and never answers.
    Hang,
    /// Reads the request and drops the connection.
    Close,
}

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub sni: Option<String>,
    pub alpn: Option<Vec<u8>>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The running server; stopped when dropped.
pub struct HttpsServer {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl HttpsServer {
    /// Serves on 127.0.0.1, a port of its own; the n-th request gets `script[n]`, and
    /// every request past the end gets the script's last step.
    pub fn start(pki: &Pki, script: Vec<Step>) -> Self {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), pki, script)
    }

    pub fn start_on(ip: IpAddr, pki: &Pki, script: Vec<Step>) -> Self {
        assert!(!script.is_empty());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![pki.cert.clone()], pki.key.clone_key())
            .unwrap();
        // As the real server offers: the client must pick HTTP/1.1.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let config = Arc::new(config);

        let listener = TcpListener::bind((ip, 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(script);
        {
            let (received, stop) = (received.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((socket, _)) => {
                            let (config, received, stop, next, script) = (
                                config.clone(),
                                received.clone(),
                                stop.clone(),
                                next.clone(),
                                script.clone(),
                            );
                            std::thread::spawn(move || {
                                serve(socket, config, &received, &stop, &next, &script);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        Self {
            addr,
            received,
            stop,
        }
    }

    /// The URL naming the server by its IP address.
    pub fn ip_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The URL naming the server by `host` (which must resolve to its address).
    pub fn url(&self, host: &str) -> String {
        format!("https://{host}:{}", self.addr.port())
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    socket: TcpStream,
    config: Arc<ServerConfig>,
    received: &Mutex<Vec<Received>>,
    stop: &AtomicBool,
    next: &AtomicUsize,
    script: &[Step],
) {
    socket.set_nonblocking(false).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = StreamOwned::new(ServerConnection::new(config).unwrap(), socket);
    let Some(request) = read_request(&mut tls) else {
        return;
    };
    received.lock().unwrap().push(request);
    let n = next.fetch_add(1, Ordering::SeqCst);
    match &script[n.min(script.len() - 1)] {
        Step::Reply(reply) => {
            let _ = tls.write_all(&reply.bytes());
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
        Step::Hang => {
            let until = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Step::Close => {}
    }
}

fn read_request(tls: &mut StreamOwned<ServerConnection, TcpStream>) -> Option<Received> {
    let mut bytes = Vec::new();
    let mut buf = [0; 4096];
    let head_end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Request::new(&mut headers);
    parsed.parse(&bytes[..head_end]).ok()?;
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = bytes[head_end..].to_vec();
    while body.len() < length {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
    }
    Some(Received {
        method: parsed.method?.to_owned(),
        path: parsed.path?.to_owned(),
        headers,
        body,
        sni: tls.conn.server_name().map(str::to_owned),
        alpn: tls.conn.alpn_protocol().map(<[u8]>::to_vec),
    })
}
