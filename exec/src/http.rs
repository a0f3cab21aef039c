//! The one HTTP/1.1 exchange the wrapper makes, written and read by hand: a request with
//! `Connection: close`, and an answer with a `Content-Length`, chunked or read-to-close
//! body under a size cap. Pure code over `Read`, so that it is tested without a network.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::secret::{SecretBuf, Token, Values};
use crate::settings::ServerUrl;

/// The largest answer body accepted: far above any container's env, far below what
/// could hurt a small container's memory limit.
pub(crate) const MAX_ANSWER: usize = 4 << 20;
/// The largest status line plus headers accepted.
const MAX_HEAD: usize = 64 << 10;
const MAX_HEADERS: usize = 64;
const MAX_CHUNK_LINE: usize = 1024;

/// The path of the endpoint under the server's base URL.
pub(crate) const ENV_PATH: &str = "/v1/exec/env";

/// Builds the request asking for `container`'s values. It carries the token, so it lives
/// in memory that is wiped once sent.
pub(crate) fn request(url: &ServerUrl, token: &Token, container: &str) -> SecretBuf {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        container: &'a str,
    }
    let body = serde_json::to_vec(&Body { container }).expect("a string always serialises");
    let head = format!(
        "POST {path}{ENV_PATH} HTTP/1.1\r\n\
         Host: {host}\r\n\
         User-Agent: agyn-secrets-exec/{version}\r\n\
         Accept: application/json\r\n\
         Content-Type: application/json\r\n\
         Content-Length: {length}\r\n\
         Connection: close\r\n\
         Authorization: Bearer ",
        path = url.base_path(),
        host = url.authority(),
        version = env!("CARGO_PKG_VERSION"),
        length = body.len(),
    );
    let mut out = SecretBuf::with_capacity(head.len() + token.expose().len() + 4 + body.len());
    out.extend(head.as_bytes());
    out.extend(token.expose().as_bytes());
    out.extend(b"\r\n\r\n");
    out.extend(&body);
    out
}

/// A complete answer: its status, what `Retry-After` asked for, and its body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) body: Zeroizing<Vec<u8>>,
}

/// Why an answer could not be read. None of these carry any byte of the answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    #[error("{}", crate::sys::describe_io(.0))]
    Io(io::Error),
    #[error("the connection closed before the answer was complete")]
    Closed,
    #[error("the answer is not valid HTTP/1.1: {0}")]
    Malformed(&'static str),
    #[error("the answer is larger than {} MiB", .0 >> 20)]
    TooLarge(usize),
}

type Result<T, E = HttpError> = std::result::Result<T, E>;

/// Reads one answer from `input`, its body at most `limit` bytes.
pub(crate) fn read_answer(input: &mut impl Read, limit: usize) -> Result<Answer> {
    let mut input = Input::new(input);
    loop {
        let head = input.head()?;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(head.as_slice()) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(HttpError::Malformed("incomplete head")),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HttpError::Malformed("too many headers"));
            }
            Err(_) => return Err(HttpError::Malformed("bad status line or header")),
        }
        let status = parsed.code.ok_or(HttpError::Malformed("no status"))?;
        // An interim answer (100 Continue and the like) is followed by the real one.
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let framing = Framing::of(status, parsed.headers)?;
        let retry_after = header(parsed.headers, "retry-after")
            .and_then(|value| value.trim().parse::<u32>().ok())
            .map(|seconds| Duration::from_secs(seconds.into()));
        let body = match framing {
            Framing::Empty => SecretBuf::with_capacity(0),
            Framing::Length(length) if length > limit => return Err(HttpError::TooLarge(limit)),
            Framing::Length(length) => {
                let mut body = SecretBuf::with_capacity(length);
                input.take(length, &mut body)?;
                body
            }
            Framing::Chunked => input.chunked(limit)?,
            Framing::UntilClose => input.until_close(limit)?,
        };
        return Ok(Answer {
            status,
            retry_after,
            body: body.into_inner(),
        });
    }
}

enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

impl Framing {
    fn of(status: u16, headers: &[httparse::Header<'_>]) -> Result<Self> {
        if status == 204 || status == 304 || status < 200 {
            return Ok(Self::Empty);
        }
        if let Some(codings) = header(headers, "transfer-encoding") {
            let last = codings.rsplit(',').next().unwrap_or_default().trim();
            if !last.eq_ignore_ascii_case("chunked") {
                return Err(HttpError::Malformed("unsupported transfer coding"));
            }
            // Chunked framing wins over any Content-Length (RFC 9112, 6.3).
            return Ok(Self::Chunked);
        }
        let mut length = None;
        for field in headers
            .iter()
            .filter(|field| field.name.eq_ignore_ascii_case("content-length"))
        {
            let text = std::str::from_utf8(field.value).unwrap_or_default().trim();
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HttpError::Malformed("bad Content-Length"));
            }
            // A number too large for usize is larger than any limit.
            let value = text.parse::<usize>().unwrap_or(usize::MAX);
            if length.is_some_and(|known| known != value) {
                return Err(HttpError::Malformed("conflicting Content-Length headers"));
            }
            length = Some(value);
        }
        Ok(length.map_or(Self::UntilClose, Self::Length))
    }
}

fn header<'h>(headers: &'h [httparse::Header<'_>], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|field| field.name.eq_ignore_ascii_case(name))
        .and_then(|field| std::str::from_utf8(field.value).ok())
}

/// A read buffer over the connection, wiped when dropped.
struct Input<'r, R> {
    inner: &'r mut R,
    buf: Zeroizing<Vec<u8>>,
    start: usize,
    end: usize,
}

impl<'r, R: Read> Input<'r, R> {
    fn new(inner: &'r mut R) -> Self {
        Self {
            inner,
            buf: Zeroizing::new(vec![0; 16 << 10]),
            start: 0,
            end: 0,
        }
    }

    /// Makes buffered bytes available; `false` when the peer closed cleanly.
    fn fill(&mut self) -> Result<bool> {
        if self.start < self.end {
            return Ok(true);
        }
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.start = 0;
                    self.end = n;
                    return Ok(true);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                // TLS reports a close without close_notify this way: the answer may be cut.
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(HttpError::Closed);
                }
                Err(error) => return Err(HttpError::Io(error)),
            }
        }
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads one line, terminator included, into `out`; at most `max` bytes in all.
    fn line(&mut self, out: &mut SecretBuf, max: usize, too_long: &'static str) -> Result<()> {
        loop {
            if !self.fill()? {
                return Err(HttpError::Closed);
            }
            let available = self.available();
            let (take, done) = match available.iter().position(|&b| b == b'\n') {
                Some(at) => (at + 1, true),
                None => (available.len(), false),
            };
            if out.len() + take > max {
                return Err(HttpError::Malformed(too_long));
            }
            out.extend(&available[..take]);
            self.start += take;
            if done {
                return Ok(());
            }
        }
    }

    /// Reads the status line and the headers, up to and including the empty line.
    fn head(&mut self) -> Result<SecretBuf> {
        let mut head = SecretBuf::with_capacity(1024);
        loop {
            let before = head.len();
            self.line(&mut head, MAX_HEAD, "the head is too large")?;
            let line = &head.as_slice()[before..];
            if line == b"\r\n" || line == b"\n" {
                if before == 0 {
                    // Tolerate a stray empty line before the status line.
                    head.consume(head.len());
                    continue;
                }
                return Ok(head);
            }
        }
    }

    /// Moves exactly `n` bytes into `out`.
    fn take(&mut self, mut n: usize, out: &mut SecretBuf) -> Result<()> {
        while n > 0 {
            if !self.fill()? {
                return Err(HttpError::Closed);
            }
            let available = self.available();
            let take = available.len().min(n);
            out.extend(&available[..take]);
            self.start += take;
            n -= take;
        }
        Ok(())
    }

    fn chunked(&mut self, limit: usize) -> Result<SecretBuf> {
        let mut body = SecretBuf::with_capacity(4096);
        loop {
            let mut line = SecretBuf::with_capacity(32);
            self.line(&mut line, MAX_CHUNK_LINE, "a chunk-size line is too long")?;
            let size = chunk_size(line.as_slice())?;
            if size == 0 {
                break;
            }
            if size > limit - body.len() {
                return Err(HttpError::TooLarge(limit));
            }
            self.take(size, &mut body)?;
            let mut end = SecretBuf::with_capacity(2);
            self.line(&mut end, 2, "a chunk is longer than its size")?;
            if !matches!(end.as_slice(), b"\r\n" | b"\n") {
                return Err(HttpError::Malformed("a chunk is longer than its size"));
            }
        }
        // Trailer fields, if any, end with an empty line; none of them matters here.
        let mut trailers = SecretBuf::with_capacity(64);
        loop {
            let before = trailers.len();
            self.line(&mut trailers, MAX_HEAD, "the trailers are too large")?;
            if matches!(&trailers.as_slice()[before..], b"\r\n" | b"\n") {
                return Ok(body);
            }
        }
    }

    fn until_close(&mut self, limit: usize) -> Result<SecretBuf> {
        let mut body = SecretBuf::with_capacity(4096);
        while self.fill()? {
            let available = self.available();
            if available.len() > limit - body.len() {
                return Err(HttpError::TooLarge(limit));
            }
            body.extend(available);
            self.start = self.end;
        }
        Ok(body)
    }
}

