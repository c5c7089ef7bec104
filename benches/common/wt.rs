//! WebTransport workloads against the loopback echo server
//! ([`EchoServer`](wtpool_tokio::echo::EchoServer) on 127.0.0.1, never any
//! other address), on tokio: 64-byte echo requests, `CLIENTS` at a time.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use url::Url;
use wtpool_tokio::echo::{EchoServer, EchoServerOptions};
use wtpool_tokio::wtransport::Identity;
use wtpool_tokio::wtransport::tls::Sha256Digest;
use wtpool_tokio::wtransport::{Connection, RecvStream, SendStream, VarInt};
use wtpool_tokio::{
    ClientEndpoint, ClientOptions, Fleet, FleetSettings, SessionPool, SharedSessionPool, StreamPool,
};

/// The longest one request may take before it counts as an error (so that a
/// lost packet cannot hang the table).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests in flight at once, and the size of the pools.
pub const CLIENTS: usize = 16;
/// Bytes in each echo message.
pub const MESSAGE: usize = 64;

/// What one workload measured.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Requests (or acquires) that succeeded, with their latencies, sorted.
    pub latencies: Vec<Duration>,
    pub errors: usize,
    pub elapsed: Duration,
    pub first_error: Option<String>,
    /// QUIC connections (sessions) opened by the workload, where it counts them.
    pub connections: Option<usize>,
    /// The most sessions seen open at once, where the workload samples it.
    pub peak_open: Option<usize>,
}

impl Sample {
    pub fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile(&self, p: f64) -> Duration {
        super::percentile(&self.latencies, p).unwrap_or_default()
    }
}

/// Where the echo server is, and how to trust it.
#[derive(Clone)]
pub struct Target {
    pub url: Url,
    pub hash: Sha256Digest,
}

impl Target {
    pub fn options(&self) -> ClientOptions {
        ClientOptions::default().with_certificate_hash(self.hash.clone())
    }

    /// A fresh client endpoint (one UDP socket). Inside the tokio runtime.
    pub fn endpoint(&self) -> ClientEndpoint {
        wtpool_tokio::client_endpoint(&self.options()).expect("a client endpoint")
    }
}

