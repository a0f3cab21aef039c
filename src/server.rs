//! Listeners: the API over HTTP and the webhook over TLS, in one process or
//! one role each.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::app::App;
use crate::config::ServerArgs;
use crate::tls::{self, ClientIdentity, ReloadingCert, ReloadingClientCa};

/// Which listeners a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roles {
    Both,
    Api,
    Webhook,
}

/// How often the key ring and certificate files are checked for changes.
const RELOAD_EVERY: Duration = Duration::from_secs(1);
/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// When listeners stop accepting and connections finish, and which
/// connections are still open. Clones share both.
#[derive(Clone, Default)]
pub struct Shutdown {
    started: CancellationToken,
    open: TaskTracker,
}

impl Shutdown {
    /// Stops the listeners; open connections finish their requests and close.
    pub fn start(&self) {
        self.started.cancel();
        self.open.close();
    }

    /// Resolves once [`Shutdown::start`] was called and every connection
    /// has closed.
    pub async fn drained(&self) {
        self.open.wait().await;
    }
}

/// Runs until SIGINT or SIGTERM, then shuts down gracefully: `/readyz`
/// answers 503 while the listeners keep serving for `shutdown_delay`, so
/// that Kubernetes takes the pod out of its Service first; then the
/// listeners stop accepting, in-flight requests finish (at most the
/// admission timeout and a few seconds more) and the function returns.
pub async fn run(app: Arc<App>, args: &ServerArgs, roles: Roles) -> anyhow::Result<()> {
    // Cached sealed values may name a key that left the ring: start afresh.
    let store = app.store.clone();
    let _keyring_watcher = AbortOnDrop(
        app.keys
            .spawn_watcher(RELOAD_EVERY, move || store.invalidate_cache()),
    );
    // Only the webhook writes managed Secrets, so only it cleans them up.
    let _clean_up = if roles != Roles::Api {
        app.cluster
            .spawn_clean_up(app.store.clone())
            .map(AbortOnDrop)
    } else {
        None
    };
    // Rotations are made through the API, so its processes act on them.
    let _rollouts = if roles != Roles::Webhook {
        crate::rollout::spawn(app.clone()).map(AbortOnDrop)
    } else {
        None
    };
    // Every certificate is checked and every port bound before anything is
    // served, so that a mistake stops the process at once.
    let webhook = if roles != Roles::Api {
        Some(WebhookListeners::bind(&app, args).await?)
    } else {
        None
    };
    let api = if roles != Roles::Webhook {
        let api_addr = args.api.api_addr.unwrap_or(DEFAULT_API_ADDR);
        Some(
            TcpListener::bind(api_addr)
                .await
                .with_context(|| format!("bind the API to {api_addr}"))?,
        )
    } else {
        None
    };

    let shutdown = Shutdown::default();
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(webhook) = webhook {
        let threads = args.webhook.webhook_threads.unwrap_or_else(default_threads);
        webhook.spawn(&app, threads, &shutdown, &mut tasks)?;
    }
    if let Some(listener) = api {
        let router = crate::api::router(app.clone(), crate::console::routes());
        let addr = listener.local_addr()?;
        tracing::info!(%addr, url = browser_url(addr), "API and console listening");
        let shutdown = shutdown.clone();
        tasks.spawn(async move { serve(listener, router, shutdown).await });
    }
    tokio::select! {
        _ = shutdown_signal() => {}
        Some(result) = tasks.join_next() => return result.context("listener task")?,
    }
    drain(&app, &shutdown, tasks).await;
    Ok(())
}

/// The webhook's listener and, unless turned off, the exec listener, with
/// the certificates they serve.
struct WebhookListeners {
    webhook: TcpListener,
    exec: Option<TcpListener>,
    cert: Arc<ReloadingCert>,
    client_ca: Option<Arc<ReloadingClientCa>>,
}

