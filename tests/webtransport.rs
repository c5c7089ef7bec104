//! Integration tests of the WebTransport pools (`SessionPool`,
//! `ConnectionPool`, `StreamPool`) against a real wtransport server on
//! loopback, on both runtimes.
//!
//! Every scenario is written once, as an `async fn` generic over the runtime,
//! and the `scenarios!` macro at the bottom expands it into two tests:
//! `on_tokio::<name>` (a multi-thread tokio runtime with 2 workers) and
//! `on_smol::<name>` (`smol::block_on`). The smol side never touches tokio:
//! wtpool-smol runs wtransport's handshakes on a background runtime it owns.
//!
//! The server is the crate's `EchoServer`, which runs on a tokio runtime of
//! its own; a few stream cases that an echo cannot play (a peer that finishes
//! or resets its half, or stops ours) use `QuirkyServer` below, which also
//! runs on a runtime of its own. Every server binds 127.0.0.1 and every client
//! endpoint 127.0.0.1:0; certificates are pinned by their hash.
//!
//! Transport timeouts are short (idle timeout 1 s, keep-alive 300 ms) so that
//! a dead peer is noticed within a second or two. The tests wait for a state
//! (`wait_until`, patient up to 5 s) rather than for a time, assert order and
//! state, and bound elapsed time only where the behaviour is about time, with
//! generous margins. Each scenario fails if it runs longer than 20 s.
//!
//! The scenarios whose doc starts with "Regression:" once failed; each names
//! the bug it caught.

#[macro_use]
#[path = "support/harness.rs"]
mod harness;

use std::collections::HashSet;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{Either, join_all, select};
use url::Url;
use wtpool::{ConfigError, Factory, Pool, PoolError, Pooled, Status, TimeoutKind};
use wtpool_webtransport::echo::{EchoServer, EchoServerOptions, StreamEnds};
use wtpool_webtransport::{
    ABANDONED_STREAM_CODE, ClientEndpoint, ClientOptions, ConnectionPool, DEFAULT_CREATE_TIMEOUT,
    DEFAULT_MAX_CREATING, Fleet, FleetSettings, ServerCertificate, SessionFactory, SessionPool,
    SharedSessionPool, Stream, StreamPool, WebTransportError, client_endpoint,
};
use wtransport::tls::Sha256Digest;
use wtransport::{Connection, Identity, RecvStream, SendStream, VarInt};

use harness::{TestRuntime, within};

// ----- the harness -----

/// What `SessionPool` and `ConnectionPool` deref to.
type Sessions<R> = Pool<SessionFactory, R>;
type Error = PoolError<WebTransportError>;

/// How long a `wait_until` waits for a state before failing the test.
const PATIENCE: Duration = Duration::from_secs(5);
/// The QUIC idle timeout of the clients and the servers.
const IDLE_TIMEOUT: Duration = Duration::from_secs(1);
/// The keep-alive interval of the clients and the servers.
const KEEP_ALIVE: Duration = Duration::from_millis(300);
/// The create timeout of the pools that talk to a good server.
const CREATE_TIMEOUT: Duration = Duration::from_secs(5);
/// A short create timeout, for the pools that talk to nobody.
const SHORT_CREATE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a QUIC handshake with nobody waits: at least three probe
/// timeouts (RFC 9000, 10.1), 3 s with the initial RTT estimate, however
/// short the idle timeout.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// Slack on top of a timeout before a failure counts as late.
const MARGIN: Duration = Duration::from_secs(4);

async fn sleep<R: TestRuntime>(ms: u64) {
    R::default().sleep(Duration::from_millis(ms)).await;
}

async fn wait_until<R: TestRuntime>(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < PATIENCE, "waited in vain until {what}");
        sleep::<R>(2).await;
    }
}

/// Runs `work` to its end, calling `sample` about every millisecond meanwhile.
async fn while_sampling<R: TestRuntime, T>(
    work: impl Future<Output = T>,
    mut sample: impl FnMut(),
) -> T {
    let sampler = async {
        loop {
            sample();
            sleep::<R>(1).await;
        }
    };
    match select(pin!(work), pin!(sampler)).await {
        Either::Left((output, _)) => output,
        Either::Right(_) => unreachable!("the sampler never ends"),
    }
}

/// The pool's status, checked for consistency (`harness::checked`), and
/// never over the size (no test here shrinks a pool).
fn checked(status: Status) -> Status {
    let status = harness::checked(status);
    assert!(status.size <= status.max_size, "over size: {status:?}");
    status
}

/// (size, idle, in_use)
fn occupancy(status: Status) -> (usize, usize, usize) {
    let s = checked(status);
    (s.size, s.idle, s.in_use)
}

/// The error of an acquire that must fail.
fn failure<T>(result: Result<T, Error>, what: &str) -> Error {
    match result {
        Ok(_) => panic!("{what}: acquire succeeded"),
        Err(error) => error,
    }
}

// ----- servers and clients -----

fn server_options() -> EchoServerOptions {
    EchoServerOptions {
        max_idle_timeout: IDLE_TIMEOUT,
        keep_alive_interval: Some(KEEP_ALIVE),
        ..EchoServerOptions::default()
    }
}

fn start_server() -> EchoServer {
    EchoServer::start(server_options()).expect("start the echo server")
}

fn client_options(hash: Sha256Digest) -> ClientOptions {
    ClientOptions {
        bind: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
        keep_alive_interval: Some(KEEP_ALIVE),
        max_idle_timeout: Some(IDLE_TIMEOUT),
        ..ClientOptions::default()
    }
    .with_certificate_hash(hash)
}

fn endpoint<R: TestRuntime>(hash: Sha256Digest) -> ClientEndpoint {
    client_endpoint::<R>(&client_options(hash)).expect("a client endpoint")
}

/// A session pool to `url` with the given create timeout.
fn pool_to<R: TestRuntime>(
    endpoint: ClientEndpoint,
    url: Url,
    max_size: usize,
    create_timeout: Duration,
) -> SessionPool<R> {
    SessionPool::<R>::builder(endpoint, url, max_size)
        .expect("a valid URL")
        .options(|o| o.create_timeout(create_timeout))
        .build()
        .expect("a valid pool")
}

/// A session pool to the echo server.
fn session_pool<R: TestRuntime>(server: &EchoServer, max_size: usize) -> SessionPool<R> {
    pool_to::<R>(
        endpoint::<R>(server.certificate_hash()),
        server.url(),
        max_size,
        CREATE_TIMEOUT,
    )
}

/// An echo server, a session pool to it, one session taken from that pool,
/// and a stream pool of `max_size` on that session.
async fn echo_streams<R: TestRuntime>(
    max_size: usize,
) -> (
    EchoServer,
    SessionPool<R>,
    Pooled<SessionFactory, R>,
    StreamPool<R>,
) {
    let server = start_server();
    let (sessions, session, streams) =
        streams_to::<R>(server.url(), server.certificate_hash(), max_size).await;
    (server, sessions, session, streams)
}

/// A session pool to the server at `url` (its certificate pinned by `hash`),
/// one session taken from that pool, and a stream pool of `max_size` on it.
async fn streams_to<R: TestRuntime>(
    url: Url,
    hash: Sha256Digest,
    max_size: usize,
) -> (SessionPool<R>, Pooled<SessionFactory, R>, StreamPool<R>) {
    let sessions = pool_to::<R>(endpoint::<R>(hash), url, 1, CREATE_TIMEOUT);
    let session = sessions.acquire().await.expect("a session");
    let streams = StreamPool::<R>::new((*session).clone(), max_size).expect("a stream pool");
    (sessions, session, streams)
}

/// The hash of a certificate no server here uses.
fn foreign_hash() -> Sha256Digest {
    let identity = Identity::self_signed(["localhost"]).expect("a self-signed identity");
    identity.certificate_chain().as_slice()[0].hash()
}

/// A loopback URL with nothing listening at its port.
fn dead_url() -> Url {
    let port = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|socket| socket.local_addr())
        .expect("a free loopback port")
        .port();
    Url::parse(&format!("https://127.0.0.1:{port}/echo")).expect("a URL")
}

/// Opens a stream on `session`, sends `message`, finishes, and checks that
/// the whole echo comes back.
async fn echo_on(session: &Connection, message: &[u8]) {
    let opening = session.open_bi().await.expect("open a stream");
    let (mut send, mut recv) = opening.await.expect("the stream opens");
    echo_over(&mut send, &mut recv, message).await;
}

/// Sends `message` on `send`, finishes, and checks that the whole echo
/// comes back on `recv`.
async fn echo_over(send: &mut SendStream, recv: &mut RecvStream, message: &[u8]) {
    send.write_all(message).await.expect("write");
    send.finish().await.expect("finish");
    let mut back = Vec::new();
    let mut buffer = [0; 256];
    while let Some(n) = recv.read(&mut buffer).await.expect("read the echo") {
        back.extend_from_slice(&buffer[..n]);
    }
    assert_eq!(back, message, "the echo");
}

/// One message round trip on a pooled stream, which stays open, marked
/// complete.
async fn round_trip(stream: &mut Stream, message: &[u8]) {
    stream.write_all(message).await.expect("write");
    let mut back = vec![0; message.len()];
    stream.read_exact(&mut back).await.expect("read the echo");
    assert_eq!(back, message, "the echo");
    stream.mark_complete();
}

/// Marks a torn stream complete and gives it back: the mark must not make
/// it reusable, and the next stream handed out (returned) must be another.
async fn replace_torn<R: TestRuntime>(
    streams: &StreamPool<R>,
    mut torn: Pooled<wtpool_webtransport::StreamFactory, R>,
) -> Pooled<wtpool_webtransport::StreamFactory, R> {
    let id = torn.id();
    torn.mark_complete();
    assert!(!torn.is_reusable(), "a torn stream counts as reusable");
    drop(torn);
    let next = streams.acquire().await.expect("a stream");
    assert_ne!(next.id(), id, "a torn stream was handed out again");
    next
}

/// Starts an echo server on `bind` with `identity`, retrying while the old
/// server's socket is still being let go.
async fn restart<R: TestRuntime>(bind: SocketAddr, identity: Arc<Identity>) -> EchoServer {
    let start = Instant::now();
    loop {
        let options = EchoServerOptions {
            bind,
            identity: Some(identity.clone()),
            ..server_options()
        };
        match EchoServer::start(options) {
            Ok(server) => return server,
            Err(error) => {
                assert!(
                    start.elapsed() < PATIENCE,
                    "cannot restart on {bind}: {error}"
                );
                sleep::<R>(20).await;
            }
        }
    }
}

/// The tokio runtime a test server runs on (one worker, as the echo
/// server's), shut down in the background when dropped.
struct ServerRuntime(Option<tokio::runtime::Runtime>);

impl ServerRuntime {
    /// A runtime for `what`, and a fresh self-signed identity for
    /// 127.0.0.1 with its hash.
    fn start(what: &str) -> (Self, Identity, Sha256Digest) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap_or_else(|error| panic!("a runtime for {what}: {error}"));
        let identity = Identity::self_signed(["localhost", "127.0.0.1"]).expect("an identity");
        let hash = identity.certificate_chain().as_slice()[0].hash();
        (ServerRuntime(Some(runtime)), identity, hash)
    }
}

impl std::ops::Deref for ServerRuntime {
    type Target = tokio::runtime::Runtime;

    fn deref(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("running until dropped")
    }
}