/// Runs `requests` calls of `request`, one worker task per state in `states`
/// (each worker owns its state and hands it to each request it makes).
pub async fn drive<S, F, Fut>(states: Vec<S>, requests: usize, request: F) -> Sample
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (S, Result<(), String>)> + Send,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = states
        .into_iter()
        .map(|mut state| {
            let (request, next) = (request.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(requests);
                let mut errors = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < requests {
                    let begun = Instant::now();
                    let Ok((back, result)) =
                        tokio::time::timeout(REQUEST_TIMEOUT, request(state)).await
                    else {
                        // The worker's state went with the request: it stops.
                        errors.push(format!("no answer within {REQUEST_TIMEOUT:?}"));
                        break;
                    };
                    state = back;
                    match result {
                        Ok(()) => latencies.push(begun.elapsed()),
                        Err(error) => errors.push(error),
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut sample = Sample::default();
    for worker in workers {
        let (latencies, errors) = worker.await.expect("a worker");
        sample.latencies.extend(latencies);
        sample.errors += errors.len();
        if sample.first_error.is_none() {
            sample.first_error = errors.into_iter().next();
        }
    }
    sample.elapsed = start.elapsed();
    sample.latencies.sort();
    sample
}

/// An error and its causes, each layer's message once.
fn text<E: std::error::Error>(error: E) -> String {
    wtpool::ErrorChain(&error).to_string()
}

/// A new stream on `session`: the message, finish, the echo read to its end.
pub async fn echo_on_new_stream(session: &Connection, message: &[u8]) -> Result<(), String> {
    let (mut send, mut recv) = session.open_bi().await.map_err(text)?.await.map_err(text)?;
    echo_over(&mut send, &mut recv, message).await
}

/// The message on `send`, finish, the echo read to its end from `recv`.
async fn echo_over(
    send: &mut SendStream,
    recv: &mut RecvStream,
    message: &[u8],
) -> Result<(), String> {
    send.write_all(message).await.map_err(text)?;
    send.finish().await.map_err(text)?;
    let mut echoed = Vec::with_capacity(message.len());
    let mut chunk = [0u8; 1024];
    while let Some(n) = recv.read(&mut chunk).await.map_err(text)? {
        echoed.extend_from_slice(&chunk[..n]);
    }
    check(message, &echoed)
}

fn check(sent: &[u8], echoed: &[u8]) -> Result<(), String> {
    if sent == echoed {
        Ok(())
    } else {
        Err(format!(
            "sent {} bytes, got {} back",
            sent.len(),
            echoed.len()
        ))
    }
}

fn message() -> Arc<Vec<u8>> {
    Arc::new(vec![b'w'; MESSAGE])
}

/// A new connection (QUIC + TLS + WebTransport handshake) per request, from
/// one client endpoint, closed after the echo.
pub async fn new_connection_per_request(target: Target, requests: usize) -> Sample {
    let endpoint = target.endpoint();
    let message = message();
    let url = target.url.to_string();
    let states = vec![(); CLIENTS];
    drive(states, requests, move |()| {
        let (endpoint, url, message) = (endpoint.clone(), url.clone(), message.clone());
        async move {
            let result = async {
                let session = endpoint.connect(url).await.map_err(text)?;
                let result = echo_on_new_stream(&session, &message).await;
                session.close(VarInt::from_u32(0), b"done");
                result
            }
            .await;
            ((), result)
        }
    })
    .await
}

/// `CLIENTS` sessions opened beforehand, one per worker, a new stream per
/// request: the floor under a SessionPool.
pub async fn open_sessions_no_pool(target: Target, requests: usize) -> Sample {
    open_sessions(target, requests, CLIENTS, CLIENTS).await
}

/// `count` sessions opened beforehand, `workers` workers using them round
/// robin, a new stream per request: the floor under a pool of sessions.
async fn open_sessions(target: Target, requests: usize, count: usize, workers: usize) -> Sample {
    let endpoint = target.endpoint();
    let mut sessions = Vec::new();
    for _ in 0..count {
        let session = endpoint.connect(target.url.to_string()).await;
        sessions.push(session.expect("a session"));
    }
    let states = (0..workers).map(|n| sessions[n % count].clone()).collect();
    let message = message();
    let mut sample = drive(states, requests, move |session: Connection| {
        let message = message.clone();
        async move {
            let result = echo_on_new_stream(&session, &message).await;
            (session, result)
        }
    })
    .await;
    for session in sessions {
        session.close(VarInt::from_u32(0), b"done");
    }
    sample.connections = Some(count);
    sample
}

/// A SessionPool of `CLIENTS` sessions (filled beforehand), `CLIENTS`
/// workers, a new stream per request on a pooled session.
pub async fn session_pool(target: Target, requests: usize) -> Sample {
    session_pool_of(target, requests, CLIENTS).await
}

/// A SessionPool of `size` sessions (filled beforehand), `size` workers, a
/// new stream per request on a pooled session; the sessions made are counted.
async fn session_pool_of(target: Target, requests: usize, size: usize) -> Sample {
    let pool = SessionPool::new(target.endpoint(), target.url.clone(), size).expect("a pool");
    let warm = futures::future::join_all((0..size).map(|_| pool.acquire())).await;
    assert!(warm.iter().all(Result::is_ok), "the pool fills");
    drop(warm);
    let message = message();
    let mut sample = drive(vec![pool.clone(); size], requests, move |pool| {
        let message = message.clone();
        async move {
            let result = async {
                let session = pool.acquire().await.map_err(text)?;
                echo_on_new_stream(&session, &message).await
            }
            .await;
            (pool, result)
        }
    })
    .await;
    sample.connections = Some(pool.counters().created as usize);
    let _ = pool.close().await;
    sample
}

/// `CLIENTS` streams opened beforehand on one session, one per worker, a
/// message and its echo per request: the floor under a StreamPool.
pub async fn open_streams_no_pool(target: Target, requests: usize) -> Sample {
    let endpoint = target.endpoint();
    let session = endpoint
        .connect(target.url.to_string())
        .await
        .expect("a session");
    let mut streams: Vec<(SendStream, RecvStream)> = Vec::new();
    for _ in 0..CLIENTS {
        streams.push(
            session
                .open_bi()
                .await
                .expect("a stream")
                .await
                .expect("a stream"),
        );
    }
    let message = message();
    let sample = drive(streams, requests, move |(mut send, mut recv)| {
        let message = message.clone();
        async move {
            let result = async {
                send.write_all(&message).await.map_err(text)?;
                let mut echoed = vec![0u8; message.len()];
                recv.read_exact(&mut echoed).await.map_err(text)?;
                check(&message, &echoed)
            }
            .await;
            ((send, recv), result)
        }
    })
    .await;
    session.close(VarInt::from_u32(0), b"done");
    sample
}

/// A StreamPool of `CLIENTS` streams on one session (filled beforehand),
/// `CLIENTS` workers, a message and its echo on a pooled stream per request.
pub async fn stream_pool(target: Target, requests: usize) -> Sample {
    let endpoint = target.endpoint();
    let session = endpoint
        .connect(target.url.to_string())
        .await
        .expect("a session");
    let pool = StreamPool::new(session.clone(), CLIENTS).expect("a pool");
    let warm = futures::future::join_all((0..CLIENTS).map(|_| pool.acquire())).await;
    assert!(warm.iter().all(Result::is_ok), "the pool fills");
    drop(warm);
    let message = message();
    let sample = drive(vec![pool.clone(); CLIENTS], requests, move |pool| {
        let message = message.clone();
        async move {
            let result = async {
                let mut stream = pool.acquire().await.map_err(text)?;
                stream.write_all(&message).await.map_err(text)?;
                let mut echoed = vec![0u8; message.len()];
                stream.read_exact(&mut echoed).await.map_err(text)?;
                stream.mark_complete();
                check(&message, &echoed)
            }
            .await;
            (pool, result)
        }
    })
    .await;
    let _ = pool.close().await;
    session.close(VarInt::from_u32(0), b"done");
    sample
}

/// `burst` acquires at once on a fresh SessionPool of `burst` sessions (a
/// fresh endpoint too): every acquire needs a handshake of its own. With
/// `capped`, the WebTransport pools' default cap on creations in flight
/// ([`DEFAULT_CAP`]); without, every handshake starts at once. Latency is from the start of the burst to the
/// acquire's return.
pub async fn cold_burst(target: Target, burst: usize, capped: bool) -> Sample {
    let pool = SessionPool::builder(target.endpoint(), target.url.clone(), burst)
        .expect("a builder")
        .options(|options| {
            if capped {
                options
            } else {
                options.max_creating(usize::MAX)
            }
        })
        .build()
        .expect("a pool");
    let start = Instant::now();
    let tasks: Vec<_> = (0..burst)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let session = tokio::time::timeout(3 * REQUEST_TIMEOUT, pool.acquire())
                    .await
                    .map_err(|_| format!("no session within {:?}", 3 * REQUEST_TIMEOUT))
                    .and_then(|session| session.map_err(text));
                (start.elapsed(), session)
            })
        })
        .collect();
    let mut sample = Sample::default();
    let mut held = Vec::new();
    for task in tasks {
        let (latency, session) = task.await.expect("a task");
        match session {
            Ok(session) => {
                sample.latencies.push(latency);
                held.push(session);
            }
            Err(error) => {
                sample.errors += 1;
                sample.first_error.get_or_insert(error);
            }
        }
    }
    sample.elapsed = start.elapsed();
    sample.latencies.sort();
    drop(held);
    let _ = pool.close().await;
    sample
}

