//! How long a Vault or OpenBao server takes to answer what one admission with
//! remote references asks of it: one GET per path, all at once, over kept-alive
//! connections. Bursts start at a fixed rate (open loop) and the wall time of
//! each, from the first request sent to the last answer read, is reported.
//! It is the part of a remote admission the provider alone decides.
//!
//! ```text
//! cargo run --release --example provider_burst -- ADDR TOKEN SECONDS RATE PATH...
//! ```
//!
//! Prints `{"bursts": n, "errors": n, "p50_ms": x, "p99_ms": y}`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, token, seconds, rate, paths @ ..] = args.as_slice() else {
        anyhow::bail!("usage: provider_burst ADDR TOKEN SECONDS RATE PATH...");
    };
    anyhow::ensure!(!paths.is_empty(), "give at least one path");
    let seconds: u64 = seconds.parse()?;
    let rate: u64 = rate.parse()?;
    agyn_secrets::tls::provider();
    let client = reqwest::Client::new();
    let urls: Arc<Vec<String>> = Arc::new(paths.iter().map(|p| format!("{addr}/v1/{p}")).collect());
    let token = Arc::new(token.clone());
    let times = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(0u64));

    let burst = {
        let (client, urls, token) = (client.clone(), urls.clone(), token.clone());
        move || {
            let (client, urls, token) = (client.clone(), urls.clone(), token.clone());
            async move {
                let started = Instant::now();
                let reads = urls.iter().map(|url| {
                    let request = client.get(url).header("X-Vault-Token", token.as_str());
                    async move {
                        let response = request.send().await?.error_for_status()?;
                        response.bytes().await
                    }
                });
                let ok = futures::future::join_all(reads)
                    .await
                    .iter()
                    .all(Result::is_ok);
                (started.elapsed(), ok)
            }
        }
    };
    // Open the connections first, as a running webhook has them open.
    for _ in 0..3 {
        burst().await;
    }

    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut running = Vec::new();
    while Instant::now() < deadline {
        ticks.tick().await;
        let (times, errors, burst) = (times.clone(), errors.clone(), burst.clone());
        running.push(tokio::spawn(async move {
            let (took, ok) = burst().await;
            if ok {
                times.lock().expect("lock").push(took);
            } else {
                *errors.lock().expect("lock") += 1;
            }
        }));
    }
    for task in running {
        task.await?;
    }

    let mut times = times.lock().expect("lock").clone();
    times.sort_unstable();
    let quantile = |q: f64| {
        times
            .get(((times.len() as f64 - 1.0) * q).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "{{\"bursts\": {}, \"errors\": {}, \"p50_ms\": {:.4}, \"p99_ms\": {:.4}}}",
        times.len(),
        errors.lock().expect("lock"),
        quantile(0.5),
        quantile(0.99)
    );
    Ok(())
}
