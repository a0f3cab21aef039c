//! The DNS wire format (RFC 1035), only as much as a stub resolver needs: one question
//! out, the answer section of the reply in, CNAMEs followed.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub(crate) const RCODE_NO_ERROR: u8 = 0;
pub(crate) const RCODE_NAME_ERROR: u8 = 3;

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
/// Recursion desired: the nameservers of a pod are recursive resolvers.
const FLAG_RD: u16 = 0x0100;
/// More CNAME links than any sane zone has; a loop stops here.
const MAX_CHAIN: usize = 16;
/// More compression pointers than any honest name needs; a loop stops here.
const MAX_POINTERS: usize = 64;

/// The record types asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueryType {
    A,
    Aaaa,
}

impl QueryType {
    fn code(self) -> u16 {
        match self {
            Self::A => TYPE_A,
            Self::Aaaa => TYPE_AAAA,
        }
    }
}

/// Why a datagram is not a usable reply.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    /// Not a reply to the question asked: ignored while waiting for the real one.
    #[error("not a reply to this query")]
    NotOurs,
    #[error("malformed DNS reply: {0}")]
    Malformed(&'static str),
}

type Result<T, E = WireError> = std::result::Result<T, E>;

/// A query for `name`'s records of `qtype`, with id `id`.
pub(crate) fn query(id: u16, name: &str, qtype: QueryType) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(18 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&FLAG_RD.to_be_bytes());
    // One question; no answer, authority or additional records.
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "host name too long",
        ));
    }
    for label in name.split('.') {
        let length = u8::try_from(label.len())
            .ok()
            .filter(|&length| (1..=63).contains(&length))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad label in host name"))?;
        out.push(length);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.code().to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(out)
}

/// The parts of a reply that matter here.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) rcode: u8,
    /// The reply did not fit a datagram: ask again over TCP.
    pub(crate) truncated: bool,
    records: Vec<Record>,
}

#[derive(Debug)]
struct Record {
    owner: String,
    data: Data,
}

#[derive(Debug)]
enum Data {
    Address(IpAddr),
    Alias(String),
    Other,
}

impl Reply {
    /// Decodes `message` as the reply to query `id` for `name`'s `qtype` records.
    pub(crate) fn decode(message: &[u8], id: u16, name: &str, qtype: QueryType) -> Result<Self> {
        if message.len() < 12 {
            return Err(WireError::NotOurs);
        }
        let mut reader = Reader { message, pos: 0 };
        let (reply_id, flags) = (reader.u16()?, reader.u16()?);
        if reply_id != id || flags & 0x8000 == 0 {
            return Err(WireError::NotOurs);
        }
        if (flags >> 11) & 0xF != 0 {
            return Err(WireError::Malformed("unexpected opcode"));
        }
        let rcode = (flags & 0xF) as u8;
        let truncated = flags & 0x0200 != 0;
        let questions = reader.u16()?;
        let answers = reader.u16()?;
        reader.u16()?;
        reader.u16()?;
        if questions != 1 {
            // A server may leave the question out of an error reply (FORMERR, SERVFAIL).
            if questions == 0 && rcode != RCODE_NO_ERROR {
                return Ok(Self {
                    rcode,
                    truncated,
                    records: Vec::new(),
                });
            }
            return Err(WireError::NotOurs);
        }
        let asked = reader.name()?;
        let (asked_type, asked_class) = (reader.u16()?, reader.u16()?);
        if asked != lower(name.strip_suffix('.').unwrap_or(name))
            || asked_type != qtype.code()
            || asked_class != CLASS_IN
        {
            return Err(WireError::NotOurs);
        }
        let mut reply = Self {
            rcode,
            truncated,
            records: Vec::new(),
        };
        if truncated {
            // The records of a truncated reply may be cut anywhere; TCP brings them all.
            return Ok(reply);
        }
        for _ in 0..answers {
            let owner = reader.name()?;
            let (kind, class) = (reader.u16()?, reader.u16()?);
            reader.u32()?;
            let length = usize::from(reader.u16()?);
            let start = reader.pos;
            let rdata = reader.take(length)?;
            let data = match (kind, class, length) {
                (TYPE_A, CLASS_IN, 4) => Data::Address(IpAddr::V4(Ipv4Addr::from(
                    <[u8; 4]>::try_from(rdata).unwrap_or_default(),
                ))),
                (TYPE_AAAA, CLASS_IN, 16) => Data::Address(IpAddr::V6(Ipv6Addr::from(
                    <[u8; 16]>::try_from(rdata).unwrap_or_default(),
                ))),
                (TYPE_A | TYPE_AAAA, ..) => return Err(WireError::Malformed("bad address record")),
                (TYPE_CNAME, CLASS_IN, _) => {
                    // The alias may point back into the message (compression).
                    let mut target = Reader {
                        message,
                        pos: start,
                    };
                    Data::Alias(target.name()?)
                }
                _ => Data::Other,
            };
            reply.records.push(Record { owner, data });
        }
        Ok(reply)
    }