impl Drop for ServerRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// A server for the stream cases an echo cannot play. On each bidirectional
/// stream it reads 4-byte messages; by the first byte it echoes the message
/// and then finishes its half (`F`), resets its half without echoing (`R`),
/// stops the client's half (`S`), or echoes and goes on (anything else).
/// It runs on a tokio runtime of its own, as the echo server does.
struct QuirkyServer {
    _runtime: ServerRuntime,
    url: Url,
    hash: Sha256Digest,
}

impl QuirkyServer {
    fn start() -> Self {
        use wtransport::{Endpoint, ServerConfig};

        let (runtime, identity, hash) = ServerRuntime::start("the quirky server");
        let config = ServerConfig::builder()
            .with_bind_address(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .with_identity(identity)
            .keep_alive_interval(Some(KEEP_ALIVE))
            .max_idle_timeout(Some(IDLE_TIMEOUT))
            .expect("a valid idle timeout")
            .build();
        let endpoint = {
            let _entered = runtime.enter();
            Endpoint::server(config).expect("bind the quirky server")
        };
        let address = endpoint.local_addr().expect("its address");
        runtime.spawn(async move {
            loop {
                let incoming = endpoint.accept().await;
                tokio::spawn(async move {
                    let Ok(request) = incoming.await else { return };
                    let Ok(session) = request.accept().await else {
                        return;
                    };
                    while let Ok(stream) = session.accept_bi().await {
                        tokio::spawn(Self::serve(stream));
                    }
                });
            }
        });
        QuirkyServer {
            _runtime: runtime,
            url: Url::parse(&format!("https://{address}/quirky")).expect("a URL"),
            hash,
        }
    }

    async fn serve((mut send, mut recv): (wtransport::SendStream, wtransport::RecvStream)) {
        let mut message = [0; 4];
        while recv.read_exact(&mut message).await.is_ok() {
            match message[0] {
                b'R' => {
                    let _ = send.reset(VarInt::from_u32(7));
                    break;
                }
                b'S' => {
                    recv.stop(VarInt::from_u32(8));
                    // Keep the sending half open while the client finds out.
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    return;
                }
                _ => {}
            }
            if send.write_all(&message).await.is_err() {
                return;
            }
            if message[0] == b'F' {
                let _ = send.finish().await;
                break;
            }
        }
        // Keep the receiving half until the client is done with the stream.
        let mut rest = [0; 64];
        while let Ok(Some(_)) = recv.read(&mut rest).await {}
    }
}

/// A QUIC server that completes the QUIC handshake (TLS, ALPN h3) and then
/// closes every connection at once with the HTTP/3 error `code`, as
/// wtransport 0.7.2 does when a read of its control streams was torn. It
/// counts the connections it closed, and runs on a runtime of its own.
struct ClosingServer {
    _runtime: ServerRuntime,
    url: Url,
    hash: Sha256Digest,
    closed: Arc<AtomicUsize>,
}

impl ClosingServer {
    fn start(code: u32) -> Self {
        use wtransport::ServerConfig;
        use wtransport::quinn;

        let (runtime, identity, hash) = ServerRuntime::start("the closing server");
        let config = ServerConfig::builder()
            .with_bind_address(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .with_identity(identity)
            .build();
        let endpoint = {
            let _entered = runtime.enter();
            quinn::Endpoint::server(
                config.quic_config().clone(),
                SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            )
            .expect("bind the closing server")
        };
        let address = endpoint.local_addr().expect("its address");
        let closed = Arc::new(AtomicUsize::new(0));
        let counter = closed.clone();
        runtime.spawn(async move {
            while let Some(incoming) = endpoint.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    if let Ok(connection) = incoming.await {
                        // Counted before the client can hear of the close.
                        counter.fetch_add(1, Ordering::SeqCst);
                        connection.close(quinn::VarInt::from_u32(code), b"");
                    }
                });
            }
        });
        ClosingServer {
            _runtime: runtime,
            url: Url::parse(&format!("https://{address}/closing")).expect("a URL"),
            hash,
            closed,
        }
    }
}

// ----- sessions: reuse -----

/// Acquires, echoes and gives back a session twice: the second acquire gets
/// the same session, with no second handshake.
async fn reuses_one_session<R: TestRuntime>(pool: &Sessions<R>, server: &EchoServer) {
    let first = pool.acquire().await.expect("the first acquire");
    let id = first.stable_id();
    echo_on(&first, b"hello").await;
    // Held across the second acquire, so that a new session could not get the
    // same stable id (it is an address).
    let kept = (*first).clone();
    drop(first);
    assert_eq!(occupancy(pool.status()), (1, 1, 0), "the session idles");

    let second = pool.acquire().await.expect("the second acquire");
    assert_eq!(second.stable_id(), id, "the same session again");
    echo_on(&second, b"again").await;
    assert_eq!(server.sessions_accepted(), 1, "no second handshake");
    assert_eq!(server.streams_accepted(), 2);
    let counters = pool.counters();
    assert_eq!(
        (counters.created, counters.checkouts, counters.reused),
        (1, 2, 1)
    );
    drop(second);
    assert_eq!(kept.stable_id(), id);
}

async fn session_pool_reuses_the_session<R: TestRuntime>() {
    let server = start_server();
    let pool = session_pool::<R>(&server, 2);
    reuses_one_session(&pool, &server).await;
}

async fn connection_pool_reuses_the_connection<R: TestRuntime>() {
    let server = start_server();
    let config = client_options(server.certificate_hash())
        .build()
        .expect("a client config");
    let port = server.local_addr().port();
    let pool =
        ConnectionPool::<R>::new(config, "127.0.0.1", port, "/echo", 2).expect("a connection pool");
    assert_eq!(pool.factory().url().as_str(), server.url().as_str());
    reuses_one_session(&pool, &server).await;
}

// ----- sessions: capacity, waiters, close -----

async fn capacity_is_kept_and_waiters_are_served<R: TestRuntime>() {
    let server = start_server();
    let pool = session_pool::<R>(&server, 2);
    let holding = Arc::new(AtomicUsize::new(0));
    let peak_holding = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..6)
        .map(|n| {
            let pool = pool.clone();
            let holding = holding.clone();
            let peak_holding = peak_holding.clone();
            R::spawn_task(async move {
                let session = pool.acquire().await?;
                let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                peak_holding.fetch_max(now, Ordering::SeqCst);
                echo_on(&session, format!("task {n}").as_bytes()).await;
                sleep::<R>(10).await;
                holding.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, Error>(session.stable_id())
            })
        })
        .collect();
    let mut peak_open = 0;
    let mut peak_size = 0;
    let results = while_sampling::<R, _>(join_all(tasks), || {
        peak_open = peak_open.max(server.sessions_open());
        peak_size = peak_size.max(checked(pool.status()).size);
    })
    .await;
    for result in results {
        result.expect("every task gets a session");
    }
    assert!(
        peak_open <= 2,
        "the server saw {peak_open} sessions at once"
    );
    assert!(peak_size <= 2, "the pool held {peak_size} sessions");
    assert!(peak_holding.load(Ordering::SeqCst) <= 2);
    assert!(
        server.sessions_accepted() <= 2,
        "{} handshakes for a pool of 2",
        server.sessions_accepted()
    );
    assert_eq!(pool.counters().checkouts, 6);
    let s = checked(pool.status());
    assert_eq!((s.in_use, s.waiting), (0, 0), "{s:?}");
}

async fn close_fails_waiters_and_closes_sessions<R: TestRuntime>() {
    let server = start_server();

    // Idle sessions are closed by close().
    let pool = session_pool::<R>(&server, 2);
    let (a, b) = (pool.acquire().await, pool.acquire().await);
    let (a, b) = (a.expect("a session"), b.expect("another session"));
    echo_on(&a, b"a").await;
    echo_on(&b, b"b").await;
    drop((a, b));
    assert_eq!(occupancy(pool.status()), (2, 2, 0));
    assert_eq!(server.sessions_open(), 2);
    pool.close().await.expect("the idle sessions close");
    let s = checked(pool.status());
    assert!(s.closed && s.size == 0, "{s:?}");
    wait_until::<R>("the server sees the idle sessions closed", || {
        server.sessions_open() == 0
    })
    .await;
    let error = failure(pool.acquire().await, "acquire after close");
    assert!(matches!(error, PoolError::Closed), "{error}");

    // Waiters fail at close; a session in use is closed when given back.
    let pool = session_pool::<R>(&server, 1);
    let held = pool.acquire().await.expect("a session");
    echo_on(&held, b"held").await;
    let waiter = R::spawn_task({
        let pool = pool.clone();
        async move { pool.acquire().await.map(|session| session.stable_id()) }
    });
    wait_until::<R>("the waiter queues", || pool.status().waiting == 1).await;
    pool.close().await.expect("nothing idle to close");
    let error = failure(waiter.await, "the waiter");
    assert!(matches!(error, PoolError::Closed), "{error}");
    let error = failure(pool.acquire().await, "acquire after close");
    assert!(matches!(error, PoolError::Closed), "{error}");
    assert_eq!(server.sessions_open(), 1, "the session in use stays open");
    let kept = (*held).clone(); // the pool, not the last handle's drop, must close it
    drop(held);
    assert_eq!(checked(pool.status()).size, 0);
    wait_until::<R>("the server sees the session in use closed", || {
        server.sessions_open() == 0
    })
    .await;
    assert!(kept.quic_connection().close_reason().is_some());
}

// ----- sessions: dead ones -----

async fn sessions_closed_by_the_server_are_evicted<R: TestRuntime>() {
    let server = start_server();
    let pool = session_pool::<R>(&server, 2);

    // An idle session the server closed is not handed out again.
    let first = pool.acquire().await.expect("a session");
    echo_on(&first, b"one").await;
    let old = (*first).clone();
    drop(first);
    server.close_sessions();
    within::<R, _>(PATIENCE, old.closed())
        .await
        .expect("the client hears that the server closed the session");
    let second = pool.acquire().await.expect("a new session");
    assert_ne!(
        second.stable_id(),
        old.stable_id(),
        "the dead session was handed out"
    );
    echo_on(&second, b"two").await;
    assert_eq!(server.sessions_accepted(), 2);
    assert_eq!(
        occupancy(pool.status()),
        (1, 0, 1),
        "the dead session's slot was freed"
    );
    assert_eq!(pool.counters().closed, 1);

    // A session in use that the server closes is dropped when given back.
    let old = (*second).clone();
    server.close_sessions();
    within::<R, _>(PATIENCE, old.closed())
        .await
        .expect("the client hears that the server closed the session");
    drop(second);
    assert_eq!(occupancy(pool.status()), (0, 0, 0));
    let third = pool.acquire().await.expect("a new session");
    echo_on(&third, b"three").await;
    assert_eq!(server.sessions_accepted(), 3);
}

