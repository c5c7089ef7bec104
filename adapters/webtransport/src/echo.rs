//! A WebTransport echo server on loopback, for examples, tests and quick
//! checks: every bidirectional stream gets back what it sends.
//!
//! It runs on a small tokio runtime of its own, so it serves the same from a
//! tokio program, a smol program or a plain thread, and it can be made to
//! vanish without a word (to show how fast a dead peer is noticed) or to stop
//! accepting new connections for a while (to show that handshakes time out
//! cleanly).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use url::Url;
use wtransport::endpoint::IncomingSession;
use wtransport::endpoint::endpoint_side::Server;
use wtransport::error::StreamReadError;
use wtransport::tls::Sha256Digest;
use wtransport::{Connection, Endpoint, Identity, ServerConfig, VarInt};

/// Settings of an [`EchoServer`].
///
/// ```
/// use std::net::Ipv4Addr;
/// use std::time::Duration;
/// use wtpool_webtransport::echo::{EchoServer, EchoServerOptions};
///
/// let server = EchoServer::start(EchoServerOptions {
///     path: "/chat".into(),
///     max_sessions: Some(1), // a second session at once gets 429 Too Many Requests
///     max_idle_timeout: Duration::from_secs(1), // the server's side of the QUIC idle timeout
///     ..EchoServerOptions::default() // 127.0.0.1 on a free port, a fresh certificate
/// })?;
/// assert_eq!(server.local_addr().ip(), Ipv4Addr::LOCALHOST);
/// assert_eq!(server.url().path(), "/chat");
///
/// // A second server with the same certificate: one hash pins both.
/// let twin = EchoServer::start(EchoServerOptions {
///     identity: Some(server.identity()),
///     ..EchoServerOptions::default()
/// })?;
/// assert_eq!(twin.certificate_hash(), server.certificate_hash());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct EchoServerOptions {
    /// Where to listen: `127.0.0.1` on a free port by default. Keep it on loopback.
    pub bind: SocketAddr,
    /// The path sessions must ask for; others get 404 Not Found.
    pub path: String,
    /// Sessions open at once; more get 429 Too Many Requests. No limit by default.
    pub max_sessions: Option<usize>,
    /// The server's QUIC idle timeout.
    pub max_idle_timeout: Duration,
    /// The server's keep-alive interval.
    pub keep_alive_interval: Option<Duration>,
    /// The certificate to serve; a fresh self-signed one (valid 14 days, for
    /// localhost, 127.0.0.1 and ::1) when `None`.
    pub identity: Option<Arc<Identity>>,
}

impl Default for EchoServerOptions {
    fn default() -> Self {
        EchoServerOptions {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            path: "/echo".into(),
            max_sessions: None,
            max_idle_timeout: Duration::from_secs(6),
            keep_alive_interval: Some(Duration::from_secs(2)),
            identity: None,
        }
    }
}

/// A running echo server. Dropping it stops it the way [`vanish`](Self::vanish) does.
///
/// ```
/// use wtpool_webtransport::ClientOptions;
/// use wtpool_webtransport::echo::{EchoServer, EchoServerOptions};
///
/// let server = EchoServer::start(EchoServerOptions::default())?; // 127.0.0.1, a free port
/// assert_eq!(server.url().path(), "/echo");
/// // A client that trusts its self-signed certificate by hash:
/// let options = ClientOptions::default().with_certificate_hash(server.certificate_hash());
/// # drop(options);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct EchoServer {
    runtime: Option<tokio::runtime::Runtime>,
    endpoint: Arc<Endpoint<Server>>,
    address: SocketAddr,
    path: String,
    identity: Arc<Identity>,
    stop_accepting: Option<oneshot::Sender<()>>,
    close_sessions: watch::Sender<u64>,
    accepting: watch::Sender<bool>,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    requested: AtomicUsize,
    accepted: AtomicUsize,
    open: AtomicUsize,
    streams: AtomicUsize,
    finished: AtomicUsize,
    reset: Mutex<Vec<VarInt>>,
}

