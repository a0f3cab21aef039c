//! A second floor for cross-checking the admission benchmark: the textbook
//! hyper + tokio-rustls server, written without any of the webhook's own
//! server code (no axum, no connection threads, the system allocator, one
//! work-stealing tokio runtime). Same TLS library, provider, protocol
//! versions and certificate as the webhook; HTTP/1.1 keep-alive. It reads the
//! body and answers a prebuilt allowed AdmissionReview.
//!
//! ```text
//! cargo run --release --example plain_floor -- ADDR CERT KEY RESPONSE_FILE
//! ```

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, cert, key, response] = args.as_slice() else {
        anyhow::bail!("usage: plain_floor ADDR CERT KEY RESPONSE_FILE");
    };
    let answer = Bytes::from(std::fs::read(response)?);
    let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("plain floor listening on {}", listener.local_addr()?);
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let (acceptor, answer) = (acceptor.clone(), answer.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let answer = answer.clone();
                async move {
                    let body = request.into_body().collect().await?.to_bytes();
                    std::hint::black_box(body.len());
                    let mut response = Response::new(Full::new(answer));
                    response.headers_mut().insert(
                        "content-type",
                        hyper::header::HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, hyper::Error>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}