/// Regression: an idle session that died (closed by the server, or timed
/// out) kept its slot and counted as idle until an acquire happened to check
/// it, so `min_idle` kept dead sessions as its warm reserve. The pools now
/// check idle objects every `DEFAULT_IDLE_CHECK_INTERVAL` (the engine's
/// `idle_check_interval`).
async fn dead_idle_session_is_replaced_for_min_idle<R: TestRuntime>() {
    let server = start_server();
    let pool = SessionPool::<R>::builder(endpoint::<R>(server.certificate_hash()), server.url(), 2)
        .expect("a valid URL")
        .options(|o| o.min_idle(1).create_timeout(CREATE_TIMEOUT))
        .build()
        .expect("a valid pool");
    wait_until::<R>("min_idle is filled", || {
        server.sessions_accepted() == 1 && pool.status().idle == 1
    })
    .await;
    let mut old = None;
    pool.retain(|session, _| {
        old = Some(session.clone());
        true
    });
    let old = old.expect("the idle session");

    server.close_sessions();
    within::<R, _>(PATIENCE, old.closed())
        .await
        .expect("the client hears that the server closed the session");
    wait_until::<R>("min_idle is refilled with a live session", || {
        server.sessions_accepted() == 2 && occupancy(pool.status()) == (1, 1, 0)
    })
    .await;
}

async fn pool_recovers_when_the_server_comes_back<R: TestRuntime>() {
    let server = start_server();
    let (address, identity) = (server.local_addr(), server.identity());
    let pool = session_pool::<R>(&server, 2);
    let session = pool.acquire().await.expect("a session");
    echo_on(&session, b"before").await;
    let old = (*session).clone();
    drop(session);

    server.stop().await;
    within::<R, _>(PATIENCE, old.closed())
        .await
        .expect("a graceful stop tells the client");
    // Two acquires at once: both fail with the clear error, not a timeout
    // (the create timeout is longer than the QUIC handshake timeout), and
    // both give their slots back.
    let started = Instant::now();
    let (a, b) = futures::future::join(pool.acquire(), pool.acquire()).await;
    for error in [failure(a, "acquire"), failure(b, "acquire")] {
        assert!(
            matches!(
                error,
                PoolError::Create(WebTransportError::Unreachable { .. })
            ),
            "with the server gone: {error}"
        );
    }
    assert!(
        started.elapsed() < CREATE_TIMEOUT + MARGIN,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(occupancy(pool.status()), (0, 0, 0));

    let server = restart::<R>(address, identity).await;
    let session = pool.acquire().await.expect("the pool recovers");
    assert_ne!(session.stable_id(), old.stable_id());
    echo_on(&session, b"after").await;
    assert_eq!(server.sessions_accepted(), 1);
    drop(session);
    assert_eq!(occupancy(pool.status()), (1, 1, 0));
    server.stop().await;
}

async fn vanished_peer_is_noticed_within_the_idle_timeout<R: TestRuntime>() {
    let server = start_server();
    let pool = pool_to::<R>(
        endpoint::<R>(server.certificate_hash()),
        server.url(),
        2,
        SHORT_CREATE_TIMEOUT,
    );
    let session = pool.acquire().await.expect("a session");
    echo_on(&session, b"hello").await;
    let mut old = (*session).clone();
    drop(session);
    assert_eq!(occupancy(pool.status()), (1, 1, 0));

    let vanished = Instant::now();
    server.vanish();
    let limit = IDLE_TIMEOUT + MARGIN;
    within::<R, _>(limit, old.closed())
        .await
        .unwrap_or_else(|| panic!("the vanished peer is still taken for alive after {limit:?}"));
    let noticed = vanished.elapsed();
    assert!(
        !pool.factory().is_alive(&mut old),
        "the factory sees it dead"
    );

    // From now on the dead session is never handed out: the pool tries a new
    // one, which fails as nobody answers.
    let error = failure(pool.acquire().await, "acquire after the peer vanished");
    assert!(
        matches!(
            error,
            PoolError::Timeout(TimeoutKind::Create)
                | PoolError::Create(WebTransportError::Unreachable { .. })
        ),
        "{error} (noticed after {noticed:?})"
    );
    assert_eq!(occupancy(pool.status()), (0, 0, 0), "the dead session left");
}

// ----- sessions: the server killed under load, or not accepting -----

/// Why one echo request failed.
#[derive(Debug)]
enum RequestFailure {
    /// No session could be had.
    Acquire(Error),
    /// The session was had, but the stream failed (opening, writing or reading).
    Stream(String),
    /// The stream ended, but what came back is not what was sent.
    WrongEcho,
}

/// One echo request through `pool`: a session, a stream on it, `message`
/// sent and finished, and the whole echo read back. A success only if
/// exactly `message` came back.
async fn request<R: TestRuntime>(pool: &Sessions<R>, message: &[u8]) -> Result<(), RequestFailure> {
    let session = pool.acquire().await.map_err(RequestFailure::Acquire)?;
    let failed = |what: &str, error: &dyn std::fmt::Display| {
        RequestFailure::Stream(format!("{what}: {error}"))
    };
    let opening = session.open_bi().await.map_err(|e| failed("open", &e))?;
    let (mut send, mut recv) = opening.await.map_err(|e| failed("opening", &e))?;
    send.write_all(message)
        .await
        .map_err(|e| failed("write", &e))?;
    send.finish().await.map_err(|e| failed("finish", &e))?;
    let mut back = Vec::new();
    let mut buffer = [0; 256];
    while let Some(n) = recv
        .read(&mut buffer)
        .await
        .map_err(|e| failed("read", &e))?
    {
        back.extend_from_slice(&buffer[..n]);
    }
    if back == message {
        Ok(())
    } else {
        Err(RequestFailure::WrongEcho)
    }
}

/// One request as a load task saw it.
struct Record {
    started: Instant,
    finished: Instant,
    /// `None`: it did not finish within `REQUEST_LIMIT`.
    outcome: Option<Result<(), RequestFailure>>,
}

/// How long one request may take before it counts as hung: the wait timeout
/// of the load pool, plus the create timeout and the QUIC idle timeout that a
/// request on a dead session can run into, plus a margin.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);

async fn server_killed_and_restarted_under_load<R: TestRuntime>() {
    const TASKS: usize = 8;
    const MAX_SIZE: usize = 4;
    /// Successes to see before the kill, and again after the restart.
    const ROUNDS: usize = 40;
    /// How long the server stays dead: longer than the QUIC idle timeout, so
    /// that sessions die and creations are tried (and fail) meanwhile.
    const OUTAGE: Duration = Duration::from_millis(1500);

    let server = start_server();
    let (address, identity) = (server.local_addr(), server.identity());
    let pool: Sessions<R> = (*SessionPool::<R>::builder(
        endpoint::<R>(server.certificate_hash()),
        server.url(),
        MAX_SIZE,
    )
    .expect("a valid URL")
    .options(|o| {
        o.create_timeout(Duration::from_secs(1))
            .wait_timeout(Duration::from_secs(3))
    })
    .build()
    .expect("a valid pool"))
    .clone();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let successes = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (pool, stop, successes) = (pool.clone(), stop.clone(), successes.clone());
            R::spawn_task(async move {
                let mut records = Vec::new();
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let message = format!("task {t} request {n}");
                    let started = Instant::now();
                    let outcome =
                        within::<R, _>(REQUEST_LIMIT, request(&pool, message.as_bytes())).await;
                    let failed = !matches!(outcome, Some(Ok(())));
                    if !failed {
                        successes.fetch_add(1, Ordering::SeqCst);
                    }
                    records.push(Record {
                        started,
                        finished: Instant::now(),
                        outcome,
                    });
                    if failed {
                        // No tight loop against a dead server.
                        sleep::<R>(10).await;
                    }
                }
                records
            })
        })
        .collect();

    // Under load: kill the server without a word, keep it dead a while, and
    // start it again on the same address with the same certificate.
    wait_until::<R>("requests succeed before the kill", || {
        successes.load(Ordering::SeqCst) >= ROUNDS
    })
    .await;
    let killed_at = Instant::now();
    let accepted_by_the_first = server.streams_accepted();
    server.vanish();
    sleep::<R>(OUTAGE.as_millis() as u64).await;
    let server = restart::<R>(address, identity).await;
    let restarted_at = Instant::now();
    let at_restart = successes.load(Ordering::SeqCst);
    let started = Instant::now();
    while successes.load(Ordering::SeqCst) < at_restart + ROUNDS {
        assert!(
            started.elapsed() < PATIENCE * 2,
            "the pool does not recover: {} successes since the restart; {:?}",
            successes.load(Ordering::SeqCst) - at_restart,
            pool.status()
        );
        sleep::<R>(5).await;
    }
    stop.store(true, Ordering::SeqCst);
    let records: Vec<Record> = join_all(tasks).await.into_iter().flatten().collect();
    let accepted_by_the_second = server.streams_accepted();

    // The accounting. Nothing hung; nothing came back garbled.
    let hung = records.iter().filter(|r| r.outcome.is_none()).count();
    assert_eq!(
        hung, 0,
        "{hung} requests took longer than {REQUEST_LIMIT:?}"
    );
    let outcomes = || records.iter().filter_map(|r| r.outcome.as_ref());
    let wrong = outcomes()
        .filter(|o| matches!(o, Err(RequestFailure::WrongEcho)))
        .count();
    assert_eq!(wrong, 0, "echoes that were not the message sent");
    // A success is one the server served: the successes that were over
    // before the kill are at most the streams the first server took, and
    // those of requests started after the restart at most the streams the
    // second server took (the first one is gone by then).
    let ok_before = records
        .iter()
        .filter(|r| r.finished < killed_at && matches!(r.outcome, Some(Ok(()))))
        .count();
    let ok_after = records
        .iter()
        .filter(|r| r.started > restarted_at && matches!(r.outcome, Some(Ok(()))))
        .count();
    assert!(ok_before >= ROUNDS, "{ok_before} successes before the kill");
    assert!(
        ok_before <= accepted_by_the_first,
        "{ok_before} successes before the kill, but the server took {accepted_by_the_first} streams"
    );
    assert!(
        ok_after > 0,
        "no request started after the restart succeeded"
    );
    assert!(
        ok_after <= accepted_by_the_second,
        "{ok_after} successes after the restart, but the server took {accepted_by_the_second} streams"
    );
    // The kill was noticed: requests failed, as failures.
    let failures: Vec<_> = outcomes().filter_map(|o| o.as_ref().err()).collect();
    assert!(!failures.is_empty(), "the kill went unnoticed");
    let acquire_failures = failures
        .iter()
        .filter(|f| matches!(f, RequestFailure::Acquire(_)))
        .count();
    // Every acquire that succeeded is a checkout; the pool is left with no
    // session in use, no waiter, and within its size.
    let acquired = records.len() - acquire_failures;
    let counters = pool.counters();
    assert_eq!(counters.checkouts, acquired as u64, "{counters:?}");
    let s = checked(pool.status());
    assert_eq!((s.in_use, s.waiting), (0, 0), "{s:?}");
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for failure in &failures {
        let kind = match failure {
            RequestFailure::Acquire(error) => format!("acquire: {error}"),
            RequestFailure::Stream(error) => format!("stream: {error}"),
            RequestFailure::WrongEcho => "wrong echo".to_owned(),
        };
        // Drop what varies (addresses, ports) after the first words.
        let kind: String = kind.chars().take(60).collect();
        *kinds.entry(kind).or_default() += 1;
    }
    println!(
        "{} requests: {ok_before} ok before the kill, {ok_after} ok after the restart, {} failed \
         ({acquire_failures} could not get a session): {kinds:#?}; {counters:?}",
        records.len(),
        failures.len(),
    );
    // A session of the first server is never handed out once it is dead:
    // the pool still works as it should.
    let session = pool.acquire().await.expect("a session from the new server");
    echo_on(&session, b"after all that").await;
}