/// The cap the capped burst runs with.
pub const DEFAULT_CAP: usize = wtpool_webtransport::DEFAULT_MAX_CREATING;

// ----- shared sessions (issue 9): 64 tasks, a new stream per request -----

/// Tasks at once in the shared-session workloads.
pub const SHARED_TASKS: usize = 64;
/// Sessions of the shared pool and of its floor.
pub const SHARED_SESSIONS: usize = 4;
/// Borrowers per session of the shared pool.
pub const SHARED_LEASES: usize = SHARED_TASKS / SHARED_SESSIONS;

/// `SHARED_SESSIONS` sessions opened beforehand, `SHARED_TASKS` workers
/// using them round robin, a new stream per request: the floor under a
/// shared pool.
pub async fn shared_floor(target: Target, requests: usize) -> Sample {
    open_sessions(target, requests, SHARED_SESSIONS, SHARED_TASKS).await
}

/// An exclusive SessionPool of `SHARED_TASKS` sessions (filled beforehand),
/// `SHARED_TASKS` workers, a new stream per request on a pooled session.
pub async fn exclusive_sessions(target: Target, requests: usize) -> Sample {
    session_pool_of(target, requests, SHARED_TASKS).await
}

/// A shared pool of `SHARED_SESSIONS` x `SHARED_LEASES` (filled
/// beforehand), `SHARED_TASKS` workers, each request a stream of
/// `open_bi` (which holds its session's lease while it lives).
pub async fn shared_sessions(target: Target, requests: usize) -> Sample {
    let pool = shared_pool(&target);
    let warm = futures::future::join_all((0..SHARED_TASKS).map(|_| pool.acquire())).await;
    assert!(warm.iter().all(Result::is_ok), "the pool fills");
    drop(warm);
    let message = message();
    let mut sample = drive(vec![pool.clone(); SHARED_TASKS], requests, move |pool| {
        let message = message.clone();
        async move {
            let result = shared_request(&pool, &message).await;
            (pool, result)
        }
    })
    .await;
    sample.connections = Some(pool.counters().created as usize);
    let _ = pool.close().await;
    sample
}

