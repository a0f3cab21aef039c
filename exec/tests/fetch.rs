//! `fetch` in-process against a real TLS server on loopback: the request contract, the
//! answers, the retries and the messages.

mod common;

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use agyn_secrets_exec::{Error, Resolver, Settings, Values, fetch};
use common::dns::{Data, DnsServer, Zone};
use common::https::{HttpsServer, Reply, Step};
use common::{OTHER_VALUE, Pki, TOKEN, VALUE, assert_no_secret, env_body, error_body};

struct Run {
    result: Result<Values, Error>,
    log: String,
}

impl Run {
    /// The line the wrapper would print when giving up.
    fn error_line(&self) -> String {
        match &self.result {
            Ok(values) => panic!("expected a failure, got {values:?}"),
            Err(error) => error.to_string(),
        }
    }
}

fn settings(url: &str, pki: &Pki, token_file: &Path, extra: &[(&str, &str)]) -> Settings {
    let mut vars = common::exec_env(url, pki, token_file);
    vars.extend(
        extra
            .iter()
            .map(|(n, v)| ((*n).to_owned(), OsString::from(v))),
    );
    Settings::from_lookup(|name| {
        vars.iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap()
}

fn run_with(settings: &Settings, resolver: &Resolver) -> Run {
    let mut log = Vec::new();
    let result = fetch(settings, resolver, &mut log);
    let log = String::from_utf8(log).unwrap();
    assert_no_secret(&log);
    if let Err(error) = &result {
        assert_no_secret(&error.to_string());
        assert_no_secret(&format!("{error:?}"));
    }
    Run { result, log }
}

fn run(server: &HttpsServer, pki: &Pki, extra: &[(&str, &str)]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let token = common::write_token(dir.path());
    let settings = settings(&server.ip_url(), pki, &token, extra);
    run_with(&settings, &Resolver::with_root("/nonexistent"))
}

fn ok_reply() -> Step {
    Step::Reply(Reply::json(200, env_body()))
}

#[test]
fn sends_the_token_and_container_and_reads_the_values() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = HttpsServer::start(&pki, vec![ok_reply()]);
    let run = run(&server, &pki, &[]);
    let values = run.result.unwrap();
    assert_eq!(values.expose("API_KEY"), Some(VALUE));
    assert_eq!(values.expose("DATABASE_URL"), Some(OTHER_VALUE));
    assert!(run.log.is_empty(), "{}", run.log);

    let [request] = server.received().try_into().unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/exec/env");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("connection"), Some("close"));
    assert_eq!(
        request.header("host"),
        Some(server.addr.to_string().as_str())
    );
    assert_eq!(request.body, br#"{"container":"app"}"#);
    assert_eq!(request.alpn.as_deref(), Some(b"http/1.1".as_slice()));
    // No SNI for an IP address; the certificate's IP SAN is what is checked.
    assert_eq!(request.sni, None);
}

#[test]
fn reads_a_chunked_answer() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = HttpsServer::start(
        &pki,
        vec![Step::Reply(Reply::json(200, env_body()).chunked())],
    );
    let values = run(&server, &pki, &[]).result.unwrap();
    assert_eq!(values.expose("API_KEY"), Some(VALUE));
}

#[test]
fn keeps_a_base_path_prefix() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = HttpsServer::start(&pki, vec![ok_reply()]);
    let dir = tempfile::tempdir().unwrap();
    let token = common::write_token(dir.path());
    let settings = settings(&format!("{}/agyn/", server.ip_url()), &pki, &token, &[]);
    run_with(&settings, &Resolver::with_root("/nonexistent"))
        .result
        .unwrap();
    assert_eq!(server.received()[0].path, "/agyn/v1/exec/env");
}

#[test]
fn retries_a_busy_server_until_it_answers() {
    let pki = Pki::new(&["127.0.0.1"]);
    let busy = Reply::json(503, error_body("unavailable", "starting up"));
    let server = HttpsServer::start(
        &pki,
        vec![
            Step::Reply(busy.clone()),
            Step::Close,
            Step::Reply(
                Reply::json(429, error_body("busy", "slow down")).header("Retry-After", "1"),
            ),
            ok_reply(),
        ],
    );
    let run = run(&server, &pki, &[]);
    assert_eq!(run.result.unwrap().expose("API_KEY"), Some(VALUE));
    assert_eq!(server.received().len(), 4);
    let lines: Vec<&str> = run.log.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.log);
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("agyn-secrets exec: attempt ")),
        "{}",
        run.log
    );
    assert!(
        lines[0].contains("the server answered 503: starting up"),
        "{}",
        run.log
    );
    assert!(lines[1].contains("closed"), "{}", run.log);
    // Retry-After: 1 is longer than the backoff's third pause (at most 1s) or equal to it.
    assert!(lines[2].ends_with("retrying in 1s"), "{}", run.log);
}