async fn server_that_stops_accepting_times_out_cleanly<R: TestRuntime>() {
    let server = start_server();
    let pool = pool_to::<R>(
        endpoint::<R>(server.certificate_hash()),
        server.url(),
        2,
        SHORT_CREATE_TIMEOUT,
    );
    let held = pool
        .acquire()
        .await
        .expect("a session while the server accepts");
    echo_on(&held, b"before").await;

    server.set_accepting(false);
    // The open session goes on.
    echo_on(&held, b"while not accepting").await;
    // A new one cannot be had: the acquire fails with the create timeout, in
    // its time, and gives its slot back (twice in a row, the same).
    for attempt in 0..2 {
        let started = Instant::now();
        let error = failure(pool.acquire().await, "a new session");
        let took = started.elapsed();
        assert!(
            matches!(error, PoolError::Timeout(TimeoutKind::Create)),
            "attempt {attempt}: {error}"
        );
        assert!(
            took >= SHORT_CREATE_TIMEOUT && took < SHORT_CREATE_TIMEOUT + MARGIN,
            "attempt {attempt}: {took:?}"
        );
        let s = checked(pool.status());
        assert_eq!((s.size, s.in_use, s.waiting), (1, 1, 0), "{s:?}");
    }

    // With a wait timeout shorter than the create timeout: the caller gets a
    // wait timeout in its time, and the creation goes on until its own
    // timeout, then frees its slot.
    let waiting =
        SessionPool::<R>::builder(endpoint::<R>(server.certificate_hash()), server.url(), 1)
            .expect("a valid URL")
            .options(|o| {
                o.wait_timeout(Duration::from_millis(200))
                    .create_timeout(Duration::from_secs(3))
            })
            .build()
            .expect("a valid pool");
    let started = Instant::now();
    let error = failure(waiting.acquire().await, "a session from the waiting pool");
    assert!(
        matches!(error, PoolError::Timeout(TimeoutKind::Wait)),
        "{error}"
    );
    // In its time: long before the create timeout (15 times the wait
    // timeout, a margin for a busy machine).
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        occupancy(waiting.status()),
        (1, 0, 0),
        "the creation goes on"
    );
    wait_until::<R>("the creation times out and frees its slot", || {
        checked(waiting.status()).size == 0
    })
    .await;
    assert_eq!(waiting.counters().create_failed, 1);

    // Accepting again: the pools recover.
    server.set_accepting(true);
    let second = pool.acquire().await.expect("a second session");
    echo_on(&second, b"accepting again").await;
    echo_on(&held, b"still there").await;
    let session = waiting.acquire().await.expect("a session");
    echo_on(&session, b"waited").await;
    assert!(server.sessions_accepted() >= 3);
    assert_eq!(occupancy(pool.status()), (2, 0, 2));
}

// ----- sessions: many at once -----

async fn cold_burst_respects_the_creation_cap<R: TestRuntime>() {
    const BURST: usize = 200;
    let server = start_server();
    let pool = SessionPool::<R>::new(
        endpoint::<R>(server.certificate_hash()),
        server.url(),
        BURST,
    )
    .expect("a pool");
    let mut peak_creating = 0;
    let results = while_sampling::<R, _>(join_all((0..BURST).map(|_| pool.acquire())), || {
        peak_creating = peak_creating.max(checked(pool.status()).creating);
    })
    .await;
    let sessions: Vec<_> = results
        .into_iter()
        .enumerate()
        .map(|(n, result)| result.unwrap_or_else(|error| panic!("acquire {n} failed: {error}")))
        .collect();
    assert!(
        (1..=DEFAULT_MAX_CREATING).contains(&peak_creating),
        "{peak_creating} creations in flight, the cap is {DEFAULT_MAX_CREATING}"
    );
    let ids: HashSet<_> = sessions.iter().map(|session| session.stable_id()).collect();
    assert_eq!(ids.len(), BURST, "every caller has a session of its own");
    assert_eq!(occupancy(pool.status()), (BURST, 0, BURST));
    wait_until::<R>("the server counts every session", || {
        server.sessions_accepted() == BURST
    })
    .await;
    echo_on(&sessions[BURST - 1], b"last").await;
}

// ----- sessions: bad inputs -----

/// Acquires from a pool that cannot make a session: the error comes within
/// `create_timeout` (plus a margin), and the failed creation leaves no trace
/// in the accounting. `attempts` times in a row (the same error each
/// time), to show the slot was given back.
async fn acquire_fails<R: TestRuntime>(
    pool: &Sessions<R>,
    create_timeout: Duration,
    attempts: usize,
) -> Error {
    let mut errors = Vec::new();
    for attempt in 0..attempts {
        let started = Instant::now();
        let error = failure(pool.acquire().await, "acquire from a bad pool");
        let elapsed = started.elapsed();
        assert!(
            elapsed < create_timeout + MARGIN,
            "attempt {attempt}: {error} after {elapsed:?}"
        );
        let s = checked(pool.status());
        assert_eq!((s.size, s.waiting), (0, 0), "attempt {attempt}: {s:?}");
        errors.push(error);
    }
    let first = errors.remove(0);
    for error in &errors {
        assert_eq!(error.to_string(), first.to_string(), "the same error again");
    }
    assert_eq!(pool.counters().create_failed, attempts as u64);
    first
}

/// A good server is still reached from `endpoint` after the failures.
async fn endpoint_still_works<R: TestRuntime>(endpoint: ClientEndpoint, server: &EchoServer) {
    let pool = pool_to::<R>(endpoint, server.url(), 1, CREATE_TIMEOUT);
    let session = pool.acquire().await.expect("a good server after a bad one");
    echo_on(&session, b"fine").await;
}

async fn unreachable_server_times_out_or_is_unreachable<R: TestRuntime>() {
    let server = start_server();
    let endpoint = endpoint::<R>(server.certificate_hash());
    let url = dead_url();

    // A create timeout shorter than the handshake timeout (the idle timeout).
    let pool = pool_to::<R>(endpoint.clone(), url.clone(), 2, SHORT_CREATE_TIMEOUT);
    let error = acquire_fails(&pool, SHORT_CREATE_TIMEOUT, 2).await;
    assert!(
        matches!(error, PoolError::Timeout(TimeoutKind::Create)),
        "{error}"
    );

    // A long one: the QUIC handshake times out first (once: it takes 3 s).
    let pool = pool_to::<R>(endpoint.clone(), url, 2, DEFAULT_CREATE_TIMEOUT);
    let error = acquire_fails(&pool, HANDSHAKE_TIMEOUT, 1).await;
    assert!(
        matches!(
            error,
            PoolError::Create(WebTransportError::Unreachable { .. })
        ),
        "{error}"
    );
    endpoint_still_works::<R>(endpoint, &server).await;
}

async fn wrong_path_is_rejected<R: TestRuntime>() {
    let server = start_server();
    let endpoint = endpoint::<R>(server.certificate_hash());
    let mut url = server.url();
    url.set_path("/no-such-path");
    let pool = SessionPool::<R>::builder(endpoint.clone(), url, 2)
        .expect("a valid URL")
        .options(|o| o.refusal_backoff(Duration::from_secs(60)))
        .build()
        .expect("a valid pool");
    let error = acquire_fails(&pool, CREATE_TIMEOUT, 1).await;
    assert!(
        matches!(
            error,
            PoolError::Create(WebTransportError::SessionRejected { .. })
        ),
        "{error}"
    );
    // A rejection is a refusal: the next acquire, in the back-off, fails
    // at once without a handshake.
    let error = failure(pool.acquire().await, "an acquire in the back-off");
    assert!(matches!(error, PoolError::Refused { .. }), "{error}");
    assert_eq!(server.sessions_requested(), 1);
    assert_eq!(server.sessions_accepted(), 0);
    endpoint_still_works::<R>(endpoint, &server).await;
}

/// A certificate the endpoint's pins refuse is reported as such
/// (`CertificateNotPinned`), though wtransport reports it as it reports an
/// unknown issuer; an endpoint that does not pin gets a plain TLS error for
/// the same self-signed server.
async fn a_wrong_pin_is_told_from_an_unknown_certificate<R: TestRuntime>() {
    let server = start_server();
    let pool = pool_to::<R>(
        endpoint::<R>(foreign_hash()),
        server.url(),
        2,
        CREATE_TIMEOUT,
    );
    let error = acquire_fails(&pool, CREATE_TIMEOUT, 2).await;
    assert!(
        matches!(
            error,
            PoolError::Create(WebTransportError::CertificateNotPinned { .. })
        ),
        "{error:?}"
    );
    let unpinned = ClientOptions {
        server_certificate: ServerCertificate::NativeRoots,
        ..client_options(foreign_hash())
    };
    let unpinned = client_endpoint::<R>(&unpinned).expect("an endpoint");
    assert!(!unpinned.pins_certificates());
    let pool = pool_to::<R>(unpinned, server.url(), 2, CREATE_TIMEOUT);
    let error = acquire_fails(&pool, CREATE_TIMEOUT, 2).await;
    assert!(
        matches!(error, PoolError::Create(WebTransportError::Tls { .. })),
        "{error:?}"
    );
    assert_eq!(server.sessions_accepted(), 0);
    endpoint_still_works::<R>(endpoint::<R>(server.certificate_hash()), &server).await;
}

async fn unresolvable_host_is_a_resolve_error<R: TestRuntime>() {
    let server = start_server();
    let endpoint = endpoint::<R>(server.certificate_hash());
    let url = Url::parse("https://no-such-host.invalid:4433/echo").expect("a URL");
    let pool = pool_to::<R>(endpoint.clone(), url, 2, CREATE_TIMEOUT);
    let error = acquire_fails(&pool, CREATE_TIMEOUT, 2).await;
    assert!(
        matches!(error, PoolError::Create(WebTransportError::Resolve { .. })),
        "{error}"
    );
    endpoint_still_works::<R>(endpoint, &server).await;
}

async fn bad_urls_and_settings_fail_at_construction<R: TestRuntime>() {
    let server = start_server();
    let endpoint = endpoint::<R>(server.certificate_hash());

    let http = Url::parse(&format!("http://{}/echo", server.local_addr())).expect("a URL");
    match SessionPool::<R>::new(endpoint.clone(), http, 2) {
        Err(WebTransportError::InvalidUrl { reason, .. }) => {
            assert!(reason.contains("https"), "{reason}");
        }
        Err(error) => panic!("not InvalidUrl: {error}"),
        Ok(_) => panic!("an http URL was taken"),
    }

    let config = client_options(server.certificate_hash())
        .build()
        .expect("a config");
    match ConnectionPool::<R>::new(config, "", 4433, "/echo", 2) {
        Err(WebTransportError::InvalidUrl { .. }) => {}
        Err(error) => panic!("not InvalidUrl: {error}"),
        Ok(_) => panic!("an empty host was taken"),
    }

    match SessionPool::<R>::new(endpoint.clone(), server.url(), 0) {
        Err(WebTransportError::Config(ConfigError::ZeroMaxSize)) => {}
        Err(error) => panic!("not Config(ZeroMaxSize): {error}"),
        Ok(_) => panic!("a max_size of 0 was taken"),
    }

    let options = ClientOptions {
        max_idle_timeout: Some(Duration::MAX),
        ..client_options(server.certificate_hash())
    };
    match client_endpoint::<R>(&options) {
        Err(WebTransportError::InvalidIdleTimeout(_)) => {}
        Err(error) => panic!("not InvalidIdleTimeout: {error}"),
        Ok(_) => panic!("an idle timeout QUIC cannot express was taken"),
    }

    endpoint_still_works::<R>(endpoint, &server).await;
}

