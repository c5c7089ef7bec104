//! Bad input across the public API: zero and huge sizes, zero and huge
//! durations, resize to 0, an object released to the wrong pool, URLs that
//! are not https or name no usable host. Each must give a clear error (or, for
//! a huge value that means "a lot", simply work), never a panic or a hang.
//!
//! What `tests/async_pool.rs` (`config_errors`, `foreign_release_goes_home`)
//! and `tests/webtransport.rs` (`bad_urls_and_settings_fail_at_construction`,
//! `unresolvable_host_is_a_resolve_error`, `wrong_path_is_rejected`,
//! `wrong_certificate_is_a_tls_error`, `server_session_limit_rejects_the_next_session`)
//! already check is not repeated here: `max_size` 0 of the engine and of
//! `SessionPool`, `max_creating` 0, `min_idle` above `max_size`, zero
//! `wait_timeout`, `create_timeout`, `idle_timeout` and `max_lifetime` of the
//! engine, `resize(0)` of the engine, a foreign release between two engine
//! pools, an `http` URL, an empty host, an idle timeout QUIC cannot express,
//! an unresolvable host of a `SessionPool`.
//!
//! The scenarios run on both runtimes, as in the other test files:
//! `on_tokio::<name>` and `on_smol::<name>`; each fails if it runs longer
//! than 20 s. The tests whose doc starts with "Regression:" once failed;
//! each names the bug it caught.

#[path = "support/counting.rs"]
mod counting;
#[macro_use]
#[path = "support/harness.rs"]
mod harness;

use std::net::{Ipv4Addr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use url::Url;
use wtpool::{ConfigError, ErrorChain, Pool, PoolError};
use wtpool_webtransport::echo::{EchoServer, EchoServerOptions};
use wtpool_webtransport::{
    ClientEndpoint, ClientOptions, ConnectionPool, SessionPool, StreamPool, TransportRuntime,
    WebTransportError, client_endpoint,
};
use wtransport::Connection;

use counting::Counting;
use harness::within;

// ----- the harness -----

type TestPool<R> = Pool<Counting<R>, R>;

/// How long a `wait_until` waits for a state before failing the test.
const PATIENCE: Duration = Duration::from_secs(3);

async fn wait_until<R: TransportRuntime>(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < PATIENCE, "waited in vain until {what}");
        R::default().sleep(Duration::from_millis(2)).await;
    }
}

/// (size, idle, in_use, creating, waiting)
fn occupancy(s: wtpool::Status) -> (usize, usize, usize, usize, usize) {
    let s = harness::checked(s);
    (s.size, s.idle, s.in_use, s.creating, s.waiting)
}

/// The error of a construction that must fail.
fn refused<T>(result: Result<T, WebTransportError>, what: &str) -> WebTransportError {
    match result {
        Ok(_) => panic!("{what} was taken"),
        Err(error) => error,
    }
}

// ----- the engine: sizes and durations -----