/// How the client ended the streams an [`EchoServer`] served, as its
/// receiving halves saw it.
///
/// ```
/// use wtpool_webtransport::echo::{EchoServer, EchoServerOptions, StreamEnds};
/// use wtransport::VarInt;
/// # use wtpool_webtransport::ClientOptions;
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = EchoServer::start(EchoServerOptions::default())?;
/// # let pinned = ClientOptions { bind: Some(([127, 0, 0, 1], 0).into()), ..Default::default() };
/// # let pinned = pinned.with_certificate_hash(server.certificate_hash());
/// let client = wtransport::Endpoint::client(pinned.build()?)?; // pins the server's certificate
/// let session = client.connect(server.url().as_str()).await?;
/// for reset in [false, true] {
///     let (mut send, mut recv) = session.open_bi().await?.await?;
///     send.write_all(b"hi").await?;
///     recv.read_exact(&mut [0; 2]).await?; // echoed: the server serves this stream
///     if reset {
///         send.reset(VarInt::from_u32(7))?;
///     } else {
///         send.finish().await?;
///     }
///     // The server records how the stream ended, then ends its own half.
///     recv.quic_stream_mut().read_to_end(16).await?;
/// }
/// let ends = StreamEnds { finished: 1, reset: vec![VarInt::from_u32(7)] };
/// assert_eq!(server.stream_ends(), ends);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamEnds {
    /// Streams the client finished (a clean end of stream).
    pub finished: usize,
    /// The error codes of the streams the client reset, in order.
    pub reset: Vec<VarInt>,
}

impl EchoServer {
    /// Starts a server on a runtime of its own.
    pub fn start(options: EchoServerOptions) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("wtpool-echo-server")
            .enable_all()
            .build()?;
        let identity = match options.identity.clone() {
            Some(identity) => identity,
            None => Arc::new(
                Identity::self_signed(["localhost", "127.0.0.1", "::1"])
                    .map_err(|e| std::io::Error::other(e.to_string()))?,
            ),
        };
        let config = ServerConfig::builder()
            .with_bind_address(options.bind)
            .with_identity(identity.clone_identity())
            .keep_alive_interval(options.keep_alive_interval)
            .max_idle_timeout(Some(options.max_idle_timeout))
            .map_err(|_| std::io::Error::other("invalid max_idle_timeout"))?
            .build();
        let endpoint = {
            let _entered = runtime.enter();
            Arc::new(Endpoint::server(config)?)
        };
        let address = endpoint.local_addr()?;
        let (stop_accepting, stopped) = oneshot::channel();
        let (close_sessions, _) = watch::channel(0);
        let (accepting, accepting_now) = watch::channel(true);
        let stats = Arc::new(Stats::default());
        runtime.spawn(accept_loop(
            endpoint.clone(),
            stopped,
            accepting_now,
            Policy {
                path: options.path.clone(),
                max_sessions: options.max_sessions,
            },
            close_sessions.clone(),
            stats.clone(),
        ));
        Ok(EchoServer {
            runtime: Some(runtime),
            endpoint,
            address,
            path: options.path,
            identity,
            stop_accepting: Some(stop_accepting),
            close_sessions,
            accepting,
            stats,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// `https://<address>/<path>`, the URL of its echo service.
    pub fn url(&self) -> Url {
        let url = format!("https://{}{}", self.address, self.path);
        Url::parse(&url).expect("an address and a path make a URL")
    }

    /// The SHA-256 hash of its certificate, for `ServerCertificate::Hashes`.
    pub fn certificate_hash(&self) -> Sha256Digest {
        self.identity.certificate_chain().as_slice()[0].hash()
    }

    /// Its identity, to start another server with the same certificate.
    pub fn identity(&self) -> Arc<Identity> {
        self.identity.clone()
    }

    /// Session requests (the CONNECT of a handshake) that reached it since
    /// it started, accepted or not.
    pub fn sessions_requested(&self) -> usize {
        self.stats.requested.load(Ordering::SeqCst)
    }

    /// Sessions accepted since it started.
    pub fn sessions_accepted(&self) -> usize {
        self.stats.accepted.load(Ordering::SeqCst)
    }

    /// Sessions open now.
    pub fn sessions_open(&self) -> usize {
        self.stats.open.load(Ordering::SeqCst)
    }

    /// Streams accepted since it started.
    pub fn streams_accepted(&self) -> usize {
        self.stats.streams.load(Ordering::SeqCst)
    }

    /// How the client ended the streams that ended so far: finished or reset.
    pub fn stream_ends(&self) -> StreamEnds {
        StreamEnds {
            finished: self.stats.finished.load(Ordering::SeqCst),
            reset: self.stats.reset.lock().expect("not poisoned").clone(),
        }
    }

    /// Closes every open session (as a server that restarts its workers
    /// would), and goes on accepting new ones.
    pub fn close_sessions(&self) {
        self.close_sessions
            .send_modify(|generation| *generation += 1);
    }

    /// Stops (`false`) or resumes (`true`) accepting new connections, as a
    /// server whose accept loop is stuck would. While stopped, the socket
    /// stays open and sessions already open go on, but a new connection is
    /// left unanswered: its handshake never completes, and the client gives
    /// up after its own timeout. Once resumed, new connections are served
    /// again (a connection attempt that arrived meanwhile may be taken up
    /// late, after its client gave up on it).
    pub fn set_accepting(&self, accepting: bool) {
        self.accepting.send_replace(accepting);
    }

    /// Stops accepting, closes every connection with a CONNECTION_CLOSE and
    /// waits (at most a second) until the peers were told.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop_accepting.take() {
            let _ = stop.send(());
        }
        let endpoint = self.endpoint.clone();
        let runtime = self.runtime.as_ref().expect("running");
        let told = runtime.spawn(async move {
            endpoint.close(VarInt::from_u32(0), b"server stopping");
            let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
        });
        let _ = told.await;
        self.vanish_now();
    }