/// wtransport 0.7.2 sometimes tears a read of its HTTP/3 control streams
/// (a `select!` drops it halfway) and closes the handshake with
/// `H3_FRAME_UNEXPECTED`, `H3_FRAME_ERROR` or `H3_EXCESSIVE_LOAD`; seen in
/// this suite on a busy machine. Such a handshake is tried once more, and only
/// once; a handshake closed with another HTTP/3 error is not retried.
async fn torn_handshakes_are_tried_once_more<R: TestRuntime>() {
    for (code, tries) in [(0x105, 2), (0x106, 2), (0x107, 2), (0x109, 1), (0x102, 1)] {
        let server = ClosingServer::start(code);
        let pool = pool_to::<R>(
            endpoint::<R>(server.hash.clone()),
            server.url.clone(),
            1,
            CREATE_TIMEOUT,
        );
        let error = failure(pool.acquire().await, "a server that always closes");
        let PoolError::Create(error) = error else {
            panic!("code {code:#x}: {error}");
        };
        assert!(
            matches!(error, WebTransportError::Handshake { .. }),
            "code {code:#x}: {error}"
        );
        assert_eq!(error.is_torn_handshake(), tries == 2, "code {code:#x}");
        assert_eq!(
            server.closed.load(Ordering::SeqCst),
            tries,
            "code {code:#x}: handshakes tried"
        );
        assert_eq!(occupancy(pool.status()), (0, 0, 0));
    }
}

async fn server_session_limit_rejects_the_next_session<R: TestRuntime>() {
    let server = EchoServer::start(EchoServerOptions {
        max_sessions: Some(1),
        ..server_options()
    })
    .expect("start the echo server");
    let pool = session_pool::<R>(&server, 2);
    let first = pool.acquire().await.expect("the first session");
    echo_on(&first, b"first").await;

    let error = failure(pool.acquire().await, "a second session");
    assert!(
        matches!(
            error,
            PoolError::Create(WebTransportError::SessionRejected { .. })
        ),
        "{error}"
    );
    assert_eq!(occupancy(pool.status()), (1, 0, 1));
    assert_eq!(server.sessions_requested(), 2);

    // The one session is reused.
    let id = first.stable_id();
    drop(first);
    let again = pool.acquire().await.expect("the pooled session");
    assert_eq!(again.stable_id(), id);

    // Once it is gone, a new one is accepted, when the back-off the refusal
    // started is over.
    let old = (*again).clone();
    again.discard().await.expect("discard closes the session");
    wait_until::<R>("the server sees the session closed", || {
        server.sessions_open() == 0
    })
    .await;
    let new = acquire_after_back_off(&pool).await;
    assert_ne!(new.stable_id(), old.stable_id());
    echo_on(&new, b"new").await;
    assert_eq!(server.sessions_accepted(), 2);
}

/// An acquire that waits out the back-off of a refusal, by the `retry_in`
/// the pool reports.
async fn acquire_after_back_off<R: TestRuntime>(pool: &Sessions<R>) -> Pooled<SessionFactory, R> {
    loop {
        match pool.acquire().await {
            Ok(session) => return session,
            Err(PoolError::Refused { retry_in }) => R::default().sleep(retry_in).await,
            Err(other) => panic!("neither a session nor the back-off: {other}"),
        }
    }
}

/// A server that answers 429: the pool's waiters fail at once, one with the
/// refusal and the others `Refused`, after one handshake rather than one
/// each; acquires in the back-off fail without a handshake (an idle session
/// is still served); a shared pool does the same. (That the pool connects
/// once the back-off is over: `server_session_limit_rejects_the_next_session`.)
async fn a_refusing_server_is_not_stormed<R: TestRuntime>() {
    let server = EchoServer::start(EchoServerOptions {
        max_sessions: Some(1),
        ..server_options()
    })
    .expect("start the echo server");
    let pool = SessionPool::<R>::builder(endpoint::<R>(server.certificate_hash()), server.url(), 8)
        .expect("a valid URL")
        .options(|o| o.max_creating(1).refusal_backoff(Duration::from_secs(60)))
        .build()
        .expect("a valid pool");
    let held = pool
        .acquire()
        .await
        .expect("the one session the server allows");
    let outcomes = join_all((0..8).map(|_| pool.acquire())).await;
    let refused = |o: &&Result<_, Error>| {
        matches!(
            o,
            Err(PoolError::Create(WebTransportError::SessionRejected { .. }))
        )
    };
    let backed_off = |o: &&Result<_, Error>| matches!(o, Err(PoolError::Refused { .. }));
    assert_eq!(outcomes.iter().filter(refused).count(), 1);
    assert_eq!(outcomes.iter().filter(backed_off).count(), 7);
    assert_eq!(
        server.sessions_requested(),
        2,
        "one handshake for eight waiters"
    );
    // In the back-off: refused at once, no handshake, the idle session still served.
    assert!(
        matches!(pool.acquire().await, Err(PoolError::Refused { retry_in }) if retry_in > Duration::ZERO)
    );
    assert_eq!(server.sessions_requested(), 2);
    assert_eq!(pool.counters().refused, 1);
    drop(held);
    let again = pool
        .acquire()
        .await
        .expect("the idle session, back-off or not");
    echo_on(&again, b"still served").await;
    drop(again);

    // The same for a shared pool: 20 borrowers of a full session.
    let shared = SharedSessionPool::<R>::builder(
        endpoint::<R>(server.certificate_hash()),
        server.url(),
        2,
        4,
    )
    .expect("a valid URL")
    .options(|o| o.max_creating(1).refusal_backoff(Duration::from_secs(60)))
    .build()
    .expect("a valid pool");
    let requested = server.sessions_requested();
    let outcomes = join_all((0..20).map(|_| shared.acquire())).await;
    assert!(
        outcomes.iter().all(Result::is_err),
        "the server allows no more"
    );
    assert_eq!(
        server.sessions_requested(),
        requested + 1,
        "one handshake for 20"
    );
    assert_eq!(checked(shared.status()).size, 0);
}

// ----- streams -----

async fn stream_is_reused_after_a_round_trip<R: TestRuntime>() {
    let (server, _sessions, _session, streams) = echo_streams::<R>(4).await;

    let mut stream = streams.acquire().await.expect("a stream");
    round_trip(&mut stream, b"one").await;
    let id = stream.id();
    assert!(stream.is_reusable());
    streams.release(stream).await.expect("given back");
    assert_eq!(occupancy(streams.status()), (1, 1, 0));
    assert_eq!(server.streams_accepted(), 1);

    for message in [&b"two"[..], b"three", b"four"] {
        let mut stream = streams.acquire().await.expect("the pooled stream");
        assert_eq!(stream.id(), id, "the same stream");
        round_trip(&mut stream, message).await;
    }
    assert_eq!(server.streams_accepted(), 1, "no new stream was opened");
    assert_eq!(streams.counters().reused, 3);
}

async fn spent_streams_are_not_pooled_again<R: TestRuntime>() {
    let (server, _sessions, _session, streams) = echo_streams::<R>(4).await;
    let mut seen = HashSet::new();

    // Finished by its borrower.
    let mut stream = streams.acquire().await.expect("a stream");
    round_trip(&mut stream, b"finish").await;
    assert!(seen.insert(stream.id()));
    stream.finish().await.expect("finish");
    assert!(!stream.is_reusable());
    drop(stream);
    assert_eq!(
        occupancy(streams.status()),
        (0, 0, 0),
        "a finished stream left"
    );

    // Reset by its borrower.
    let mut stream = streams.acquire().await.expect("a stream");
    assert!(seen.insert(stream.id()), "the finished stream came back");
    round_trip(&mut stream, b"reset").await;
    stream.reset(VarInt::from_u32(1));
    assert!(!stream.is_reusable());
    streams.release(stream).await.expect("given back");
    assert_eq!(
        occupancy(streams.status()),
        (0, 0, 0),
        "a reset stream left"
    );

    // Stopped by its borrower (stop takes the stream: it must leave the pool first).
    let mut stream = streams.acquire().await.expect("a stream");
    assert!(seen.insert(stream.id()), "the reset stream came back");
    round_trip(&mut stream, b"stop").await;
    stream.detach().stop(VarInt::from_u32(2));
    assert_eq!(
        occupancy(streams.status()),
        (0, 0, 0),
        "a stopped stream left"
    );

    // Closed through futures' AsyncWrite.
    let mut stream = streams.acquire().await.expect("a stream");
    assert!(seen.insert(stream.id()), "the stopped stream came back");
    round_trip(&mut stream, b"shutdown").await;
    futures::AsyncWriteExt::close(&mut *stream)
        .await
        .expect("close the sending half");
    assert!(!stream.is_reusable());
    drop(stream);

    let mut stream = streams.acquire().await.expect("a stream");
    assert!(seen.insert(stream.id()), "the shut-down stream came back");
    round_trip(&mut stream, b"fresh").await;
    assert_eq!(server.streams_accepted(), 5);
}

async fn streams_the_peer_ended_are_not_reused<R: TestRuntime>() {
    let server = QuirkyServer::start();
    let (_sessions, _session, streams) =
        streams_to::<R>(server.url.clone(), server.hash.clone(), 4).await;
    let mut rest = [0; 16];

    // An ordinary stream is reused, as a control.
    let mut stream = streams.acquire().await.expect("a stream");
    round_trip(&mut stream, b"EEEE").await;
    let echo_id = stream.id();
    drop(stream);
    let mut stream = streams.acquire().await.expect("a stream");
    assert_eq!(stream.id(), echo_id, "the ordinary stream is reused");
    round_trip(&mut stream, b"EEEE").await;

    // The peer finished its half: the read that sees the end spends the stream.
    let mut other = streams.acquire().await.expect("a second stream");
    let finished_id = other.id();
    drop(stream); // the ordinary stream idles meanwhile
    round_trip(&mut other, b"FFFF").await;
    assert!(other.is_reusable(), "the end is not seen yet");
    assert_eq!(other.read(&mut rest).await.expect("the end"), None);
    assert!(!other.is_reusable());
    drop(other);
    assert_eq!(
        occupancy(streams.status()),
        (1, 1, 0),
        "the finished stream left"
    );

    // The peer reset its half: the failed read spends the stream.
    let mut stream = streams.acquire().await.expect("the ordinary stream");
    assert_eq!(stream.id(), echo_id);
    stream.write_all(b"RRRR").await.expect("write");
    assert!(
        stream.read_exact(&mut rest[..4]).await.is_err(),
        "the peer reset"
    );
    assert!(!stream.is_reusable());
    drop(stream);
    assert_eq!(
        occupancy(streams.status()),
        (0, 0, 0),
        "the reset stream left"
    );

    // The peer stopped our half: the failed write spends the stream.
    let mut stream = streams.acquire().await.expect("a stream");
    let stopped_id = stream.id();
    assert!(stopped_id != echo_id && stopped_id != finished_id);
    stream.write_all(b"SSSS").await.expect("write");
    let started = Instant::now();
    while stream.write_all(b"xxxx").await.is_ok() {
        assert!(
            started.elapsed() < PATIENCE,
            "the peer's STOP_SENDING never arrived"
        );
        sleep::<R>(5).await;
    }
    assert!(!stream.is_reusable());
    drop(stream);

    let stream = streams.acquire().await.expect("a stream");
    assert!(
        ![echo_id, finished_id, stopped_id].contains(&stream.id()),
        "a spent stream came back"
    );
}