    /// The addresses of `name` in the answer section, following CNAMEs from `name`.
    pub(crate) fn addresses(&self, name: &str, qtype: QueryType) -> Vec<IpAddr> {
        let mut current = lower(name.strip_suffix('.').unwrap_or(name));
        for _ in 0..MAX_CHAIN {
            let found: Vec<IpAddr> = self
                .records
                .iter()
                .filter(|record| record.owner == current)
                .filter_map(|record| match record.data {
                    Data::Address(address @ IpAddr::V4(_)) if qtype == QueryType::A => {
                        Some(address)
                    }
                    Data::Address(address @ IpAddr::V6(_)) if qtype == QueryType::Aaaa => {
                        Some(address)
                    }
                    _ => None,
                })
                .collect();
            if !found.is_empty() {
                return found;
            }
            let alias = self.records.iter().find_map(|record| match &record.data {
                Data::Alias(target) if record.owner == current => Some(target.clone()),
                _ => None,
            });
            match alias {
                Some(target) => current = target,
                None => break,
            }
        }
        Vec::new()
    }
}

/// The name of a response code, for messages.
pub(crate) fn rcode_name(rcode: u8) -> String {
    match rcode {
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        other => format!("rcode {other}"),
    }
}

fn lower(name: &str) -> String {
    name.to_ascii_lowercase()
}

struct Reader<'m> {
    message: &'m [u8],
    pos: usize,
}