    /// Disappears without a word: its runtime and socket are gone and no
    /// CONNECTION_CLOSE is sent, as when a host dies or a cable is cut. Peers
    /// notice only when their idle timeout runs out.
    pub fn vanish(mut self) {
        self.vanish_now();
    }

    fn vanish_now(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.vanish_now();
    }
}

/// Which sessions the server accepts.
#[derive(Clone)]
struct Policy {
    path: String,
    max_sessions: Option<usize>,
}

/// Accepts sessions until told to stop, while `accepting` says so. The
/// accept future is dropped before the endpoint is closed: a pending
/// `accept()` panics once its endpoint closes.
async fn accept_loop(
    endpoint: Arc<Endpoint<Server>>,
    mut stopped: oneshot::Receiver<()>,
    mut accepting: watch::Receiver<bool>,
    policy: Policy,
    close_sessions: watch::Sender<u64>,
    stats: Arc<Stats>,
) {
    loop {
        if !*accepting.borrow_and_update() {
            // Paused: wait to be resumed (or stopped), accepting nothing.
            tokio::select! {
                changed = accepting.changed() => match changed {
                    Ok(()) => continue,
                    Err(_) => return,
                },
                _ = &mut stopped => return,
            }
        }
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            // Paused meanwhile: quinn's accept is cancel-safe, so dropping
            // it loses no connection.
            changed = accepting.changed() => match changed {
                Ok(()) => continue,
                Err(_) => return,
            },
            _ = &mut stopped => return,
        };
        tokio::spawn(serve_session(
            incoming,
            policy.clone(),
            close_sessions.subscribe(),
            stats.clone(),
        ));
    }
}

async fn serve_session(
    incoming: IncomingSession,
    policy: Policy,
    mut close: watch::Receiver<u64>,
    stats: Arc<Stats>,
) {
    let Ok(request) = incoming.await else { return };
    stats.requested.fetch_add(1, Ordering::SeqCst);
    if request.path() != policy.path {
        request.not_found().await;
        return;
    }
    if policy
        .max_sessions
        .is_some_and(|max| stats.open.load(Ordering::SeqCst) >= max)
    {
        request.too_many_requests().await;
        return;
    }
    let Ok(session) = request.accept().await else {
        return;
    };
    stats.accepted.fetch_add(1, Ordering::SeqCst);
    stats.open.fetch_add(1, Ordering::SeqCst);
    close.mark_unchanged();
    loop {
        tokio::select! {
            stream = session.accept_bi() => match stream {
                Ok(stream) => {
                    stats.streams.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(echo(stream, stats.clone()));
                }
                Err(_) => break,
            },
            _ = close.changed() => {
                close_session(&session);
                break;
            }
        }
    }
    stats.open.fetch_sub(1, Ordering::SeqCst);
}

fn close_session(session: &Connection) {
    session.close(VarInt::from_u32(0), b"closed by the server");
}

/// Sends back what arrives, until the peer finishes or resets the stream,
/// and records which of the two it did.
async fn echo(
    (mut send, mut recv): (wtransport::SendStream, wtransport::RecvStream),
    stats: Arc<Stats>,
) {
    let mut buffer = vec![0; 16 * 1024];
    let mut echoing = true;
    let end = loop {
        match recv.read(&mut buffer).await {
            // Once the peer stopped our half, go on reading to see how its half ends.
            Ok(Some(n)) if echoing => echoing = send.write_all(&buffer[..n]).await.is_ok(),
            Ok(Some(_)) => {}
            Ok(None) => break None,
            Err(error) => break Some(error),
        }
    };
    match end {
        None => {
            stats.finished.fetch_add(1, Ordering::SeqCst);
            if echoing {
                let _ = send.finish().await;
            }
        }
        Some(StreamReadError::Reset(code)) => {
            stats.reset.lock().expect("not poisoned").push(code);
        }
        Some(_) => {}
    }
}