/// Regression: a `Stream` whose `write_all` was cancelled half-way (its
/// future dropped, as a timeout does) still counted as reusable, so it went
/// back to the pool with part of a message written, to run into the next
/// borrower's. A call that has not completed now leaves the stream unusable.
async fn stream_cancelled_mid_write_is_not_pooled_again<R: TestRuntime>() {
    let (_server, _sessions, _session, streams) = echo_streams::<R>(2).await;
    let mut stream = streams.acquire().await.expect("a stream");
    let id = stream.id();
    // Larger than the flow-control windows of both directions: nobody reads
    // the echo, so the write stalls.
    let message = vec![7; 8 << 20];
    let finished = within::<R, _>(Duration::from_millis(300), stream.write_all(&message)).await;
    assert!(
        finished.is_none(),
        "the write finished: make the message larger"
    );
    drop(stream);

    // Handed out again, it would carry the rest of the old echo before any
    // reply to the next message, or stall the next write for good.
    let next = streams.acquire().await.expect("a stream");
    assert_ne!(
        next.id(),
        id,
        "a stream torn by a cancelled write was handed out again"
    );
}

async fn stream_pool_empties_when_the_session_dies<R: TestRuntime>() {
    let server = start_server();
    let sessions = session_pool::<R>(&server, 1);

    // Closed by the server.
    let session = sessions.acquire().await.expect("a session");
    let streams = StreamPool::<R>::new((*session).clone(), 4).expect("a stream pool");
    let mut held = Vec::new();
    for n in 0..3u8 {
        let mut stream = streams.acquire().await.expect("a stream");
        round_trip(&mut stream, &[n; 8]).await;
        held.push(stream);
    }
    let in_use = held.pop().expect("three streams");
    drop(held);
    assert_eq!(occupancy(streams.status()), (3, 2, 1));
    server.close_sessions();
    wait_until::<R>("the idle streams are dropped", || {
        checked(streams.status()).idle == 0
    })
    .await;
    assert_eq!(occupancy(streams.status()), (1, 0, 1));
    drop(in_use);
    assert_eq!(
        occupancy(streams.status()),
        (0, 0, 0),
        "a stream of a dead session left"
    );
    let error = failure(streams.acquire().await, "a stream on a closed session");
    assert!(
        matches!(
            error,
            PoolError::Create(WebTransportError::SessionClosed(_))
        ),
        "{error}"
    );
    assert_eq!(occupancy(streams.status()), (0, 0, 0));
    drop(session); // dead: the session pool closes it

    // Closed here.
    let session = sessions.acquire().await.expect("a new session");
    let streams = StreamPool::<R>::new((*session).clone(), 4).expect("a stream pool");
    let mut stream = streams.acquire().await.expect("a stream");
    round_trip(&mut stream, b"hello").await;
    drop(stream);
    assert_eq!(occupancy(streams.status()), (1, 1, 0));
    session.close(VarInt::from_u32(0), b"done");
    wait_until::<R>("the idle stream is dropped", || {
        checked(streams.status()).idle == 0
    })
    .await;
    let error = failure(streams.acquire().await, "a stream on a closed session");
    assert!(
        matches!(
            error,
            PoolError::Create(WebTransportError::SessionClosed(_))
        ),
        "{error}"
    );
    assert_eq!(occupancy(streams.status()), (0, 0, 0));
}

/// Regression: a `write_all` cancelled halfway set a flag that the next
/// completed call (a `read`) cleared, so the half-written stream went back
/// to the pool. A tear is sticky now: no later call, and no
/// `mark_complete`, makes the stream reusable again, and it leaves reset.
async fn torn_stream_stays_torn_after_later_calls<R: TestRuntime>() {
    let (server, _sessions, _session, streams) = echo_streams::<R>(2).await;
    let mut stream = streams.acquire().await.expect("a stream");
    // Larger than the flow-control windows: one poll writes part of it.
    let message = vec![7; 8 << 20];
    assert!(
        stream.write_all(&message).now_or_never().is_none(),
        "the write finished in one poll: make the message larger"
    );
    // The borrower carries on: a read that succeeds, and a mark.
    let mut some = [0; 64];
    let n = stream
        .read(&mut some)
        .await
        .expect("a read")
        .expect("the echo");
    assert!(some[..n].iter().all(|&b| b == 7));
    let _next = replace_torn(&streams, stream).await;
    wait_until::<R>("the server sees the torn stream reset", || {
        server.stream_ends().reset == [ABANDONED_STREAM_CODE]
    })
    .await;
    assert_eq!(
        server.stream_ends().finished,
        0,
        "a torn stream was finished"
    );
}

/// Regression: borrower 1 wrote "AAAA" and was cancelled (a timeout) before
/// its read; the stream looked clean and went back, and borrower 2 wrote
/// "BBBB" and read "AAAA": one user's data in another's hands. A stream whose
/// borrower did not mark its exchange complete is reset now, never reused.
async fn next_borrower_never_reads_the_previous_reply<R: TestRuntime>() {
    let (_server, _sessions, _session, streams) = echo_streams::<R>(1).await;
    for round in 0..20u8 {
        let first = [b'A' + round % 8; 4];
        let second = [b'a' + round % 8; 4];
        let mut stream = streams.acquire().await.expect("borrower 1's stream");
        stream.write_all(&first).await.expect("write");
        // Cancelled between its write and its read (even rounds), or with
        // its read started (odd rounds).
        let mut reply = [0; 4];
        if round % 2 == 1
            && let Some(read) = stream.read_exact(&mut reply).now_or_never()
        {
            // The echo was quicker than the cancel: it is borrower 1's own.
            read.expect("read");
            assert_eq!(reply, first);
        }
        drop(stream);

        let mut stream = streams.acquire().await.expect("borrower 2's stream");
        stream.write_all(&second).await.expect("write");
        stream.read_exact(&mut reply).await.expect("read");
        assert_eq!(
            reply, second,
            "round {round}: borrower 2 read another's reply"
        );
        stream.mark_complete();
    }
    // The first stream, and one for each of the 20 cancelled; borrower 2's
    // clean stream served the next round's borrower 1.
    let counters = streams.counters();
    assert_eq!(counters.created, 21, "every cancelled stream was replaced");
    assert_eq!(counters.reused, 19, "clean streams were reused");
}

/// Regression: torn and discarded streams ended with a clean FIN (the
/// factory finished them, and quinn finishes a dropped sending half), so the
/// peer saw a cut message followed by a normal end. Now an unclean stream
/// leaves with a reset (`ABANDONED_STREAM_CODE`) however it leaves, and only
/// a clean stream is finished.
async fn unclean_streams_are_reset_clean_ones_finished<R: TestRuntime>() {
    let (server, _sessions, _session, streams) = echo_streams::<R>(4).await;
    let ends = |finished, resets| (finished, vec![ABANDONED_STREAM_CODE; resets]);
    let seen = || {
        let ends = server.stream_ends();
        (ends.finished, ends.reset)
    };
    // A stream reset before its first bytes left never reaches the server's
    // echo (wtransport cannot tell which session it belonged to): each case
    // waits until the server took its stream up.
    let server = &server;
    let taken_up = |n| move || server.streams_accepted() == n;

    // Dropped mid-exchange (an early `?`, a panic, a cancelled task).
    let mut stream = streams.acquire().await.expect("a stream");
    stream.write_all(b"half").await.expect("write");
    wait_until::<R>("the server takes the stream up", taken_up(1)).await;
    drop(stream);
    wait_until::<R>("a dropped stream is reset", || seen() == ends(0, 1)).await;

    // Discarded mid-exchange.
    let mut stream = streams.acquire().await.expect("a stream");
    stream.write_all(b"half").await.expect("write");
    wait_until::<R>("the server takes the stream up", taken_up(2)).await;
    stream.discard().await.expect("discarded");
    wait_until::<R>("a discarded stream is reset", || seen() == ends(0, 2)).await;

    // Detached and dropped by the user mid-exchange.
    let mut stream = streams.acquire().await.expect("a stream");
    stream.write_all(b"half").await.expect("write");
    wait_until::<R>("the server takes the stream up", taken_up(3)).await;
    drop(stream.detach());
    wait_until::<R>("a detached stream is reset", || seen() == ends(0, 3)).await;

    // Finished by its borrower: it ends cleanly, though it leaves the pool.
    let mut stream = streams.acquire().await.expect("a stream");
    round_trip(&mut stream, b"done").await;
    // futures' `close` finishes without waiting for the acknowledgement.
    futures::AsyncWriteExt::close(&mut *stream)
        .await
        .expect("finish");
    drop(stream);
    wait_until::<R>("a finished stream stays finished", || seen() == ends(1, 3)).await;

    // Clean, idle streams are finished when the pool closes.
    let mut held = Vec::new();
    for message in [b"one", b"two"] {
        let mut stream = streams.acquire().await.expect("a stream");
        round_trip(&mut stream, message).await;
        held.push(stream);
    }
    drop(held);
    assert_eq!(streams.status().idle, 2);
    streams.close().await.expect("closed");
    wait_until::<R>("clean streams are finished", || seen() == ends(3, 3)).await;
}

/// Regression (review): a `write_all` or `read_exact` of the tokio or futures
/// I/O traits, dropped halfway, did not tear the stream (only the async
/// methods did), so after a mark the next borrower read the old bytes. A
/// poll-based call whose last poll was pending, found so at the mark, tears
/// the stream now.
async fn poll_based_calls_abandoned_halfway_tear_the_stream<R: TestRuntime>() {
    let (_server, _sessions, _session, streams) = echo_streams::<R>(1).await;

    // tokio's `write_all`, dropped after one poll.
    let mut stream = streams.acquire().await.expect("a stream");
    let large = vec![b'A'; 8 << 20];
    assert!(
        tokio::io::AsyncWriteExt::write_all(&mut *stream, &large)
            .now_or_never()
            .is_none(),
        "the write finished in one poll: make the message larger"
    );
    let mut stream = replace_torn(&streams, stream).await;
    round_trip(&mut stream, b"BBBB").await;
    drop(stream);

    // futures' `read_exact`, dropped by a timeout after a partial fill: only
    // 8 of the 16 bytes it waits for ever come back.
    let mut stream = streams.acquire().await.expect("the clean stream");
    stream.write_all(&[b'C'; 8]).await.expect("write");
    let mut sixteen = [0; 16];
    let read = futures::AsyncReadExt::read_exact(&mut *stream, &mut sixteen);
    assert!(
        within::<R, _>(Duration::from_millis(200), read)
            .await
            .is_none()
    );
    let mut stream = replace_torn(&streams, stream).await;
    round_trip(&mut stream, b"DDDD").await;
}

