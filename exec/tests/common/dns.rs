//! A loopback DNS server, UDP and TCP on one port, answering from a small zone and
//! logging every question, so that tests see what the wrapper asked and in which order.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;

/// One record of the zone.
#[derive(Clone, Debug)]
pub enum Data {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
}

impl Data {
    fn kind(&self) -> u16 {
        match self {
            Self::A(_) => TYPE_A,
            Self::Aaaa(_) => TYPE_AAAA,
            Self::Cname(_) => TYPE_CNAME,
        }
    }
}

/// What the server knows and how it behaves.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    records: Vec<(String, Data)>,
    /// Answer every UDP question with an empty, truncated reply: the client must use TCP.
    truncate_udp: bool,
    /// Answer SERVFAIL to everything.
    fail: bool,
}

impl Zone {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(mut self, owner: &str, data: Data) -> Self {
        self.records.push((owner.to_ascii_lowercase(), data));
        self
    }

    pub fn truncate_udp(mut self) -> Self {
        self.truncate_udp = true;
        self
    }

    pub fn fail(mut self) -> Self {
        self.fail = true;
        self
    }
}

/// A question the server received: name, type, and `"udp"` or `"tcp"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    pub name: String,
    pub kind: u16,
    pub transport: &'static str,
}

/// The running server; stopped when dropped.
pub struct DnsServer {
    pub addr: SocketAddr,
    questions: Arc<Mutex<Vec<Question>>>,
    stop: Arc<AtomicBool>,
}

impl DnsServer {
    /// Serves `zone` on `ip`, port `port` (0 for any free port; 53 needs root).
    pub fn start(ip: IpAddr, port: u16, zone: Zone) -> Self {
        // UDP and TCP must share the port: retry until a free port is free for both.
        let (udp, tcp) = (0..50)
            .find_map(|_| {
                let udp = UdpSocket::bind((ip, port)).ok()?;
                let tcp = TcpListener::bind(udp.local_addr().ok()?).ok()?;
                Some((udp, tcp))
            })
            .expect("cannot bind the test DNS server");
        let addr = udp.local_addr().unwrap();
        let questions = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let zone = Arc::new(zone);

        udp.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        {
            let (zone, questions, stop) = (zone.clone(), questions.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0; 512];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, peer)) = udp.recv_from(&mut buf) else {
                        continue;
                    };
                    if let Some(reply) = answer(&zone, &buf[..n], "udp", &questions) {
                        let _ = udp.send_to(&reply, peer);
                    }
                }
            });
        }
        tcp.set_nonblocking(true).unwrap();
        {
            let (questions, stop) = (questions.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok((mut stream, _)) = tcp.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    stream.set_nonblocking(false).unwrap();
                    stream
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .unwrap();
                    let mut length = [0; 2];
                    if stream.read_exact(&mut length).is_err() {
                        continue;
                    }
                    let mut query = vec![0; usize::from(u16::from_be_bytes(length))];
                    if stream.read_exact(&mut query).is_err() {
                        continue;
                    }
                    if let Some(reply) = answer(&zone, &query, "tcp", &questions) {
                        let mut framed = u16::try_from(reply.len()).unwrap().to_be_bytes().to_vec();
                        framed.extend(reply);
                        let _ = stream.write_all(&framed);
                    }
                }
            });
        }
        Self {
            addr,
            questions,
            stop,
        }
    }

    pub fn questions(&self) -> Vec<Question> {
        self.questions.lock().unwrap().clone()
    }

    /// The names asked for with type A, in order, each once.
    pub fn names_asked(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for question in self.questions() {
            if question.kind == TYPE_A && !names.contains(&question.name) {
                names.push(question.name);
            }
        }
        names
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn answer(
    zone: &Zone,
    query: &[u8],
    transport: &'static str,
    questions: &Mutex<Vec<Question>>,
) -> Option<Vec<u8>> {
    if query.len() < 12 || u16::from_be_bytes([query[4], query[5]]) != 1 {
        return None;
    }
    let (name, end) = read_name(query, 12)?;
    let kind = u16::from_be_bytes([*query.get(end)?, *query.get(end + 1)?]);
    let question_end = end + 4;
    questions.lock().unwrap().push(Question {
        name: name.clone(),
        kind,
        transport,
    });

    let mut reply = query[..question_end.min(query.len())].to_vec();
    reply[2] = 0x80 | (query[2] & 0x01); // QR, and RD copied
    reply[3] = 0x80; // RA, NOERROR
    reply[6..12].fill(0);
    if zone.fail {
        reply[3] |= 2;
        return Some(reply);
    }
    if zone.truncate_udp && transport == "udp" {
        reply[2] |= 0x02;
        return Some(reply);
    }
    let mut answers = Vec::new();
    let mut current = name.clone();
    for _ in 0..8 {
        let direct: Vec<_> = zone
            .records
            .iter()
            .filter(|(owner, data)| *owner == current && data.kind() == kind)
            .collect();
        if !direct.is_empty() {
            answers.extend(direct);
            break;
        }
        match zone
            .records
            .iter()
            .find(|(owner, data)| *owner == current && matches!(data, Data::Cname(_)))
        {
            Some(alias @ (_, Data::Cname(target))) => {
                answers.push(alias);
                current = target.to_ascii_lowercase();
            }
            _ => break,
        }
    }
    if answers.is_empty() && !zone.records.iter().any(|(owner, _)| *owner == name) {
        reply[3] |= 3; // NXDOMAIN
        return Some(reply);
    }
    reply[7] = u8::try_from(answers.len()).unwrap();
    for (owner, data) in answers {
        reply.extend(encode_name(owner));
        let rdata = match data {
            Data::A(address) => address.octets().to_vec(),
            Data::Aaaa(address) => address.octets().to_vec(),
            Data::Cname(target) => encode_name(target),
        };
        reply.extend(data.kind().to_be_bytes());
        reply.extend([0, 1, 0, 0, 0, 30]);
        reply.extend(u16::try_from(rdata.len()).unwrap().to_be_bytes());
        reply.extend(rdata);
    }
    Some(reply)
}

fn read_name(message: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut labels = Vec::new();
    loop {
        let length = usize::from(*message.get(pos)?);
        if length == 0 {
            return Some((labels.join(".").to_ascii_lowercase(), pos + 1));
        }
        if length > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(message.get(pos + 1..pos + 1 + length)?).into_owned());
        pos += 1 + length;
    }
}

fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.trim_end_matches('.').split('.') {
        out.push(u8::try_from(label.len()).unwrap());
        out.extend(label.as_bytes());
    }
    out.push(0);
    out
}