#[test]
fn a_refused_token_stops_at_once_with_the_servers_message() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = HttpsServer::start(
        &pki,
        vec![Step::Reply(Reply::json(
            401,
            error_body("unauthorized", "token is not bound to a running pod"),
        ))],
    );
    let run = run(&server, &pki, &[]);
    assert_eq!(
        run.error_line(),
        "the server refused this pod's token (401): token is not bound to a running pod"
    );
    assert_eq!(server.received().len(), 1);
    assert!(run.log.is_empty(), "{}", run.log);
}

#[test]
fn other_refusals_stop_at_once_too() {
    let cases = [
        (
            400,
            "the server rejected the request (400): container is required",
        ),
        (
            403,
            "the server denied this pod its values (403): container is required",
        ),
        (
            404,
            "the server has nothing for container \"app\" of this pod (404): container is required",
        ),
        (409, "the server answered 409: container is required"),
    ];
    for (status, expected) in cases {
        let pki = Pki::new(&["127.0.0.1"]);
        let server = HttpsServer::start(
            &pki,
            vec![Step::Reply(Reply::json(
                status,
                error_body("x", "container is required"),
            ))],
        );
        let run = run(&server, &pki, &[]);
        assert_eq!(run.error_line(), expected);
        assert_eq!(server.received().len(), 1, "status {status}");
    }
}

#[test]
fn an_error_body_that_is_not_the_error_shape_is_not_shown() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = HttpsServer::start(
        &pki,
        vec![Step::Reply(Reply::json(
            403,
            format!("<html>{VALUE}</html>"),
        ))],
    );
    let run = run(&server, &pki, &[]);
    assert_eq!(
        run.error_line(),
        "the server denied this pod its values (403): (no message)"
    );
}

#[test]
fn a_server_that_stays_busy_is_given_up_with_its_status() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = HttpsServer::start(
        &pki,
        vec![Step::Reply(Reply::json(
            502,
            error_body("bad_gateway", "vault is down"),
        ))],
    );
    let run = run(&server, &pki, &[("AGYN_EXEC_TIMEOUT", "1s")]);
    let line = run.error_line();
    assert!(line.contains("was still unavailable after 1s"), "{line}");
    assert!(line.contains("it answered 502: vault is down"), "{line}");
    assert!(server.received().len() >= 2, "{}", run.log);
}

#[test]
fn an_attempt_cut_short_by_the_deadline_reports_what_came_before() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = HttpsServer::start(
        &pki,
        vec![
            Step::Reply(Reply::json(502, error_body("bad_gateway", "vault is down"))),
            Step::Hang,
        ],
    );
    let run = run(&server, &pki, &[("AGYN_EXEC_TIMEOUT", "1s")]);
    let line = run.error_line();
    assert!(
        line.contains("was still unavailable after 1s: it answered 502: vault is down"),
        "{line}"
    );
    assert!(server.received().len() >= 2, "{}", run.log);
}

#[test]
fn a_hung_server_times_out() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = HttpsServer::start(&pki, vec![Step::Hang]);
    let run = run(&server, &pki, &[("AGYN_EXEC_TIMEOUT", "1s")]);
    let line = run.error_line();
    assert!(
        line.starts_with(&format!(
            "cannot reach {} after 1s: timed out",
            server.ip_url()
        )),
        "{line}"
    );
}

#[test]
fn nothing_listening_is_retried_and_named() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let pki = Pki::new(&["127.0.0.1"]);
    let dir = tempfile::tempdir().unwrap();
    let token = common::write_token(dir.path());
    let url = format!("https://127.0.0.1:{port}");
    let settings = settings(&url, &pki, &token, &[("AGYN_EXEC_TIMEOUT", "1s")]);
    let run = run_with(&settings, &Resolver::with_root("/nonexistent"));
    assert_eq!(
        run.error_line(),
        format!(
            "cannot reach {url} after 1s: connection refused; check the NetworkPolicy for port {port} and that the agyn-secrets server is running"
        )
    );
    assert!(
        run.log
            .contains("attempt 1 failed: connection refused; retrying in "),
        "{}",
        run.log
    );
}