/// Regression (review): a torn stream that its borrower then finished ended
/// with a clean FIN, a cut message followed by a normal end. `finish` (and
/// the traits' shutdown or close) resets a torn stream instead, and fails.
async fn a_torn_stream_is_reset_not_finished<R: TestRuntime>() {
    let (server, _sessions, _session, streams) = echo_streams::<R>(2).await;
    let large = vec![7; 8 << 20];
    for (n, close) in [(1, false), (2, true)] {
        let mut stream = streams.acquire().await.expect("a stream");
        assert!(stream.write_all(&large).now_or_never().is_none());
        // A stream reset before its first bytes left never reaches the echo.
        wait_until::<R>("the server takes the stream up", || {
            server.streams_accepted() == n
        })
        .await;
        if close {
            let closed = futures::AsyncWriteExt::close(&mut *stream).await;
            assert!(closed.is_err(), "a torn stream was closed cleanly");
        } else {
            assert!(stream.finish().await.is_err(), "a torn stream was finished");
        }
        drop(stream);
    }
    wait_until::<R>("both torn streams are reset", || {
        server.stream_ends()
            == StreamEnds {
                finished: 0,
                reset: vec![ABANDONED_STREAM_CODE; 2],
            }
    })
    .await;
}

/// A borrower that marks its exchange complete too early (a reply still on
/// its way) leaves a stream that the pool finds unread bytes on, at return,
/// at checkout or in the idle check: it leaves reset, never handed out.
async fn unread_bytes_keep_a_stream_from_reuse<R: TestRuntime>() {
    let (server, _sessions, _session, streams) = echo_streams::<R>(1).await;
    let mut stream = streams.acquire().await.expect("a stream");
    stream.write_all(b"xxxx").await.expect("write");
    stream.mark_complete(); // too early: the echo is on its way
    drop(stream);
    wait_until::<R>("the stream with the unread echo leaves", || {
        checked(streams.status()).idle == 0
    })
    .await;
    wait_until::<R>("it is reset", || {
        server.stream_ends().reset == [ABANDONED_STREAM_CODE]
    })
    .await;
    let mut stream = streams.acquire().await.expect("a new stream");
    round_trip(&mut stream, b"yyyy").await;
}

/// Suspected and confirmed: closing a StreamPool awaited each idle stream's
/// `finish()` acknowledgement, so with a vanished peer `close()` waited out
/// the QUIC idle timeout. It finishes without waiting now: one poll closes.
async fn stream_pool_close_never_waits_on_the_peer<R: TestRuntime>() {
    let (server, _sessions, _session, streams) = echo_streams::<R>(4).await;
    let mut stream = streams.acquire().await.expect("a stream");
    round_trip(&mut stream, b"idle").await;
    drop(stream);
    server.vanish();
    let closed = streams.close().now_or_never();
    assert!(
        matches!(closed, Some(Ok(()))),
        "close waits on a vanished peer"
    );
    assert_eq!(occupancy(streams.status()), (0, 0, 0));
}

/// Suspected and confirmed: a peer that finished or reset its half of an idle
/// stream was noticed only by the next borrower's I/O. The pool now looks
/// (without waiting) at return, at checkout and in the idle check, so such a
/// stream leaves the idle list by itself.
async fn streams_the_peer_ends_while_idle_leave_the_pool<R: TestRuntime>() {
    let server = QuirkyServer::start();
    let (_sessions, _session, streams) =
        streams_to::<R>(server.url.clone(), server.hash.clone(), 1).await;
    let mut ended = HashSet::new();
    // `F`: an echo and then the peer's finish. `R`: a one-way message (no
    // reply is due, so the exchange is complete once written), after which
    // the peer resets its half. (A peer's STOP_SENDING on our half is seen by
    // the next write: `streams_the_peer_ended_are_not_reused`.)
    for (message, how) in [(b"FFFF", "finished"), (b"RRRR", "reset")] {
        let mut stream = streams.acquire().await.expect("a stream");
        assert!(ended.insert(stream.id()), "an ended stream came back");
        if how == "finished" {
            round_trip(&mut stream, message).await;
        } else {
            stream.write_all(message).await.expect("write");
            stream.mark_complete();
        }
        drop(stream);
        wait_until::<R>(&format!("the stream the peer {how} leaves"), || {
            checked(streams.status()).idle == 0
        })
        .await;
    }
}

// ----- shared sessions -----

type SharedSessions<R> = SharedSessionPool<R>;

/// A shared pool of `max_sessions` x `max_leases` to the echo server.
fn shared_pool<R: TestRuntime>(
    server: &EchoServer,
    max_sessions: usize,
    max_leases: usize,
) -> SharedSessions<R> {
    SharedSessionPool::<R>::builder(
        endpoint::<R>(server.certificate_hash()),
        server.url(),
        max_sessions,
        max_leases,
    )
    .expect("a valid URL")
    .options(|o| o.create_timeout(CREATE_TIMEOUT))
    .build()
    .expect("a valid pool")
}

/// One request on a stream of the shared pool: `message` out, its echo back.
async fn shared_request<R: TestRuntime>(pool: &SharedSessions<R>, message: &[u8]) -> u64 {
    let stream = pool.open_bi().await.expect("a stream on a shared session");
    let (mut send, mut recv, lease) = stream.into_parts();
    echo_over(&mut send, &mut recv, message).await;
    lease.stable_id() as u64
}

/// 1,000 borrowers, each one request on a stream of its own, on at most 4
/// sessions of 16: no session ever has more than 16 borrowers, the pool
/// never more than 4 sessions, no lease is lost, and only 4 handshakes.
async fn shared_sessions_carry_a_thousand_borrowers<R: TestRuntime>() {
    let server = start_server();
    let pool = shared_pool::<R>(&server, 4, 16);
    let per_session = std::sync::Mutex::new(std::collections::HashMap::<usize, usize>::new());
    let most = AtomicUsize::new(0);
    let borrower = |n: usize| {
        let (pool, per_session, most) = (&pool, &per_session, &most);
        async move {
            let lease = pool.acquire().await.expect("a lease");
            let id = lease.stable_id();
            {
                let mut counts = per_session.lock().unwrap();
                let count = counts.entry(id).or_default();
                *count += 1;
                most.fetch_max(*count, Ordering::SeqCst);
            }
            echo_on(&lease, format!("borrower {n}").as_bytes()).await;
            *per_session.lock().unwrap().get_mut(&id).unwrap() -= 1;
        }
    };
    let mut most_sessions = 0;
    while_sampling::<R, _>(join_all((0..1000).map(borrower)), || {
        let status = checked(pool.status());
        assert!(status.leases <= 4 * 16, "{status:?}");
        most_sessions = most_sessions.max(status.size);
    })
    .await;
    let most = most.load(Ordering::SeqCst);
    assert!(most <= 16, "{most} borrowers on one session");
    assert!(most_sessions <= 4);
    let status = checked(pool.status());
    assert_eq!((status.leases, status.in_use, status.waiting), (0, 0, 0));
    assert!(
        server.sessions_accepted() <= 4,
        "{} handshakes",
        server.sessions_accepted()
    );
    assert_eq!(pool.counters().checkouts, 1000);
    // The same through `open_bi`, each stream holding its session's lease.
    let messages: Vec<_> = (0..200).map(|n| format!("request {n}")).collect();
    let ids = join_all(messages.iter().map(|m| shared_request(&pool, m.as_bytes()))).await;
    assert!(ids.iter().collect::<HashSet<_>>().len() <= 4);
    assert_eq!(checked(pool.status()).leases, 0);
}

/// The server closes the one session while 16 borrowers hold it: it takes
/// no new lease, the next borrowers go to a new session, and its slot is
/// freed when the last of the 16 leases comes back.
async fn a_shared_session_the_server_closes_takes_no_new_lease<R: TestRuntime>() {
    let server = start_server();
    let pool = shared_pool::<R>(&server, 2, 16);
    let leases = join_all((0..16).map(|_| pool.acquire())).await;
    let leases: Vec<_> = leases.into_iter().map(|l| l.expect("a lease")).collect();
    let old = leases[0].stable_id();
    assert!(
        leases.iter().all(|l| l.stable_id() == old),
        "one session for 16"
    );
    let status = checked(pool.status());
    assert_eq!((status.size, status.in_use, status.leases), (1, 1, 16));
    assert_eq!(server.sessions_accepted(), 1);

    server.close_sessions();
    within::<R, _>(PATIENCE, leases[0].closed())
        .await
        .expect("the client hears that the server closed the session");
    // The next borrower goes to a new session; the dead one keeps its slot
    // while its leases are out.
    let id = shared_request(&pool, b"after the close").await;
    assert_ne!(id, old as u64, "a lease on the closed session");
    let status = checked(pool.status());
    assert_eq!(
        (status.size, status.idle, status.in_use, status.leases),
        (2, 1, 1, 16)
    );
    drop(leases);
    let status = checked(pool.status());
    assert_eq!((status.size, status.idle, status.leases), (1, 1, 0));
    wait_until::<R>("the dead session is closed", || pool.counters().closed == 1).await;
}

/// A shared acquire dropped at each of its await points loses nothing:
/// queued behind full sessions, while its session is being made, and
/// after a lease was handed to it unseen.
async fn shared_acquire_cancelled_anywhere_loses_nothing<R: TestRuntime>() {
    let server = start_server();
    let pool = shared_pool::<R>(&server, 1, 2);
    // While the session is being made: the creation goes on, the session idles.
    {
        let mut acquire = pin!(pool.acquire());
        assert!(futures::poll!(acquire.as_mut()).is_pending());
        assert_eq!(checked(pool.status()).creating, 1);
    }
    wait_until::<R>("the session made for nobody idles", || {
        checked(pool.status()).idle == 1
    })
    .await;
    let a = pool.acquire().await.expect("a lease");
    let b = pool
        .acquire()
        .await
        .expect("a second lease on the same session");
    assert_eq!(a.stable_id(), b.stable_id());
    // Queued behind the full session, then dropped.
    {
        let mut acquire = pin!(pool.acquire());
        assert!(futures::poll!(acquire.as_mut()).is_pending());
        assert_eq!(checked(pool.status()).waiting, 1);
    }
    assert_eq!(checked(pool.status()).waiting, 0);
    // Served a lease given back, then dropped before it looked: the lease
    // goes to the next waiter.
    let mut first = Box::pin(pool.acquire());
    assert!(futures::poll!(first.as_mut()).is_pending());
    let mut second = Box::pin(pool.acquire());
    assert!(futures::poll!(second.as_mut()).is_pending());
    drop(a);
    assert_eq!(
        checked(pool.status()).leases,
        2,
        "handed to the first waiter"
    );
    drop(first);
    let second = second.await.expect("the lease the first waiter left");
    drop((b, second));
    let status = checked(pool.status());
    assert_eq!(
        (status.size, status.idle, status.leases, status.waiting),
        (1, 1, 0, 0)
    );
    // Through `open_bi` as well: dropped while queued.
    let held = (pool.acquire().await.unwrap(), pool.acquire().await.unwrap());
    {
        let mut open = pin!(pool.open_bi());
        assert!(futures::poll!(open.as_mut()).is_pending());
    }
    drop(held);
    assert_eq!(checked(pool.status()).leases, 0);
    shared_request(&pool, b"still serving").await;
}

// ----- a fleet of servers -----

fn fleet_of<R: TestRuntime>(hash: Sha256Digest, settings: FleetSettings) -> Fleet<R> {
    Fleet::<R>::new(endpoint::<R>(hash), settings).expect("a valid fleet")
}