async fn zero_idle_check_interval_is_a_config_error<R: TransportRuntime>() {
    let f = Counting::<R>::new();
    let error = TestPool::<R>::builder(f.clone())
        .idle_check_interval(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(error, ConfigError::ZeroDuration("idle_check_interval"));
    assert_eq!(
        error.to_string(),
        "idle_check_interval must be longer than zero"
    );
    assert_eq!(f.create_calls(), 0, "a refused pool creates nothing");
}

async fn usize_max_sizes_work<R: TransportRuntime>() {
    // A huge max_size and max_creating mean "no cap": the pool works.
    let f = Counting::<R>::new();
    let pool = TestPool::<R>::builder(f.clone())
        .max_size(usize::MAX)
        .max_creating(usize::MAX)
        .build()
        .expect("usize::MAX is a valid size");
    let (a, b, c) = (
        pool.acquire().await.unwrap(),
        pool.acquire().await.unwrap(),
        pool.acquire().await.unwrap(),
    );
    assert_eq!([a.id, b.id, c.id], [0, 1, 2]);
    let s = pool.status();
    assert_eq!(s.max_size, usize::MAX);
    assert_eq!(occupancy(s), (3, 0, 3, 0, 0));
    drop((a, b, c));
    assert_eq!(occupancy(pool.status()), (3, 3, 0, 0, 0));
    pool.resize(usize::MAX).expect("resize to usize::MAX");
    pool.resize(2).expect("and down again");
    assert_eq!(occupancy(pool.status()), (2, 2, 0, 0, 0), "shrunk to 2");
    pool.resize(usize::MAX).expect("and up");
    assert_eq!(pool.acquire().await.unwrap().meta().checkouts, 2);

    // A huge min_idle is refused with both numbers named, not tried.
    let error = TestPool::<R>::builder(f.clone())
        .max_size(4)
        .min_idle(usize::MAX)
        .build()
        .unwrap_err();
    assert_eq!(
        error,
        ConfigError::MinIdleAboveMaxSize {
            min_idle: usize::MAX,
            max_size: 4
        }
    );
    assert_eq!(
        error.to_string(),
        format!("min_idle ({}) must not exceed max_size (4)", usize::MAX)
    );

    // A min_idle under a huge max_size is filled, no more.
    let f = Counting::<R>::new();
    let pool = TestPool::<R>::builder(f.clone())
        .max_size(usize::MAX)
        .min_idle(2)
        .build()
        .unwrap();
    wait_until::<R>("min_idle is filled", || pool.status().idle == 2).await;
    assert_eq!(f.create_calls(), 2);
}

async fn duration_max_timeouts_work<R: TransportRuntime>() {
    // A huge wait or create timeout means "no timeout": nothing fails early.
    let f = Counting::<R>::new();
    let pool = TestPool::<R>::builder(f.clone())
        .max_size(1)
        .wait_timeout(Duration::MAX)
        .create_timeout(Duration::MAX)
        .build()
        .expect("Duration::MAX is a valid timeout");
    let held = pool.acquire().await.expect("created");
    let mut waiter = Box::pin(pool.acquire());
    assert!(futures::poll!(waiter.as_mut()).is_pending());
    assert!(
        within::<R, _>(Duration::from_millis(50), waiter.as_mut())
            .await
            .is_none(),
        "the waiter did not wait"
    );
    drop(held);
    let served = waiter.await.expect("served when the object comes back");
    assert_eq!(served.id, 0);
}

/// Regression: `idle_timeout(Duration::MAX)` is accepted, but then every input
/// computes `last_used + idle_timeout` (`PoolState::poll_timeout`, called in
/// `with_state_deferred` whenever the upkeep runs) and overflows `Instant`:
/// giving an object back panics ("overflow when adding duration to instant")
/// in the borrower's own code, under the pool's lock.
async fn duration_max_idle_timeout_does_not_panic<R: TransportRuntime>() {
    let f = Counting::<R>::new();
    let pool = TestPool::<R>::builder(f.clone())
        .max_size(2)
        .idle_timeout(Duration::MAX)
        .build()
        .expect("Duration::MAX is a valid idle timeout");
    let guard = pool.acquire().await.expect("created");
    let given_back = catch_unwind(AssertUnwindSafe(|| drop(guard)));
    assert!(
        given_back.is_ok(),
        "giving back an object of a pool with idle_timeout(Duration::MAX) panicked"
    );
    assert_eq!(occupancy(pool.status()), (1, 1, 0, 0, 0));
}

/// Regression: `max_lifetime(Duration::MAX)` is accepted, but the first object
/// created makes `PoolState::outlived` compute `created_at + max_lifetime`,
/// which overflows `Instant` inside `handle_created`: the creation task
/// panics half-way through the machine's input (the object is dropped
/// unclosed, the waiter never served), the queued waiter asks for another
/// creation, which panics in turn, and so on: the acquire never returns.
async fn duration_max_max_lifetime_does_not_panic<R: TransportRuntime>() {
    let f = Counting::<R>::new();
    let pool = TestPool::<R>::builder(f.clone())
        .max_size(1)
        .max_lifetime(Duration::MAX)
        .build()
        .expect("Duration::MAX is a valid lifetime");
    let acquired = within::<R, _>(Duration::from_secs(2), pool.acquire()).await;
    let guard = acquired
        .expect("acquire with max_lifetime(Duration::MAX) hangs")
        .expect("an object");
    assert_eq!(guard.id, 0);
}

/// Regression: `idle_check_interval(Duration::MAX)` is accepted, but the upkeep
/// task starts with `Instant::now() + interval`, which overflows: the task
/// panics at once and is gone, silently, and with it every background duty:
/// here an idle object past its `idle_timeout` is never closed.
async fn duration_max_idle_check_interval_keeps_the_upkeep<R: TransportRuntime>() {
    let f = Counting::<R>::new();
    let pool = TestPool::<R>::builder(f.clone())
        .max_size(1)
        .idle_timeout(Duration::from_millis(50))
        .idle_check_interval(Duration::MAX)
        .build()
        .expect("Duration::MAX is a valid interval");
    drop(pool.acquire().await.expect("created"));
    assert_eq!(occupancy(pool.status()), (1, 1, 0, 0, 0));
    wait_until::<R>("the idle timeout closes the idle object", || {
        f.closes(0) == 1
    })
    .await;
    assert_eq!(occupancy(pool.status()), (0, 0, 0, 0, 0));
}

// ----- WebTransport: sizes, durations, client options -----

/// An echo server on loopback and a client endpoint that trusts it.
fn server_and_endpoint<R: TransportRuntime>() -> (EchoServer, ClientEndpoint) {
    let server = EchoServer::start(EchoServerOptions {
        max_idle_timeout: Duration::from_secs(2),
        keep_alive_interval: Some(Duration::from_millis(500)),
        ..EchoServerOptions::default()
    })
    .expect("start the echo server");
    let endpoint = client_endpoint::<R>(&client_options(&server)).expect("a client endpoint");
    (server, endpoint)
}

fn client_options(server: &EchoServer) -> ClientOptions {
    ClientOptions {
        bind: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
        ..ClientOptions::default()
    }
    .with_certificate_hash(server.certificate_hash())
}

/// Sends `message` on a new stream of `session` and checks the echo.
async fn echo_on(session: &Connection, message: &[u8]) {
    let opening = session.open_bi().await.expect("open a stream");
    let (mut send, mut recv) = opening.await.expect("the stream opens");
    send.write_all(message).await.expect("write");
    send.finish().await.expect("finish");
    let mut back = Vec::new();
    let mut buffer = [0; 256];
    while let Some(n) = recv.read(&mut buffer).await.expect("read") {
        back.extend_from_slice(&buffer[..n]);
    }
    assert_eq!(back, message);
}

async fn webtransport_pools_refuse_zero_sizes_and_take_huge_ones<R: TransportRuntime>() {
    let (server, endpoint) = server_and_endpoint::<R>();
    let port = server.local_addr().port();
    let config = || client_options(&server).build().expect("a client config");

    let error = refused(
        ConnectionPool::<R>::new(config(), "127.0.0.1", port, "/echo", 0),
        "a ConnectionPool of max_size 0",
    );
    assert!(
        matches!(error, WebTransportError::Config(ConfigError::ZeroMaxSize)),
        "{error}"
    );
    assert_eq!(
        ErrorChain(&error).to_string(),
        "invalid pool setting: max_size must be at least 1, got 0"
    );

    let sessions = SessionPool::<R>::new(endpoint, server.url(), usize::MAX)
        .expect("usize::MAX sessions at most");
    let session = sessions.acquire().await.expect("a session");
    echo_on(&session, b"huge").await;
    assert_eq!(sessions.status().max_size, usize::MAX);

    // Resize to 0 is refused and changes nothing.
    assert_eq!(sessions.resize(0), Err(ConfigError::ZeroMaxSize));
    assert_eq!(sessions.status().max_size, usize::MAX);
    drop(session);
    let session = sessions.acquire().await.expect("the pooled session");
    echo_on(&session, b"still").await;

    let error = refused(
        StreamPool::<R>::new((*session).clone(), 0),
        "a StreamPool of max_size 0",
    );
    assert!(
        matches!(error, WebTransportError::Config(ConfigError::ZeroMaxSize)),
        "{error}"
    );
    let streams =
        StreamPool::<R>::new((*session).clone(), usize::MAX).expect("usize::MAX streams at most");
    let mut stream = streams.acquire().await.expect("a stream");
    stream.write_all(b"ping").await.expect("write");
    let mut back = [0; 4];
    stream.read_exact(&mut back).await.expect("read");
    assert_eq!(&back, b"ping");
    assert_eq!(streams.resize(0), Err(ConfigError::ZeroMaxSize));
    assert_eq!(streams.status().max_size, usize::MAX);
}

async fn webtransport_options_refuse_zero_durations<R: TransportRuntime>() {
    let (server, endpoint) = server_and_endpoint::<R>();
    type Set<R> = fn(
        wtpool::Builder<wtpool_webtransport::SessionFactory, R>,
    ) -> wtpool::Builder<wtpool_webtransport::SessionFactory, R>;
    let settings: [(&str, Set<R>); 5] = [
        ("wait_timeout", |o| o.wait_timeout(Duration::ZERO)),
        ("create_timeout", |o| o.create_timeout(Duration::ZERO)),
        ("idle_timeout", |o| o.idle_timeout(Duration::ZERO)),
        ("max_lifetime", |o| o.max_lifetime(Duration::ZERO)),
        ("idle_check_interval", |o| {
            o.idle_check_interval(Duration::ZERO)
        }),
    ];
    for (name, set) in settings {
        let built = SessionPool::<R>::builder(endpoint.clone(), server.url(), 2)
            .expect("a valid URL")
            .options(set)
            .build();
        let error = refused(built, name);
        match &error {
            WebTransportError::Config(ConfigError::ZeroDuration(named)) => {
                assert_eq!(*named, name);
            }
            other => panic!("{name} of zero: not a ZeroDuration config error: {other}"),
        }
        assert_eq!(
            ErrorChain(&error).to_string(),
            format!("invalid pool setting: {name} must be longer than zero")
        );
    }
    assert_eq!(
        server.sessions_accepted(),
        0,
        "a refused pool connects nowhere"
    );
}

/// Regression: `ClientOptions { keep_alive_interval: Some(Duration::ZERO) }`
/// is taken (`build()` and `client_endpoint()` succeed), and quinn then
/// re-arms its keep-alive timer at `now + 0` for ever: one idle pooled
/// session keeps the process busy sending PINGs (measured: 1.9 s of CPU per
/// second on 2 cores, against none with a 300 ms keep-alive). A zero
/// interval should be refused with a clear error naming the keep-alive;
/// `None` is the way to say "no keep-alive".
#[test]
fn zero_keep_alive_interval_is_refused() {
    let options = ClientOptions {
        keep_alive_interval: Some(Duration::ZERO),
        ..ClientOptions::default()
    };
    let error = refused(options.build().map(drop), "a keep-alive interval of 0");
    assert!(
        error.to_string().contains("keep"),
        "the error names the keep-alive: {error}"
    );
}

/// Regression: `ClientOptions { max_idle_timeout: Some(Duration::ZERO) }` is
/// taken, but a QUIC idle timeout of 0 means "no idle timeout" (RFC 9000,
/// 18.2), so a peer that vanished is never noticed while its session idles,
/// against what `ClientOptions` promises (only `None` means no timeout). It
/// should be `WebTransportError::InvalidIdleTimeout`, as a timeout too large
/// for QUIC is.
#[test]
fn zero_max_idle_timeout_is_refused() {
    let options = ClientOptions {
        max_idle_timeout: Some(Duration::ZERO),
        ..ClientOptions::default()
    };
    let error = refused(options.build().map(drop), "an idle timeout of 0");
    assert!(
        matches!(error, WebTransportError::InvalidIdleTimeout(Some(d)) if d.is_zero()),
        "{error}"
    );
}

// ----- WebTransport: foreign objects -----

async fn objects_released_to_another_webtransport_pool_go_home<R: TransportRuntime>() {
    let (server, endpoint) = server_and_endpoint::<R>();
    let a = SessionPool::<R>::new(endpoint.clone(), server.url(), 2).expect("pool a");
    let b = SessionPool::<R>::new(endpoint, server.url(), 2).expect("pool b");
    let session = a.acquire().await.expect("a session of a");
    let id = session.stable_id();
    let error = b.release(session).await.unwrap_err();
    assert!(matches!(error, PoolError::ForeignObject), "{error}");
    assert_eq!(
        error.to_string(),
        "an object was released to a pool that did not hand it out"
    );
    assert_eq!(
        occupancy(a.status()),
        (1, 1, 0, 0, 0),
        "back in its own pool"
    );
    assert_eq!(
        occupancy(b.status()),
        (0, 0, 0, 0, 0),
        "the other is untouched"
    );
    let again = a.acquire().await.expect("the session, from its pool");
    assert_eq!(again.stable_id(), id);
    echo_on(&again, b"home").await;
    assert_eq!(server.sessions_accepted(), 1);

    // Streams: two stream pools on one session.
    let (sa, sb) = (
        StreamPool::<R>::new((*again).clone(), 2).expect("stream pool a"),
        StreamPool::<R>::new((*again).clone(), 2).expect("stream pool b"),
    );
    let stream = sa.acquire().await.expect("a stream of a");
    let stream_id = stream.id();
    let error = sb.release(stream).await.unwrap_err();
    assert!(matches!(error, PoolError::ForeignObject), "{error}");
    assert_eq!(occupancy(sa.status()), (1, 1, 0, 0, 0));
    assert_eq!(occupancy(sb.status()), (0, 0, 0, 0, 0));
    assert_eq!(sa.acquire().await.expect("a stream").id(), stream_id);
}

// ----- WebTransport: URLs and hosts -----

async fn urls_that_are_not_https_are_refused<R: TransportRuntime>() {
    let (_server, endpoint) = server_and_endpoint::<R>();
    for url in [
        "ws://localhost:4433/echo",
        "wss://localhost:4433/echo",
        "ftp://localhost/echo",
        "file:///tmp/echo",
        "data:text/plain,echo",
    ] {
        let parsed = Url::parse(url).expect("a URL");
        let scheme = parsed.scheme().to_owned();
        let error = refused(
            SessionPool::<R>::new(endpoint.clone(), parsed, 2),
            &format!("the URL {url}"),
        );
        match &error {
            WebTransportError::InvalidUrl { reason, .. } => {
                assert_eq!(*reason, format!("the scheme must be https, not {scheme:?}"))
            }
            other => panic!("{url}: not InvalidUrl: {other}"),
        }
    }
}

async fn unusable_addresses_fail_at_once<R: TransportRuntime>() {
    let (_server, endpoint) = server_and_endpoint::<R>();
    // Port 0, the unspecified address, and IPv6 from an IPv4 endpoint: the
    // connect is refused at once with the address named, and no slot is held.
    for url in [
        "https://127.0.0.1:0/echo",
        "https://0.0.0.0:4433/echo",
        "https://[::1]:4433/echo",
    ] {
        let pool = SessionPool::<R>::new(endpoint.clone(), Url::parse(url).unwrap(), 2)
            .expect("a well-formed https URL");
        let started = Instant::now();
        let error = match pool.acquire().await {
            Ok(_) => panic!("{url}: a session"),
            Err(error) => error,
        };
        // At once, with no handshake: well within the 3 s that even a
        // handshake with nobody takes (a margin for a busy machine).
        assert!(started.elapsed() < Duration::from_secs(3), "{url}: slow");
        match &error {
            PoolError::Create(WebTransportError::Connect { source, .. }) => assert!(
                source.to_string().contains("invalid remote address"),
                "{url}: {source}"
            ),
            other => panic!("{url}: not a Connect error: {other}"),
        }
        assert_eq!(occupancy(pool.status()), (0, 0, 0, 0, 0), "{url}");
    }
}

async fn connection_pool_refuses_malformed_hosts<R: TransportRuntime>() {
    let (server, _endpoint) = server_and_endpoint::<R>();
    let port = server.local_addr().port();
    let config = || client_options(&server).build().expect("a client config");
    for host in ["bad host", "[::1", "host:1", "exa%mple"] {
        let error = refused(
            ConnectionPool::<R>::new(config(), host, port, "/echo", 2),
            &format!("the host {host:?}"),
        );
        assert!(
            matches!(error, WebTransportError::InvalidUrl { .. }),
            "{host:?}: {error}"
        );
        // The message names the host.
        assert!(error.to_string().contains(host), "{error}");
    }
    // A host that does not resolve, through the URL the ConnectionPool builds.
    let pool = ConnectionPool::<R>::new(config(), "no-such-host.invalid", port, "/echo", 2)
        .expect("a well-formed host");
    match pool.acquire().await {
        Err(PoolError::Create(WebTransportError::Resolve { url, .. })) => {
            assert!(url.contains("no-such-host.invalid"), "{url}");
        }
        Err(other) => panic!("not a Resolve error: {other}"),
        Ok(_) => panic!("an unresolvable host gave a session"),
    }
    assert_eq!(occupancy(pool.status()), (0, 0, 0, 0, 0));
}

/// Regression: `ConnectionPool::new` pastes host, port and path into
/// `https://{host}:{port}/{path}` and parses that, so a host holding a URL
/// delimiter is not refused but moves the target: host `127.0.0.1/x` with
/// port P gives `https://127.0.0.1/x:P/echo`, which is host 127.0.0.1,
/// port 443, path `/x:P/echo`; `?`, `#` and `@` do the like (`user@127.0.0.1`
/// becomes user info), and a tab or newline in the host is dropped by the
/// URL parser (`exa\tmple` becomes `example`). Such a host should be
/// `InvalidUrl` at construction.
async fn connection_pool_refuses_hosts_that_change_the_url<R: TransportRuntime>() {
    let (server, _endpoint) = server_and_endpoint::<R>();
    let port = server.local_addr().port();
    let mut taken = Vec::new();
    for host in [
        "127.0.0.1/x",
        "127.0.0.1?x",
        "127.0.0.1#x",
        "user@127.0.0.1",
        "exa\tmple",
        "127.0.0\n.1",
    ] {
        let config = client_options(&server).build().expect("a client config");
        match ConnectionPool::<R>::new(config, host, port, "/echo", 2) {
            Err(WebTransportError::InvalidUrl { .. }) => {}
            Err(other) => panic!("{host:?}: not InvalidUrl: {other}"),
            Ok(pool) => taken.push(format!("{host:?} as {}", pool.factory().url())),
        }
    }
    assert!(
        taken.is_empty(),
        "hosts taken with port {port}, as other URLs: {taken:#?}"
    );
}

// ----- the tests, on both runtimes -----

scenarios!(
    zero_idle_check_interval_is_a_config_error,
    usize_max_sizes_work,
    duration_max_timeouts_work,
    duration_max_idle_timeout_does_not_panic,
    duration_max_max_lifetime_does_not_panic,
    duration_max_idle_check_interval_keeps_the_upkeep,
    webtransport_pools_refuse_zero_sizes_and_take_huge_ones,
    webtransport_options_refuse_zero_durations,
    objects_released_to_another_webtransport_pool_go_home,
    urls_that_are_not_https_are_refused,
    unusable_addresses_fail_at_once,
    connection_pool_refuses_malformed_hosts,
    connection_pool_refuses_hosts_that_change_the_url,
);
