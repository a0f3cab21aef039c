//! The floor of the admission benchmark: the webhook's own TLS and HTTP
//! stack (same rustls configuration and cipher suites, HTTP/1.1 and HTTP/2,
//! keep-alive) with a handler that reads the body and answers a prebuilt
//! allowed AdmissionReview. Whatever the webhook costs above this is the
//! price of admission itself.
//!
//! ```text
//! cargo run --release --example floor -- ADDR CERT KEY RESPONSE_FILE [BUSY_MICROS]
//! ```
//!
//! `BUSY_MICROS` (default 0) makes each request also spin for that long
//! before answering: a calibration of what a given amount of work per
//! request costs in throughput on the same machine, not part of the floor.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use axum::routing::post;

// The same allocator as the binary: the floor is its stack without the
// admission work.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    agyn_secrets::tls::provider();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (addr, cert, key, response, busy) = match args.as_slice() {
        [addr, cert, key, response] => (addr, cert, key, response, 0),
        [addr, cert, key, response, busy] => (addr, cert, key, response, busy.parse()?),
        _ => anyhow::bail!("usage: floor ADDR CERT KEY RESPONSE_FILE [BUSY_MICROS]"),
    };
    let busy = std::time::Duration::from_micros(busy);
    let answer = Bytes::from(std::fs::read(response)?);
    let cert = agyn_secrets::tls::ReloadingCert::load(cert.as_ref(), key.as_ref())?;
    let router = Router::new().route(
        "/mutate",
        post(move |body: Bytes| {
            let answer = answer.clone();
            async move {
                // Read the whole body, as the webhook does, then answer.
                std::hint::black_box(body.len());
                let started = std::time::Instant::now();
                while started.elapsed() < busy {
                    std::hint::spin_loop();
                }
                Response::builder()
                    .header(CONTENT_TYPE, "application/json")
                    .body(Body::from(answer))
                    .expect("a static response")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("floor listening on {}", listener.local_addr()?);
    // One connection thread per CPU, where the webhook runs two: the floor
    // is fastest so (on two cores under wrk, 97 000 to 113 000 requests/s
    // against 84 000 to 91 000 with three or four threads), and the webhook
    // is measured against the fastest
    // floor its stack makes.
    let threads = agyn_secrets::server::cpus();
    agyn_secrets::server::serve_tls(
        listener,
        agyn_secrets::tls::server_config(cert, None),
        router,
        threads,
        agyn_secrets::server::Shutdown::default(),
    )
    .await
}