/// 8 servers x 16 tasks, each task 4 requests on streams of `open_bi`,
/// under a cap of 16 sessions (8 servers would take 32 at 4 each): no
/// request fails, the cap is never exceeded (sampled), every server is
/// served.
async fn a_fleet_serves_eight_servers_under_one_cap<R: TestRuntime>() {
    let identity = Arc::new(Identity::self_signed(["localhost", "127.0.0.1"]).unwrap());
    let servers: Vec<_> = (0..8)
        .map(|_| {
            EchoServer::start(EchoServerOptions {
                identity: Some(identity.clone()),
                ..server_options()
            })
            .expect("start an echo server")
        })
        .collect();
    let hash = servers[0].certificate_hash();
    let settings = FleetSettings {
        max_sessions: 16,
        max_sessions_per_server: 4,
        max_leases: 4,
        ..FleetSettings::default()
    };
    let fleet = fleet_of::<R>(hash, settings);
    let urls: Vec<_> = servers.iter().map(EchoServer::url).collect();
    let task = |n: usize| {
        let (fleet, url) = (&fleet, &urls[n % 8]);
        async move {
            for i in 0..4 {
                let stream = fleet.open_bi(url).await.expect("a stream");
                let (mut send, mut recv, _lease) = stream.into_parts();
                echo_over(&mut send, &mut recv, format!("{n}/{i}").as_bytes()).await;
            }
        }
    };
    // Places under the cap (sessions open and handshakes under way) are
    // counted under one lock: exact whenever sampled. (Adding up the
    // servers' pools is not: a session can leave one and its place go to
    // another between two reads.)
    let mut most_open = 0;
    while_sampling::<R, _>(join_all((0..128).map(task)), || {
        let open = fleet.status().open;
        assert!(open <= 16, "{open} sessions open");
        most_open = most_open.max(open);
    })
    .await;
    let status = fleet.status();
    assert_eq!(status.servers.len(), 8);
    for server in &servers {
        assert_eq!(
            server.streams_accepted(),
            64,
            "every request of every server"
        );
    }
    assert!(most_open <= 16);
    assert_eq!(status.total().leases, 0);
    // Creations started for waiters that were served meanwhile by leases
    // coming back wait for a place without closing anyone's session (and
    // end at their create timeout). Once no handshake holds a place and no
    // close is on its way, every place is a session some pool holds, and
    // every session a server accepted is held or was closed.
    let held = |status: &wtpool_webtransport::FleetStatus| {
        let total = status.total();
        total.idle + total.in_use
    };
    wait_until::<R>("the places are the sessions held", || {
        let status = fleet.status();
        status.open == held(&status)
    })
    .await;
    let status = fleet.status();
    let closed: u64 = status.servers.iter().map(|s| s.counters.closed).sum();
    let accepted: usize = servers.iter().map(EchoServer::sessions_accepted).sum();
    assert_eq!(accepted as u64 - closed, held(&status) as u64);
}

/// A cap of one session: a second server's session closes the first's
/// idle one. The same URL from another client endpoint (other pins, other
/// settings) is a server of its own. A session unused for `forget_after` is
/// closed, and its server then forgotten.
async fn a_fleet_evicts_and_forgets<R: TestRuntime>() {
    let server = start_server();
    let settings = FleetSettings {
        max_sessions: 1,
        forget_after: Duration::from_secs(600),
        ..FleetSettings::default()
    };
    let fleet = fleet_of::<R>(server.certificate_hash(), settings);
    let first = fleet.acquire(&server.url()).await.expect("a session");
    echo_on(&first, b"first").await;
    drop(first);
    let pool = fleet.pool(&server.url()).expect("its pool");
    assert_eq!(checked(pool.status()).idle, 1);

    let other_client = endpoint::<R>(server.certificate_hash());
    let other = fleet
        .pool_from(&other_client, &server.url())
        .expect("a pool");
    let second = other
        .acquire()
        .await
        .expect("a session from the other endpoint");
    echo_on(&second, b"second").await;
    assert_eq!(checked(pool.status()).size, 0, "closed for the cap");
    assert_eq!(pool.counters().closed, 1);
    let status = fleet.status();
    assert_eq!((status.open, status.servers.len()), (1, 2));
    assert_eq!(server.sessions_accepted(), 2);
    drop(second);

    // Forgetting, in a fleet that forgets fast: touching only its own
    // endpoint's server, the other one's session is closed once it idled
    // for `forget_after`, and the server then forgotten.
    let settings = FleetSettings {
        forget_after: Duration::from_millis(100),
        ..FleetSettings::default()
    };
    let fleet = fleet_of::<R>(server.certificate_hash(), settings);
    let other = fleet
        .pool_from(&other_client, &server.url())
        .expect("a pool");
    drop(other.acquire().await.expect("a session"));
    wait_until::<R>("the unused server is forgotten", || {
        let _ = fleet.pool(&server.url());
        fleet.status().servers.len() == 1
    })
    .await;
    wait_until::<R>("its session is closed", || fleet.status().open == 0).await;
    assert_eq!(other.counters().closed, 1);
}

/// The least recently used other server gives up its idle session; the
/// places of sessions that leave a pool unclosed (a dropped pool, a
/// `discard` future dropped unpolled) come back; a pool closed through its
/// handle is made anew; a zero `forget_after` is refused.
async fn a_fleet_keeps_its_places<R: TestRuntime>() {
    let server = start_server();
    let settings = FleetSettings {
        max_sessions: 2,
        forget_after: Duration::from_secs(600),
        ..FleetSettings::default()
    };
    let fleet = fleet_of::<R>(server.certificate_hash(), settings);
    // Three servers: one URL from three endpoints. a, then b, used last.
    let clients: Vec<_> = (0..3)
        .map(|_| endpoint::<R>(server.certificate_hash()))
        .collect();
    let pools: Vec<_> = (clients.iter())
        .map(|c| fleet.pool_from(c, &server.url()).expect("a pool"))
        .collect();
    for pool in &pools[..2] {
        drop(pool.acquire().await.expect("a session"));
        let _ = fleet.pool_from(&clients[1], &server.url()); // b used last
    }
    let c = pools[2].acquire().await.expect("a session for c");
    assert_eq!(
        (pools[0].counters().closed, pools[1].counters().closed),
        (1, 0),
        "a, the least recently used, gave up its session"
    );
    drop(c);

    // A discard whose future is dropped unpolled still closes its session.
    let lease = pools[2].acquire().await.expect("c's session");
    drop(lease.discard());
    wait_until::<R>("the discarded session's place comes back", || {
        fleet.status().open == 1
    })
    .await;
    fleet.close().await;
    wait_until::<R>("every place comes back", || fleet.status().open == 0).await;

    // A pool the fleet forgot, used again through a handle kept meanwhile,
    // then dropped with an idle session: its place comes back all the same.
    let settings = FleetSettings {
        forget_after: Duration::from_millis(100),
        ..FleetSettings::default()
    };
    let fast = fleet_of::<R>(server.certificate_hash(), settings);
    let kept = fast.pool(&server.url()).expect("a pool");
    wait_until::<R>("the kept pool's server is forgotten", || {
        let _ = fast.pool_from(&clients[0], &server.url());
        fast.status().servers.len() == 1
    })
    .await;
    drop(kept.acquire().await.expect("a session"));
    assert_eq!(fast.status().open, 1, "counted, though forgotten");
    drop(kept);
    wait_until::<R>("its place comes back", || fast.status().open == 0).await;

    // Closed through a handle, a server's pool is made anew.
    let fleet = fleet_of::<R>(server.certificate_hash(), FleetSettings::default());
    fleet.pool(&server.url()).unwrap().close().await.unwrap();
    let again = fleet
        .acquire(&server.url())
        .await
        .expect("a new pool's session");
    echo_on(&again, b"again").await;

    let zero = FleetSettings {
        forget_after: Duration::ZERO,
        ..FleetSettings::default()
    };
    let refused = Fleet::<R>::new(endpoint::<R>(server.certificate_hash()), zero);
    assert!(matches!(
        refused,
        Err(WebTransportError::Config(ConfigError::ZeroDuration(
            "forget_after"
        )))
    ));
}

/// A creation started for a borrower who was served meanwhile by a lease
/// coming back waits for a place without closing another server's idle
/// session, and ends at its create timeout.
async fn an_unneeded_creation_closes_nobodys_session<R: TestRuntime>() {
    let server = start_server();
    let settings = FleetSettings {
        max_sessions: 2,
        max_leases: 1,
        forget_after: Duration::from_secs(600),
        ..FleetSettings::default()
    };
    let fleet = Fleet::<R>::with_options(endpoint::<R>(server.certificate_hash()), settings, |o| {
        o.create_timeout(Duration::from_millis(300))
    })
    .expect("a valid fleet");
    let other = endpoint::<R>(server.certificate_hash());
    let a = fleet.pool(&server.url()).expect("a's pool");
    let b = fleet.pool_from(&other, &server.url()).expect("b's pool");
    let (a1, b1) = (a.acquire().await.unwrap(), b.acquire().await.unwrap());
    // a's second borrower waits: a new session for it waits for a place.
    let mut second = Box::pin(a.acquire());
    assert!(futures::poll!(second.as_mut()).is_pending());
    wait_until::<R>("a's creation starts", || a.status().creating == 1).await;
    drop(a1);
    let second = second.await.expect("served by the lease given back");
    // b's session goes idle: the creation nobody needs must leave it alone.
    drop(b1);
    wait_until::<R>("the unneeded creation ends", || a.status().creating == 0).await;
    assert_eq!(b.counters().closed, 0, "b's idle session was closed");
    assert_eq!(checked(b.status()).idle, 1);
    drop(second);
}

// ----- the tests, on both runtimes -----

scenarios!(
    a_fleet_serves_eight_servers_under_one_cap,
    a_fleet_evicts_and_forgets,
    a_fleet_keeps_its_places,
    an_unneeded_creation_closes_nobodys_session,
    shared_sessions_carry_a_thousand_borrowers,
    a_shared_session_the_server_closes_takes_no_new_lease,
    shared_acquire_cancelled_anywhere_loses_nothing,
    session_pool_reuses_the_session,
    connection_pool_reuses_the_connection,
    capacity_is_kept_and_waiters_are_served,
    close_fails_waiters_and_closes_sessions,
    sessions_closed_by_the_server_are_evicted,
    dead_idle_session_is_replaced_for_min_idle,
    pool_recovers_when_the_server_comes_back,
    server_killed_and_restarted_under_load,
    server_that_stops_accepting_times_out_cleanly,
    vanished_peer_is_noticed_within_the_idle_timeout,
    cold_burst_respects_the_creation_cap,
    unreachable_server_times_out_or_is_unreachable,
    wrong_path_is_rejected,
    a_wrong_pin_is_told_from_an_unknown_certificate,
    unresolvable_host_is_a_resolve_error,
    bad_urls_and_settings_fail_at_construction,
    server_session_limit_rejects_the_next_session,
    a_refusing_server_is_not_stormed,
    stream_is_reused_after_a_round_trip,
    spent_streams_are_not_pooled_again,
    streams_the_peer_ended_are_not_reused,
    stream_cancelled_mid_write_is_not_pooled_again,
    stream_pool_empties_when_the_session_dies,
    torn_stream_stays_torn_after_later_calls,
    next_borrower_never_reads_the_previous_reply,
    unclean_streams_are_reset_clean_ones_finished,
    stream_pool_close_never_waits_on_the_peer,
    streams_the_peer_ends_while_idle_leave_the_pool,
    torn_handshakes_are_tried_once_more,
    poll_based_calls_abandoned_halfway_tear_the_stream,
    a_torn_stream_is_reset_not_finished,
    unread_bytes_keep_a_stream_from_reuse,
);