fn shared_pool(target: &Target) -> SharedSessionPool {
    SharedSessionPool::new(
        target.endpoint(),
        target.url.clone(),
        SHARED_SESSIONS,
        SHARED_LEASES,
    )
    .expect("a pool")
}

/// One request on a stream of the shared pool.
async fn shared_request(pool: &SharedSessionPool, message: &[u8]) -> Result<(), String> {
    let (mut send, mut recv, _lease) = pool.open_bi().await.map_err(text)?.into_parts();
    echo_over(&mut send, &mut recv, message).await
}

/// The cold start: `SHARED_TASKS` tasks released at once on an empty pool
/// (exclusive of `SHARED_TASKS`, or shared), each making one request;
/// latency from the release to each task's first reply (the last one is the
/// cold start).
pub async fn cold_start(target: Target, shared: bool) -> Sample {
    let message = message();
    let start = Instant::now();
    type Task = tokio::task::JoinHandle<Result<Duration, String>>;
    let (tasks, connections): (Vec<Task>, Box<dyn Fn() -> usize + Send>) = if shared {
        let pool = shared_pool(&target);
        let tasks = (0..SHARED_TASKS)
            .map(|_| {
                let (pool, message) = (pool.clone(), message.clone());
                tokio::spawn(async move {
                    shared_request(&pool, &message).await?;
                    Ok(start.elapsed())
                })
            })
            .collect();
        (tasks, Box::new(move || pool.counters().created as usize))
    } else {
        let pool =
            SessionPool::new(target.endpoint(), target.url.clone(), SHARED_TASKS).expect("a pool");
        let tasks = (0..SHARED_TASKS)
            .map(|_| {
                let (pool, message) = (pool.clone(), message.clone());
                tokio::spawn(async move {
                    let session = pool.acquire().await.map_err(text)?;
                    echo_on_new_stream(&session, &message).await?;
                    Ok(start.elapsed())
                })
            })
            .collect();
        (tasks, Box::new(move || pool.counters().created as usize))
    };
    let mut sample = Sample::default();
    for task in tasks {
        match tokio::time::timeout(3 * REQUEST_TIMEOUT, task).await {
            Ok(Ok(Ok(latency))) => sample.latencies.push(latency),
            failed => {
                sample.errors += 1;
                sample.first_error.get_or_insert(format!("{failed:?}"));
            }
        }
    }
    sample.elapsed = start.elapsed();
    sample.latencies.sort();
    sample.connections = Some(connections());
    sample
}