impl<'m> Reader<'m> {
    fn take(&mut self, n: usize) -> Result<&'m [u8]> {
        let bytes = self
            .message
            .get(self.pos..self.pos + n)
            .ok_or(WireError::Malformed("cut short"))?;
        self.pos += n;
        Ok(bytes)
    }

    fn u16(&mut self) -> Result<u16> {
        let bytes = self.take(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self) -> Result<u32> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// Reads a possibly compressed name, lower-cased, without the root's final dot.
    /// Bytes that a host name cannot hold are written `\DDD`, so they never match one.
    fn name(&mut self) -> Result<String> {
        let mut name = String::new();
        let mut pos = self.pos;
        let mut resume = None;
        let mut pointers = 0;
        let mut length = 0;
        loop {
            let &size = self
                .message
                .get(pos)
                .ok_or(WireError::Malformed("name cut short"))?;
            match size & 0xC0 {
                0x00 if size == 0 => {
                    self.pos = resume.unwrap_or(pos + 1);
                    return Ok(name);
                }
                0x00 => {
                    let label = self
                        .message
                        .get(pos + 1..pos + 1 + usize::from(size))
                        .ok_or(WireError::Malformed("label cut short"))?;
                    length += label.len() + 1;
                    if length > 255 {
                        return Err(WireError::Malformed("name too long"));
                    }
                    if !name.is_empty() {
                        name.push('.');
                    }
                    for &byte in label {
                        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
                            name.push(char::from(byte.to_ascii_lowercase()));
                        } else {
                            name.push_str(&format!("\\{byte:03}"));
                        }
                    }
                    pos += 1 + label.len();
                }
                0xC0 => {
                    let &low = self
                        .message
                        .get(pos + 1)
                        .ok_or(WireError::Malformed("pointer cut short"))?;
                    pointers += 1;
                    if pointers > MAX_POINTERS {
                        return Err(WireError::Malformed("compression loop"));
                    }
                    resume.get_or_insert(pos + 2);
                    pos = usize::from(size & 0x3F) << 8 | usize::from(low);
                }
                _ => return Err(WireError::Malformed("unknown label type")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds replies the way a nameserver does, compression included.
    pub(crate) struct ReplyBuilder {
        bytes: Vec<u8>,
        answers: u16,
    }

    impl ReplyBuilder {
        fn new(query: &[u8], rcode: u8, truncated: bool) -> Self {
            let mut bytes = query.to_vec();
            bytes[2] = 0x81 | if truncated { 0x02 } else { 0 };
            bytes[3] = 0x80 | rcode;
            Self { bytes, answers: 0 }
        }

        /// A record whose owner is the question's name (a pointer to offset 12).
        fn record_for_question(mut self, kind: u16, rdata: &[u8]) -> Self {
            self.bytes.extend_from_slice(&[0xC0, 12]);
            self.rest(kind, rdata)
        }

        fn record(mut self, owner: &str, kind: u16, rdata: &[u8]) -> Self {
            self.bytes.extend(encode(owner));
            self.rest(kind, rdata)
        }

        fn rest(mut self, kind: u16, rdata: &[u8]) -> Self {
            self.bytes.extend_from_slice(&kind.to_be_bytes());
            self.bytes.extend_from_slice(&CLASS_IN.to_be_bytes());
            self.bytes.extend_from_slice(&30u32.to_be_bytes());
            self.bytes
                .extend_from_slice(&u16::try_from(rdata.len()).unwrap().to_be_bytes());
            self.bytes.extend_from_slice(rdata);
            self.answers += 1;
            self
        }

        fn build(mut self) -> Vec<u8> {
            self.bytes[6..8].copy_from_slice(&self.answers.to_be_bytes());
            self.bytes
        }
    }

    fn encode(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for label in name.split('.') {
            out.push(u8::try_from(label.len()).unwrap());
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }

    const NAME: &str = "agyn-secrets.agyn-secrets.svc.cluster.local";

    #[test]
    fn writes_a_standard_query() {
        let bytes = query(0xBEEF, "Svc.Example.", QueryType::Aaaa).unwrap();
        assert_eq!(
            bytes,
            [
                &[0xBE, 0xEF, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0][..],
                b"\x03Svc\x07Example\x00",
                &[0, 28, 0, 1],
            ]
            .concat()
        );
        assert!(query(1, &"a".repeat(64), QueryType::A).is_err());
        assert!(query(1, "a..b", QueryType::A).is_err());
    }

    #[test]
    fn reads_addresses_and_follows_cnames() {
        let q = query(7, NAME, QueryType::A).unwrap();
        let reply = ReplyBuilder::new(&q, 0, false)
            .record_for_question(TYPE_CNAME, &[&[0x05][..], b"alias", &[0xC0, 12]].concat())
            .record(
                &format!("alias.{NAME}"),
                TYPE_CNAME,
                &encode("final.example"),
            )
            .record("unrelated.example", TYPE_A, &[9, 9, 9, 9])
            .record("final.example", TYPE_A, &[10, 0, 0, 9])
            .record("final.example", TYPE_A, &[10, 0, 0, 10])
            .build();
        let decoded = Reply::decode(&reply, 7, &NAME.to_uppercase(), QueryType::A).unwrap();
        assert_eq!(decoded.rcode, RCODE_NO_ERROR);
        assert_eq!(
            decoded.addresses(NAME, QueryType::A),
            ["10.0.0.9", "10.0.0.10"].map(|a| a.parse::<IpAddr>().unwrap())
        );
    }

    #[test]
    fn reads_ipv6_addresses() {
        let q = query(8, NAME, QueryType::Aaaa).unwrap();
        let address: Ipv6Addr = "fd00::53".parse().unwrap();
        let reply = ReplyBuilder::new(&q, 0, false)
            .record_for_question(TYPE_AAAA, &address.octets())
            .build();
        let decoded = Reply::decode(&reply, 8, NAME, QueryType::Aaaa).unwrap();
        assert_eq!(
            decoded.addresses(NAME, QueryType::Aaaa),
            [IpAddr::V6(address)]
        );
        assert!(decoded.addresses(NAME, QueryType::A).is_empty());
    }

    #[test]
    fn a_cname_loop_ends() {
        let q = query(9, "a.example", QueryType::A).unwrap();
        let reply = ReplyBuilder::new(&q, 0, false)
            .record("a.example", TYPE_CNAME, &encode("b.example"))
            .record("b.example", TYPE_CNAME, &encode("a.example"))
            .build();
        let decoded = Reply::decode(&reply, 9, "a.example", QueryType::A).unwrap();
        assert!(decoded.addresses("a.example", QueryType::A).is_empty());
    }

    #[test]
    fn reports_truncation_and_errors() {
        let q = query(10, NAME, QueryType::A).unwrap();
        let truncated = ReplyBuilder::new(&q, 0, true).build();
        assert!(
            Reply::decode(&truncated, 10, NAME, QueryType::A)
                .unwrap()
                .truncated
        );
        let missing = ReplyBuilder::new(&q, RCODE_NAME_ERROR, false).build();
        assert_eq!(
            Reply::decode(&missing, 10, NAME, QueryType::A)
                .unwrap()
                .rcode,
            RCODE_NAME_ERROR
        );
    }

    #[test]
    fn ignores_replies_to_other_questions() {
        let q = query(11, NAME, QueryType::A).unwrap();
        let reply = ReplyBuilder::new(&q, 0, false)
            .record_for_question(TYPE_A, &[10, 0, 0, 1])
            .build();
        let not_ours = |result: Result<Reply>| matches!(result, Err(WireError::NotOurs));
        assert!(not_ours(Reply::decode(&reply, 12, NAME, QueryType::A)));
        assert!(not_ours(Reply::decode(
            &reply,
            11,
            "other.example",
            QueryType::A
        )));
        assert!(not_ours(Reply::decode(&reply, 11, NAME, QueryType::Aaaa)));
        assert!(
            not_ours(Reply::decode(&q, 11, NAME, QueryType::A)),
            "a query is not a reply"
        );
        assert!(not_ours(Reply::decode(&reply[..5], 11, NAME, QueryType::A)));
    }

    #[test]
    fn refuses_malformed_replies() {
        let q = query(13, NAME, QueryType::A).unwrap();
        let reply = ReplyBuilder::new(&q, 0, false)
            .record_for_question(TYPE_A, &[10, 0, 0, 1])
            .build();
        let cut = &reply[..reply.len() - 2];
        assert!(matches!(
            Reply::decode(cut, 13, NAME, QueryType::A),
            Err(WireError::Malformed(_))
        ));

        let mut looped = ReplyBuilder::new(&q, 0, false).build();
        looped.extend_from_slice(&[0xC0, u8::try_from(q.len()).unwrap()]);
        looped.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 1, 2, 3, 4]);
        looped[7] = 1;
        assert!(matches!(
            Reply::decode(&looped, 13, NAME, QueryType::A),
            Err(WireError::Malformed("compression loop"))
        ));

        let short_address = ReplyBuilder::new(&q, 0, false)
            .record_for_question(TYPE_A, &[10, 0, 0])
            .build();
        assert!(Reply::decode(&short_address, 13, NAME, QueryType::A).is_err());
    }
}