impl WebhookListeners {
    async fn bind(app: &App, args: &ServerArgs) -> anyhow::Result<Self> {
        let (Some(cert), Some(key)) = (&args.webhook.tls.tls_cert, &args.webhook.tls.tls_key)
        else {
            anyhow::bail!(
                "the webhook needs --tls-cert and --tls-key (AGYN_TLS_CERT, AGYN_TLS_KEY)"
            );
        };
        let cert = ReloadingCert::load(cert, key).context("load the webhook's TLS certificate")?;
        let client_ca = args
            .webhook
            .webhook_client_ca
            .as_deref()
            .map(ReloadingClientCa::load)
            .transpose()
            .context("load the webhook's client CA (--webhook-client-ca)")?;
        let webhook_addr = args.webhook.webhook_addr.unwrap_or(DEFAULT_WEBHOOK_ADDR);
        let webhook = TcpListener::bind(webhook_addr)
            .await
            .with_context(|| format!("bind the webhook to {webhook_addr}"))?;
        let exec = if app.settings.exec.enabled {
            let exec_addr = args.webhook.exec_addr.unwrap_or(DEFAULT_EXEC_ADDR);
            let listener = TcpListener::bind(exec_addr)
                .await
                .with_context(|| format!("bind the exec listener to {exec_addr}"))?;
            Some(listener)
        } else {
            None
        };
        Ok(Self {
            webhook,
            exec,
            cert,
            client_ca,
        })
    }

    /// Serves both listeners on tasks of `tasks`, the webhook on `threads`
    /// connection threads; the certificates are reloaded while they serve.
    fn spawn(
        self,
        app: &Arc<App>,
        threads: NonZeroUsize,
        shutdown: &Shutdown,
        tasks: &mut tokio::task::JoinSet<anyhow::Result<()>>,
    ) -> anyhow::Result<()> {
        let Self {
            webhook,
            exec,
            cert,
            client_ca,
        } = self;
        // The exec listener: the same certificate, no client certificate
        // asked for (its callers are pods, which prove who they are with
        // their tokens), and its own threads.
        if let Some(exec) = exec {
            let router = crate::exec::router(app.clone());
            tracing::info!(addr = %exec.local_addr()?, "Exec listener listening (TLS)");
            let config = tls::server_config(cert.clone(), None);
            let shutdown = shutdown.clone();
            tasks.spawn(
                async move { serve_tls(exec, config, router, EXEC_THREADS, shutdown).await },
            );
        }
        let watchers = [
            Some(AbortOnDrop(tls::spawn_watcher(cert.clone(), RELOAD_EVERY))),
            client_ca
                .clone()
                .map(|ca| AbortOnDrop(tls::spawn_watcher(ca, RELOAD_EVERY))),
        ];
        let router = crate::webhook::router(app.clone());
        tracing::info!(
            addr = %webhook.local_addr()?,
            threads,
            client_certificates = client_ca.is_some(),
            "Webhook listening (TLS)"
        );
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let _watchers = watchers;
            let config = tls::server_config(cert, client_ca);
            serve_tls(webhook, config, router, threads, shutdown).await
        });
        Ok(())
    }
}

/// Not ready any more, still serving for the shutdown delay; then the
/// listeners stop accepting and in-flight requests get a grace period.
async fn drain(
    app: &App,
    shutdown: &Shutdown,
    mut tasks: tokio::task::JoinSet<anyhow::Result<()>>,
) {
    app.draining
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let delay = app.settings.shutdown_delay;
    tracing::info!(delay = %humantime::format_duration(delay), "Shutting down: not ready any more, still serving meanwhile");
    tokio::time::sleep(delay).await;
    shutdown.start();
    let grace = app.settings.admission_timeout + Duration::from_secs(5);
    let drained = async { while tasks.join_next().await.is_some() {} };
    match tokio::time::timeout(grace, drained).await {
        Ok(()) => tracing::info!("Every in-flight request answered; exiting"),
        Err(_) => tracing::warn!(
            grace = %humantime::format_duration(grace),
            "Requests still in flight after the grace period; exiting anyway"
        ),
    }
}

/// Serves `router` over TLS on `listener`. Each new connection is handed,
/// in turn, to one of `threads` connection threads and stays there. Each
/// thread runs its own single-threaded runtime, so a request goes from the
/// socket to its answer without crossing threads: no work stealing and no
/// wake-ups of another thread. Work a handler starts elsewhere (a database
/// or provider connection opened by another thread) still completes, driven
/// by the thread that opened it.
///
/// When `shutdown` starts it stops accepting, and returns once every
/// connection has closed, keeping the connection threads alive until then.
pub async fn serve_tls(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    router: Router,
    threads: NonZeroUsize,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let tls = TlsAcceptor::from(config);
    let threads = (0..threads.get())
        .map(|index| ConnectionThread::start(index, tls.clone(), router.clone()))
        .collect::<std::io::Result<Vec<_>>>()
        .context("start the webhook's connection threads")?;
    let mut next = 0;
    accept_loop(listener, &shutdown, |stream, peer| {
        threads[next].take(stream, peer, shutdown.clone());
        next = (next + 1) % threads.len();
    })
    .await;
    shutdown.drained().await;
    Ok(())
}