// ----- a fleet (issue 9): 8 servers x 16 tasks under a cap of 16 sessions -----

/// Servers of the fleet workload, and tasks per server.
pub const FLEET_SERVERS: usize = 8;
pub const FLEET_TASKS_PER_SERVER: usize = 16;
/// The fleet's cap on sessions across its servers.
pub const FLEET_CAP: usize = 16;

/// `FLEET_SERVERS` loopback echo servers of their own (one certificate),
/// `FLEET_TASKS_PER_SERVER` workers for each, a new stream per request
/// through one `Fleet` capped at `FLEET_CAP` sessions (4 per server, 4
/// borrowers each: the servers would take twice the cap). The cap is
/// sampled every millisecond.
pub async fn fleet(requests: usize) -> Sample {
    let identity =
        Arc::new(Identity::self_signed(["localhost", "127.0.0.1"]).expect("an identity"));
    let servers: Vec<_> = (0..FLEET_SERVERS)
        .map(|_| {
            EchoServer::start(EchoServerOptions {
                identity: Some(identity.clone()),
                ..EchoServerOptions::default()
            })
            .expect("an echo server")
        })
        .collect();
    let options = ClientOptions::default().with_certificate_hash(servers[0].certificate_hash());
    let settings = FleetSettings {
        max_sessions: FLEET_CAP,
        max_sessions_per_server: 4,
        max_leases: 4,
        ..FleetSettings::default()
    };
    let fleet = Fleet::new(
        wtpool_tokio::client_endpoint(&options).expect("an endpoint"),
        settings,
    )
    .expect("a fleet");
    let peak = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (fleet, peak, done) = (fleet.clone(), peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(fleet.status().open, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let states = (0..FLEET_SERVERS * FLEET_TASKS_PER_SERVER)
        .map(|n| (fleet.clone(), servers[n % FLEET_SERVERS].url()))
        .collect();
    let message = message();
    let mut sample = drive(states, requests, move |(fleet, url): (Fleet, Url)| {
        let message = message.clone();
        async move {
            let result = async {
                let (mut send, mut recv, _lease) =
                    fleet.open_bi(&url).await.map_err(text)?.into_parts();
                echo_over(&mut send, &mut recv, &message).await
            }
            .await;
            ((fleet, url), result)
        }
    })
    .await;
    done.store(true, Ordering::Relaxed);
    sampler.await.expect("the sampler");
    peak.fetch_max(fleet.status().open, Ordering::Relaxed);
    sample.peak_open = Some(peak.load(Ordering::Relaxed));
    sample.connections = Some(servers.iter().map(EchoServer::sessions_accepted).sum());
    let unserved = servers.iter().filter(|s| s.streams_accepted() == 0).count();
    if unserved > 0 {
        sample.errors += unserved;
        sample
            .first_error
            .get_or_insert(format!("{unserved} servers never served"));
    }
    fleet.close().await;
    sample
}