#[test]
fn a_certificate_from_another_authority_is_refused() {
    let pki = Pki::new(&["127.0.0.1"]);
    let stranger = Pki::new(&["127.0.0.1"]);
    let server = HttpsServer::start(&pki, vec![ok_reply()]);
    let run = run(&server, &stranger, &[("AGYN_EXEC_TIMEOUT", "1s")]);
    let line = run.error_line();
    assert!(
        line.contains("TLS handshake failed: invalid peer certificate"),
        "{line}"
    );
    assert!(
        line.contains("check that AGYN_EXEC_CA is the authority"),
        "{line}"
    );
    assert!(server.received().is_empty());
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let pki = Pki::new(&["agyn-secrets.agyn-secrets.svc"]);
    let server = HttpsServer::start(&pki, vec![ok_reply()]);
    let run = run(&server, &pki, &[("AGYN_EXEC_TIMEOUT", "1s")]);
    let line = run.error_line();
    assert!(line.contains("TLS handshake failed"), "{line}");
    assert!(line.contains("names 127.0.0.1"), "{line}");
}

#[test]
fn a_name_from_the_hosts_file_is_verified_against_the_certificate() {
    let name = "agyn-secrets.agyn-secrets.svc";
    let pki = Pki::new(&[name]);
    let server = HttpsServer::start(&pki, vec![ok_reply()]);
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("etc")).unwrap();
    std::fs::write(root.path().join("etc/hosts"), format!("127.0.0.1 {name}\n")).unwrap();
    let token = common::write_token(root.path());
    let settings = settings(&server.url(name), &pki, &token, &[]);
    let run = run_with(&settings, &Resolver::with_root(root.path()));
    assert_eq!(run.result.unwrap().expose("API_KEY"), Some(VALUE));
    let request = &server.received()[0];
    assert_eq!(request.sni.as_deref(), Some(name));
    assert_eq!(
        request.header("host"),
        Some(format!("{name}:{}", server.addr.port()).as_str())
    );
}

#[test]
fn a_name_from_dns_is_found_through_the_search_domains() {
    let name = "agyn-secrets.agyn-secrets.svc";
    let pki = Pki::new(&[name, &format!("{name}.cluster.local")]);
    let server = HttpsServer::start(&pki, vec![ok_reply()]);
    let dns = DnsServer::start(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        0,
        Zone::new().record(
            &format!("{name}.cluster.local"),
            Data::A(Ipv4Addr::LOCALHOST),
        ),
    );
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("etc")).unwrap();
    std::fs::write(
        root.path().join("etc/resolv.conf"),
        "nameserver 127.0.0.1\nsearch team-a.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n",
    )
    .unwrap();
    let token = common::write_token(root.path());
    let settings = settings(&server.url(name), &pki, &token, &[]);
    let resolver = Resolver::with_root(root.path()).with_port(dns.addr.port());
    let run = run_with(&settings, &resolver);
    assert_eq!(run.result.unwrap().expose("API_KEY"), Some(VALUE));
    assert_eq!(
        dns.names_asked().last().unwrap(),
        &format!("{name}.cluster.local")
    );
}

#[test]
fn an_unknown_name_is_given_up_with_a_dns_hint() {
    let pki = Pki::new(&["127.0.0.1"]);
    let dns = DnsServer::start(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, Zone::new());
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("etc")).unwrap();
    std::fs::write(
        root.path().join("etc/resolv.conf"),
        "nameserver 127.0.0.1\n",
    )
    .unwrap();
    let token = common::write_token(root.path());
    let settings = settings(
        "https://nowhere.example:8444",
        &pki,
        &token,
        &[("AGYN_EXEC_TIMEOUT", "2s")],
    );
    let resolver = Resolver::with_root(root.path()).with_port(dns.addr.port());
    // The last attempt may be cut short by the deadline; what is reported is
    // still what the name server said.
    let line = run_with(&settings, &resolver).error_line();
    assert!(
        line.starts_with(
            "cannot reach https://nowhere.example:8444 after 2s: host \"nowhere.example\""
        ),
        "{line}"
    );
    assert!(line.contains("check the host in AGYN_EXEC_URL"), "{line}");
}

#[test]
fn a_bad_answer_stops_without_showing_it() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = HttpsServer::start(
        &pki,
        vec![Step::Reply(Reply::json(
            200,
            format!(r#"{{"env":{{"A":["{VALUE}"]}}}}"#),
        ))],
    );
    let run = run(&server, &pki, &[]);
    let line = run.error_line();
    assert!(
        line.starts_with("the server's answer is not the expected JSON"),
        "{line}"
    );
    assert_eq!(server.received().len(), 1);
}

#[test]
fn a_missing_token_file_stops_at_once() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = HttpsServer::start(&pki, vec![ok_reply()]);
    let settings = settings(&server.ip_url(), &pki, Path::new("/nonexistent/token"), &[]);
    let line = run_with(&settings, &Resolver::with_root("/nonexistent")).error_line();
    assert_eq!(
        line,
        "cannot read the pod's token /nonexistent/token: not found; is the projected token volume mounted?"
    );
    assert!(server.received().is_empty());
}