/// Where the listeners listen unless told (`serve --dev` chooses loopback).
const DEFAULT_WEBHOOK_ADDR: SocketAddr = any_address(8443);
const DEFAULT_EXEC_ADDR: SocketAddr = any_address(8444);
const DEFAULT_API_ADDR: SocketAddr = any_address(8080);

const fn any_address(port: u16) -> SocketAddr {
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), port)
}

/// The URL a person opens for the API and the console on `addr`.
fn browser_url(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() || addr.ip().is_loopback() {
        format!("http://localhost:{}/", addr.port())
    } else {
        format!("http://{addr}/")
    }
}
/// Connection threads of the exec listener: its calls come once per
/// container start, not once per admission.
const EXEC_THREADS: NonZeroUsize = NonZeroUsize::new(1).unwrap();

/// Connection threads per CPU when no CPU quota bounds the process: a
/// thread that other work on the machine preempts holds its connections
/// until it runs again, and with more threads than CPUs the kernel lets a
/// freshly scheduled one finish its slice (docs/decisions.md, "Connection
/// threads").
const THREADS_PER_CPU: NonZeroUsize = NonZeroUsize::new(2).unwrap();

/// The CPUs the process may use (a container's CPU limit counts), at least one.
pub fn cpus() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

/// Two connection threads per CPU, or one per CPU when a CPU quota (a
/// container's CPU limit) allows fewer CPUs than the machine gives the
/// process: threads running at once beyond the quota would use up each
/// period's share early and leave every connection waiting for the next.
pub fn default_threads() -> NonZeroUsize {
    threads_for(cpus(), affinity_cpus())
}

/// The default thread count for `cpus` usable CPUs when the process's
/// affinity allows `allowed` CPUs (if known).
fn threads_for(cpus: NonZeroUsize, allowed: Option<usize>) -> NonZeroUsize {
    match allowed {
        Some(allowed) if allowed > cpus.get() => cpus,
        _ => cpus.saturating_mul(THREADS_PER_CPU),
    }
}

/// How many CPUs the process's affinity allows, quotas aside.
#[cfg(target_os = "linux")]
fn affinity_cpus() -> Option<usize> {
    let set = rustix::thread::sched_getaffinity(None).ok()?;
    usize::try_from(set.count()).ok()
}

#[cfg(not(target_os = "linux"))]
fn affinity_cpus() -> Option<usize> {
    None
}

/// Serves `router` on `listener` without TLS, one task per connection on
/// the calling runtime, until `shutdown` has drained.
async fn serve(listener: TcpListener, router: Router, shutdown: Shutdown) -> anyhow::Result<()> {
    accept_loop(listener, &shutdown, |stream, peer| {
        let served = connection(stream, peer, None, router.clone(), shutdown.clone());
        tokio::spawn(shutdown.open.track_future(served));
    })
    .await;
    shutdown.drained().await;
    Ok(())
}