fn chunk_size(line: &[u8]) -> Result<usize> {
    let text = std::str::from_utf8(line).map_err(|_| HttpError::Malformed("bad chunk size"))?;
    let digits = text.split(';').next().unwrap_or_default().trim();
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(HttpError::Malformed("bad chunk size"));
    }
    usize::from_str_radix(digits, 16).map_err(|_| HttpError::Malformed("bad chunk size"))
}

/// Why a 200 answer could not be used. No variant carries any part of a value: the JSON
/// parser's own messages may quote the input, so only its position is kept.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error(
        "the server's answer is not the expected JSON {{\"env\":{{\"NAME\":\"value\"}}}} ({kind} at line {line}, column {column})"
    )]
    NotJson {
        kind: &'static str,
        line: usize,
        column: usize,
    },
    #[error(
        "the server's answer names an invalid variable {0:?}; names must be non-empty and hold no '=' or NUL"
    )]
    BadName(String),
    #[error(
        "the server's answer for variable {0} holds a NUL byte, which an environment cannot carry"
    )]
    NulInValue(String),
}

/// Reads the `{"env":{...}}` of a 200 answer.
pub(crate) fn parse_env(body: &[u8]) -> Result<Values, AnswerError> {
    #[derive(Deserialize)]
    struct EnvAnswer {
        env: BTreeMap<String, Zeroizing<String>>,
    }
    let answer: EnvAnswer = serde_json::from_slice(body).map_err(|error| AnswerError::NotJson {
        kind: match error.classify() {
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Eof => "unexpected end",
            serde_json::error::Category::Data | serde_json::error::Category::Io => {
                "unexpected shape"
            }
        },
        line: error.line(),
        column: error.column(),
    })?;
    for (name, value) in &answer.env {
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err(AnswerError::BadName(shorten(name, 64)));
        }
        if value.contains('\0') {
            return Err(AnswerError::NulInValue(shorten(name, 64)));
        }
    }
    Ok(Values::new(answer.env))
}

/// The `message` of an error answer `{"error":{"code":…,"message":…}}`, made safe for one
/// log line. `None` when the body is not such an answer: then nothing of it is shown.
pub(crate) fn error_message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct ErrorAnswer {
        error: ErrorBody,
    }
    #[derive(Deserialize)]
    struct ErrorBody {
        message: String,
    }
    let answer: ErrorAnswer = serde_json::from_slice(body).ok()?;
    let message = crate::one_line(answer.error.message.trim());
    (!message.is_empty()).then(|| shorten(&message, 512))
}

fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn read(bytes: &[u8]) -> Result<Answer> {
        read_answer(&mut &bytes[..], MAX_ANSWER)
    }

    /// Hands out its bytes a few at a time, as a network does.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[rstest]
    #[case::content_length(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"env\":{}}\n"
    )]
    #[case::chunked(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{\"en\r\n7\r\nv\":{}}\n\r\n0\r\nx-trailer: 1\r\n\r\n"
    )]
    #[case::until_close(b"HTTP/1.1 200 OK\r\n\r\n{\"env\":{}}\n")]
    #[case::after_continue(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"env\":{}}\n"
    )]
    #[case::bare_line_feeds(b"HTTP/1.1 200 OK\nContent-Length: 11\n\n{\"env\":{}}\n")]
    #[case::chunked_wins_over_length(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n{\"env\":{}}\n\r\n0\r\n\r\n"
    )]
    fn reads_every_framing(#[case] bytes: &[u8]) {
        for step in [1, 3, bytes.len()] {
            let answer = read_answer(&mut Trickle(bytes, step), MAX_ANSWER).unwrap();
            assert_eq!(answer.status, 200);
            assert_eq!(answer.body.as_slice(), b"{\"env\":{}}\n", "step {step}");
        }
    }

    #[test]
    fn stops_at_the_content_length() {
        let answer = read(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}garbage").unwrap();
        assert_eq!(answer.body.as_slice(), b"{}");
    }

    #[test]
    fn reads_retry_after_seconds() {
        let answer = read(
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(answer.status, 503);
        assert_eq!(answer.retry_after, Some(Duration::from_secs(7)));
        let dated = read(
            b"HTTP/1.1 503 x\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(dated.retry_after, None);
    }

    #[rstest]
    #[case::declared_length(b"HTTP/1.1 200 OK\r\nContent-Length: 4194305\r\n\r\n".to_vec())]
    #[case::chunk(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n400001\r\n".to_vec())]
    #[case::until_close([b"HTTP/1.1 200 OK\r\n\r\n".as_slice(), &vec![b'x'; MAX_ANSWER + 1]].concat())]
    #[case::many_chunks({
        let mut bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..5 {
            bytes.extend(b"100000\r\n");
            bytes.extend(vec![b'x'; 0x100000]);
            bytes.extend(b"\r\n");
        }
        bytes
    })]
    fn refuses_an_answer_over_the_cap(#[case] bytes: Vec<u8>) {
        assert!(matches!(read(&bytes), Err(HttpError::TooLarge(MAX_ANSWER))));
    }

    #[rstest]
    #[case::cut_body(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}".as_slice())]
    #[case::cut_head(b"HTTP/1.1 200 OK\r\nContent-Len".as_slice())]
    #[case::cut_chunk(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab".as_slice())]
    #[case::nothing(b"".as_slice())]
    fn a_cut_answer_is_closed(#[case] bytes: &[u8]) {
        assert!(matches!(read(bytes), Err(HttpError::Closed)));
    }

    #[rstest]
    #[case::not_http(b"SSH-2.0-OpenSSH_9.2\r\n\r\n".as_slice())]
    #[case::bad_length(b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n".as_slice())]
    #[case::two_lengths(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".as_slice())]
    #[case::gzip(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n".as_slice())]
    #[case::bad_chunk_size(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".as_slice())]
    #[case::long_chunk(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n".as_slice()
    )]
    fn refuses_malformed_answers(#[case] bytes: &[u8]) {
        assert!(matches!(read(bytes), Err(HttpError::Malformed(_))));
    }

    #[test]
    fn a_huge_head_is_refused() {
        let mut bytes = b"HTTP/1.1 200 OK\r\n".to_vec();
        bytes.extend(format!("X-Big: {}\r\n\r\n", "a".repeat(MAX_HEAD)).as_bytes());
        assert!(matches!(read(&bytes), Err(HttpError::Malformed(_))));
    }

    #[test]
    fn parses_the_values() {
        let values =
            parse_env(br#"{"env":{"API_KEY":"s3cr\u0065t","EMPTY":"","UNI":"\u00e9"},"extra":1}"#)
                .unwrap();
        assert_eq!(
            values.names().collect::<Vec<_>>(),
            ["API_KEY", "EMPTY", "UNI"]
        );
        assert_eq!(values.expose("API_KEY"), Some("s3cret"));
        assert_eq!(values.expose("EMPTY"), Some(""));
        assert_eq!(values.expose("UNI"), Some("é"));
    }

    #[rstest]
    #[case::syntax(br#"{"env":{"A":"val-71c4"#.as_slice())]
    #[case::not_a_string(br#"{"env":{"A":"val-71c4","B":["val-71c4"]}}"#.as_slice())]
    #[case::number(br#"{"env":{"A":"val-71c4","B":71}}"#.as_slice())]
    #[case::no_env(br#"{"values":{"A":"val-71c4"}}"#.as_slice())]
    #[case::html(b"<html>val-71c4</html>".as_slice())]
    #[case::bad_name(br#"{"env":{"A=val-71c4":"val-71c4"}}"#.as_slice())]
    #[case::nul(br#"{"env":{"A":"val-71c4\u0000"}}"#.as_slice())]
    fn a_bad_answer_never_shows_a_value(#[case] body: &[u8]) {
        let error = parse_env(body).unwrap_err();
        let shown = format!("{error} {error:?}");
        if matches!(error, AnswerError::BadName(_)) {
            // The name is shown so that the setting can be found; it is not a value.
            assert!(shown.contains("A=val-71c4"), "{shown}");
        } else {
            assert!(!shown.contains("val-71c4"), "{shown}");
            assert!(!shown.contains("71"), "{shown}");
        }
    }

    #[test]
    fn error_messages_are_one_short_line() {
        let body = br#"{"error":{"code":"unauthorized","message":"token expired\nsee docs"}}"#;
        assert_eq!(
            error_message(body).as_deref(),
            Some("token expired see docs")
        );
        let long = format!(
            r#"{{"error":{{"code":"x","message":"{}"}}}}"#,
            "m".repeat(2000)
        );
        assert_eq!(error_message(long.as_bytes()).unwrap().chars().count(), 513);
        assert_eq!(error_message(b"<html>502 Bad Gateway</html>"), None);
        assert_eq!(error_message(br#"{"error":"flat"}"#), None);
    }

    #[test]
    fn the_request_is_well_formed_http() {
        let url = ServerUrl::parse("https://agyn-secrets.agyn-secrets.svc:8444/").unwrap();
        let token = Token::new(Zeroizing::new("tok-5d1e".to_owned()));
        let bytes = request(&url, &token, "app \"main\"");
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut parsed = httparse::Request::new(&mut headers);
        let httparse::Status::Complete(at) = parsed.parse(bytes.as_slice()).unwrap() else {
            panic!("incomplete request");
        };
        assert_eq!(parsed.method, Some("POST"));
        assert_eq!(parsed.path, Some("/v1/exec/env"));
        let get = |name: &str| {
            parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| std::str::from_utf8(h.value).unwrap().to_owned())
        };
        assert_eq!(
            get("host").as_deref(),
            Some("agyn-secrets.agyn-secrets.svc:8444")
        );
        assert_eq!(get("authorization").as_deref(), Some("Bearer tok-5d1e"));
        assert_eq!(get("connection").as_deref(), Some("close"));
        assert_eq!(get("content-type").as_deref(), Some("application/json"));
        let body = &bytes.as_slice()[at..];
        assert_eq!(get("content-length"), Some(body.len().to_string()));
        assert_eq!(body, br#"{"container":"app \"main\""}"#);
    }
}