/// Accepts connections and hands each to `dispatch` until `shutdown`
/// starts; the listener closes when it returns.
async fn accept_loop(
    listener: TcpListener,
    shutdown: &Shutdown,
    mut dispatch: impl FnMut(TcpStream, SocketAddr),
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.started.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => dispatch(stream, peer),
            Err(error) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(%error, "Accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A thread with its own single-threaded runtime that serves the
/// connections it is given. It ends when its [`ConnectionThread`] is
/// dropped, with the connections it holds.
struct ConnectionThread {
    connections: mpsc::UnboundedSender<Handover>,
}

/// A connection on its way to a connection thread, counted as open from
/// the moment it was accepted.
struct Handover {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    shutdown: Shutdown,
    open: tokio_util::task::task_tracker::TaskTrackerToken,
}

impl ConnectionThread {
    fn start(index: usize, tls: TlsAcceptor, router: Router) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (connections, mut received) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name(format!("webhook-{index}"))
            .spawn(move || {
                runtime.block_on(async move {
                    while let Some(handover) = received.recv().await {
                        let Handover {
                            stream,
                            peer,
                            shutdown,
                            open,
                        } = handover;
                        match TcpStream::from_std(stream) {
                            Ok(stream) => {
                                let tls = Some(tls.clone());
                                let served =
                                    connection(stream, peer, tls, router.clone(), shutdown);
                                tokio::spawn(async move {
                                    served.await;
                                    drop(open);
                                });
                            }
                            Err(error) => {
                                tracing::warn!(%peer, %error, "Could not take a connection over");
                            }
                        }
                    }
                });
            })?;
        Ok(Self { connections })
    }

    /// Moves `stream` to this thread's runtime.
    fn take(&self, stream: TcpStream, peer: SocketAddr, shutdown: Shutdown) {
        let open = shutdown.open.token();
        let sent = stream
            .into_std()
            .map_err(|error| error.to_string())
            .and_then(|stream| {
                let handover = Handover {
                    stream,
                    peer,
                    shutdown,
                    open,
                };
                self.connections
                    .send(handover)
                    .map_err(|_| "the connection thread has stopped".to_owned())
            });
        if let Err(error) = sent {
            tracing::warn!(%peer, %error, "Dropped a connection");
        }
    }
}

/// Serves one connection, over TLS when `tls` is given, until the client
/// closes it or `shutdown` starts (then its requests in flight finish
/// first). Header blocks are limited to 64 KiB and must arrive within 10 s
/// (HTTP/1.1), so a slow or oversized client is refused early. Each request
/// carries its peer address as `ConnectInfo`, and over TLS the caller's
/// verified client certificate, if any, as a [`ClientIdentity`].
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    router: Router,
    shutdown: Shutdown,
) {
    let _ = stream.set_nodelay(true);
    let service = |identity: Option<ClientIdentity>| {
        let service = router.into_service::<hyper::body::Incoming>().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                if let Some(identity) = &identity {
                    request.extensions_mut().insert(identity.clone());
                }
                request
            },
        );
        TowerToHyperService::new(service)
    };
    let builder = connection_builder();
    let result = match tls {
        None => {
            let served = builder.serve_connection(TokioIo::new(stream), service(None));
            until_shutdown(served, &shutdown).await
        }
        Some(acceptor) => {
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(%peer, %error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            // rustls keeps a peer's chain only once it has verified it.
            let identity = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(ClientIdentity::of);
            let served = builder.serve_connection(TokioIo::new(stream), service(identity));
            until_shutdown(served, &shutdown).await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "Connection ended with an error");
    }
}

/// Drives a connection; when `shutdown` starts, lets its requests in
/// flight finish and closes it.
async fn until_shutdown<C>(connection: C, shutdown: &Shutdown) -> C::Output
where
    C: hyper_util::server::graceful::GracefulConnection,
{
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => result,
        _ = shutdown.started.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    }
}

fn connection_builder() -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(64 * 1024)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    // Sized for an API server, not for bulk transfer: a client may open 32
    // streams and have 64 KiB unread per stream and 256 KiB per connection,
    // instead of hyper's 200 streams of 1 MiB each. Bodies beyond that wait
    // for the handler to read them, within the webhook's byte budget.
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_header_list_size(64 * 1024)
        .max_concurrent_streams(32)
        .initial_stream_window_size(64 * 1024)
        .initial_connection_window_size(256 * 1024)
        .max_send_buf_size(256 * 1024)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    builder
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Aborts a background task when dropped.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_url_is_one_a_browser_opens() {
        let url = |addr: &str| browser_url(addr.parse().unwrap());
        assert_eq!(url("0.0.0.0:8080"), "http://localhost:8080/");
        assert_eq!(url("127.0.0.1:8081"), "http://localhost:8081/");
        assert_eq!(url("[::]:8080"), "http://localhost:8080/");
        assert_eq!(url("10.1.2.3:8080"), "http://10.1.2.3:8080/");
        assert_eq!(url("[fd00::1]:8080"), "http://[fd00::1]:8080/");
    }

    fn n(count: usize) -> NonZeroUsize {
        NonZeroUsize::new(count).unwrap()
    }

    #[test]
    fn two_threads_per_cpu_without_a_quota() {
        assert_eq!(threads_for(n(2), Some(2)), n(4));
        // Pinned to fewer CPUs than the machine has: affinity, not a quota.
        assert_eq!(threads_for(n(1), Some(1)), n(2));
        assert_eq!(threads_for(n(3), None), n(6));
    }

    #[test]
    fn one_thread_per_cpu_under_a_quota() {
        // A 500m or 1-CPU limit on a 2-CPU machine, a 4-CPU limit on 16.
        assert_eq!(threads_for(n(1), Some(2)), n(1));
        assert_eq!(threads_for(n(4), Some(16)), n(4));
    }
}
