//! One handle for shared sessions to many servers: [`Fleet`].
//!
//! A fleet keeps a [`SharedSessionPool`] per server, made on first use. A
//! server is a URL reached from one client endpoint: sessions are never
//! shared across endpoints, so never across different certificate pins or
//! client settings. A cap bounds the sessions open across all servers: a
//! server that needs one more when the cap is reached closes the least
//! recently used idle session of another server, or waits for one to close.
//! A session idle for `forget_after` is closed, and a server left with no
//! session that nobody asked for in `forget_after` is forgotten.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use event_listener::Event;
use futures::future::select;
use url::Url;
use wtpool::{Counters, Status};

use crate::session::SessionFactory;
use crate::shared::{SessionLease, SharedSessionError, SharedSessionPool, SharedStream};
use crate::{ClientEndpoint, DEFAULT_MAX_LEASES, TransportRuntime, WebTransportError};

/// How often a server that waits for a place under the cap looks again for
/// an idle session of another server to close (one may go idle meanwhile
/// without any session closing).
const EVICTION_RETRY: Duration = Duration::from_millis(20);

/// The limits of a [`Fleet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSettings {
    /// Most sessions open at once across all servers.
    pub max_sessions: usize,
    /// Most sessions to one server.
    pub max_sessions_per_server: usize,
    /// Borrowers per session.
    pub max_leases: usize,
    /// A session idle this long is closed; a server with no session left
    /// that nobody asked for in this long is forgotten.
    pub forget_after: Duration,
}

impl Default for FleetSettings {
    /// 64 sessions in all, 16 per server, [`DEFAULT_MAX_LEASES`] borrowers
    /// each, sessions closed and servers forgotten after a minute unused.
    fn default() -> Self {
        FleetSettings {
            max_sessions: 64,
            max_sessions_per_server: 16,
            max_leases: DEFAULT_MAX_LEASES,
            forget_after: Duration::from_secs(60),
        }
    }
}

/// Shared sessions to any number of servers, under one cap.
///
/// ```no_run
/// use wtpool_webtransport::{ClientOptions, Fleet, FleetSettings, TransportRuntime, client_endpoint};
///
/// async fn demo<R: TransportRuntime>() -> Result<(), Box<dyn std::error::Error>> {
///     let client = client_endpoint::<R>(&ClientOptions::default())?;
///     let settings = FleetSettings { max_sessions: 16, ..FleetSettings::default() };
///     let fleet = Fleet::<R>::new(client, settings)?;
///     for server in ["https://a.example:4433/chat", "https://b.example:4433/chat"] {
///         let mut stream = fleet.open_bi(&server.parse()?).await?;
///         stream.send().write_all(b"hello").await?;
///     }
///     let status = fleet.status();
///     assert!(status.open <= 16);
///     Ok(())
/// }
/// ```
pub struct Fleet<R: TransportRuntime> {
    shared: Arc<FleetShared<R>>,
}

impl<R: TransportRuntime> Clone for Fleet<R> {
    fn clone(&self) -> Self {
        Fleet {
            shared: self.shared.clone(),
        }
    }
}

/// Changes the engine's options of each server's pool.
type Options<R> =
    dyn Fn(wtpool::Builder<SessionFactory, R>) -> wtpool::Builder<SessionFactory, R> + Send + Sync;

struct FleetShared<R: TransportRuntime> {
    client: ClientEndpoint,
    settings: FleetSettings,
    options: Box<Options<R>>,
    cap: Arc<SessionCap>,
    servers: Mutex<Servers<R>>,
}

struct Servers<R: TransportRuntime> {
    by_key: HashMap<ServerKey, Server<R>>,
    /// When idle servers were last looked for.
    last_sweep: Instant,
}

/// A server: a URL reached from one client endpoint (its identity: sessions
/// of different endpoints, so of different pins or settings, are never shared).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ServerKey {
    url: Url,
    endpoint: usize,
}

struct Server<R: TransportRuntime> {
    pool: SharedSessionPool<R>,
    /// When a borrower last asked for it.
    last_used: Instant,
}

impl<R: TransportRuntime> Fleet<R> {
    /// A fleet of sessions from `client` (one endpoint, one set of pins and
    /// settings for all its servers) under `settings`, each server's pool
    /// with the WebTransport defaults of [`Builder`](crate::Builder).
    pub fn new(
        client: impl Into<ClientEndpoint>,
        settings: FleetSettings,
    ) -> Result<Self, WebTransportError> {
        Self::with_options(client, settings, |options| options)
    }

    /// [`new`](Self::new), with `options` changing the engine's options of
    /// each server's pool (say, its `create_timeout`, which also bounds how
    /// long a creation waits for a place under the cap, or its
    /// `wait_timeout` and `refusal_backoff`). The fleet sets each pool's
    /// `idle_timeout` to `forget_after` after `options` ran.
    pub fn with_options(
        client: impl Into<ClientEndpoint>,
        settings: FleetSettings,
        options: impl Fn(wtpool::Builder<SessionFactory, R>) -> wtpool::Builder<SessionFactory, R>
        + Send
        + Sync
        + 'static,
    ) -> Result<Self, WebTransportError> {
        let counts = [
            (settings.max_sessions, wtpool::ConfigError::ZeroMaxSize),
            (
                settings.max_sessions_per_server,
                wtpool::ConfigError::ZeroMaxSize,
            ),
            (settings.max_leases, wtpool::ConfigError::ZeroMaxLeases),
        ];
        for (value, error) in counts {
            if value == 0 {
                return Err(WebTransportError::Config(error));
            }
        }
        if settings.forget_after.is_zero() {
            let error = wtpool::ConfigError::ZeroDuration("forget_after");
            return Err(WebTransportError::Config(error));
        }
        let shared = Arc::new_cyclic(|fleet: &Weak<FleetShared<R>>| {
            let evictor: Weak<dyn Evict> = fleet.clone();
            FleetShared {
                client: client.into(),
                options: Box::new(options),
                cap: Arc::new(SessionCap {
                    max: settings.max_sessions,
                    open: Mutex::new(0),
                    closed: Event::new(),
                    evictor,
                }),
                settings,
                servers: Mutex::new(Servers {
                    by_key: HashMap::new(),
                    last_sweep: R::default().now(),
                }),
            }
        });
        Ok(Fleet { shared })
    }

    /// The pool of the server at `url`, reached from the fleet's client
    /// endpoint, made on first use.
    pub fn pool(&self, url: &Url) -> Result<SharedSessionPool<R>, WebTransportError> {
        self.pool_from(&self.shared.client, url)
    }

    /// The pool of the server at `url` reached from `client` (other pins or
    /// settings than the fleet's own endpoint): a server of its own, under
    /// the same cap.
    pub fn pool_from(
        &self,
        client: &ClientEndpoint,
        url: &Url,
    ) -> Result<SharedSessionPool<R>, WebTransportError> {
        let key = ServerKey {
            url: url.clone(),
            endpoint: client.id(),
        };
        let now = R::default().now();
        let mut servers = self.shared.servers();
        self.shared.forget_idle(&mut servers, now);
        // A pool closed through a handle of its own is made anew.
        if let Some(server) = servers.by_key.get_mut(&key)
            && !server.pool.is_closed()
        {
            server.last_used = now;
            return Ok(server.pool.clone());
        }
        let place = FleetPlace {
            cap: self.shared.cap.clone(),
            server: key.clone(),
            held: AtomicUsize::new(0),
        };
        let factory = SessionFactory::new::<R>(client.clone(), url.clone())?.in_fleet(place);
        let settings = &self.shared.settings;
        let pool = SharedSessionPool::with_factory(
            factory,
            settings.max_sessions_per_server,
            settings.max_leases,
        )
        .options(|o| (self.shared.options)(o).idle_timeout(settings.forget_after))
        .build()?;
        let server = Server {
            pool: pool.clone(),
            last_used: now,
        };
        servers.by_key.insert(key, server);
        Ok(pool)
    }

    /// A lease on a session to the server at `url`.
    pub async fn acquire(&self, url: &Url) -> Result<SessionLease<R>, SharedSessionError> {
        let pool = self.pool(url).map_err(SharedSessionError::Server)?;
        Ok(pool.acquire().await?)
    }

    /// A new bidirectional stream on the least busy session to the server
    /// at `url` (see [`SharedSessionPool::open_bi`]).
    pub async fn open_bi(&self, url: &Url) -> Result<SharedStream<R>, SharedSessionError> {
        let pool = self.pool(url).map_err(SharedSessionError::Server)?;
        pool.open_bi().await
    }

    /// Sessions open, the cap, and the status and counters of each server.
    pub fn status(&self) -> FleetStatus {
        let servers = self.shared.servers();
        let mut status = FleetStatus {
            open: self.shared.cap.open(),
            max_sessions: self.shared.settings.max_sessions,
            servers: servers
                .by_key
                .iter()
                .map(|(key, server)| ServerStatus {
                    url: key.url.clone(),
                    status: server.pool.status(),
                    counters: server.pool.counters(),
                })
                .collect(),
        };
        status.servers.sort_by(|a, b| a.url.cmp(&b.url));
        status
    }

    /// Closes every server's pool and forgets them; sessions in use are
    /// closed when their last lease comes back.
    pub async fn close(&self) {
        let pools: Vec<_> = {
            let mut servers = self.shared.servers();
            servers.by_key.drain().map(|(_, s)| s.pool).collect()
        };
        for pool in pools {
            // `close` reports the factory's close errors, which sessions never give.
            let _ = pool.close().await;
        }
    }
}

impl<R: TransportRuntime> FleetShared<R> {
    fn servers(&self) -> MutexGuard<'_, Servers<R>> {
        self.servers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets the servers that have no session left (each pool closes
    /// the sessions idle for `forget_after`) and that nobody asked for in
    /// `forget_after` (looked for at most twice per `forget_after`).
    fn forget_idle(&self, servers: &mut Servers<R>, now: Instant) {
        let forget_after = self.settings.forget_after;
        if now.saturating_duration_since(servers.last_sweep) < forget_after / 2 {
            return;
        }
        servers.last_sweep = now;
        servers.by_key.retain(|_, server| {
            server.pool.status().size > 0
                || now.saturating_duration_since(server.last_used) < forget_after
        });
    }
}

/// Closing idle sessions of other servers, for the cap.
trait Evict: Send + Sync {
    /// If the pool of `server` has waiters, closes the least recently used
    /// idle session of the least recently used other server that has one.
    /// (A creation its waiters no longer need closes nothing.)
    fn evict_one(&self, server: &ServerKey);

    /// A short pause on the fleet's runtime.
    fn pause(&self) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

impl<R: TransportRuntime> Evict for FleetShared<R> {
    fn evict_one(&self, server: &ServerKey) {
        let servers = self.servers();
        let waiting = (servers.by_key.get(server)).is_some_and(|s| s.pool.status().waiting > 0);
        if !waiting {
            return;
        }
        let victim = servers
            .by_key
            .iter()
            .filter(|(key, other)| *key != server && other.pool.status().idle > 0)
            .min_by_key(|(_, other)| other.last_used);
        if let Some((_, victim)) = victim {
            // The idle list is least recently used first.
            let mut first = true;
            victim.pool.retain(|_, _| !std::mem::take(&mut first));
        }
    }

    fn pause(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(R::default().sleep(EVICTION_RETRY))
    }
}

/// The cap on sessions open across a fleet's servers.
struct SessionCap {
    max: usize,
    /// Places taken: sessions open, and handshakes that hold a place.
    open: Mutex<usize>,
    /// Notified when a place is given back.
    closed: Event,
    evictor: Weak<dyn Evict>,
}

impl SessionCap {
    fn open(&self) -> usize {
        *self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn give_back(&self) {
        *self.open.lock().unwrap_or_else(PoisonError::into_inner) -= 1;
        self.closed.notify(1);
    }
}

/// A server's share of its fleet's cap, held by its session factory.
pub(crate) struct FleetPlace {
    cap: Arc<SessionCap>,
    server: ServerKey,
    /// Places its open sessions hold: given back at their close, or, for
    /// sessions dropped unclosed (their pool dropped with them idle), when
    /// the factory itself is dropped.
    held: AtomicUsize,
}

impl FleetPlace {
    /// Takes a place under the cap for one more session, closing an idle
    /// session of another server if the cap is reached, else waiting for a
    /// session to close. The place goes back when the guard drops, unless
    /// it is kept ([`Taken::keep`]).
    pub(crate) async fn take(&self) -> Taken<'_> {
        let cap = &self.cap;
        loop {
            let closed = cap.closed.listen();
            {
                let mut open = cap.open.lock().unwrap_or_else(PoisonError::into_inner);
                if *open < cap.max {
                    *open += 1;
                    return Taken {
                        place: self,
                        kept: false,
                    };
                }
            }
            // Woken by a close, or looking again shortly for an idle
            // session to close (one may go idle without any close). A pool
            // that outlived its fleet can only wait for a close.
            let pause = cap.evictor.upgrade().map(|evictor| {
                evictor.evict_one(&self.server);
                evictor.pause()
            });
            match pause {
                Some(pause) => drop(select(closed, pause).await),
                None => closed.await,
            }
        }
    }

    /// Gives back the place a closed session held.
    pub(crate) fn give_back(&self) {
        self.held.fetch_sub(1, Ordering::SeqCst);
        self.cap.give_back();
    }
}

impl Drop for FleetPlace {
    fn drop(&mut self) {
        for _ in 0..*self.held.get_mut() {
            self.cap.give_back();
        }
    }
}

/// A place under the cap, given back on drop unless kept.
pub(crate) struct Taken<'a> {
    place: &'a FleetPlace,
    kept: bool,
}

impl Taken<'_> {
    /// The session connected: it holds the place until it is closed.
    pub(crate) fn keep(mut self) {
        self.place.held.fetch_add(1, Ordering::SeqCst);
        self.kept = true;
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.place.cap.give_back();
        }
    }
}

/// A snapshot of a [`Fleet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetStatus {
    /// Sessions open (and handshakes holding a place) across all servers.
    pub open: usize,
    /// The cap on `open`.
    pub max_sessions: usize,
    /// Each server the fleet keeps, by URL.
    pub servers: Vec<ServerStatus>,
}

/// One server of a [`FleetStatus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    /// Its URL.
    pub url: Url,
    /// Its pool's occupancy.
    pub status: Status,
    /// Its pool's running totals.
    pub counters: Counters,
}

impl FleetStatus {
    /// The occupancy of all servers together (`max_size` is the cap).
    pub fn total(&self) -> Status {
        let mut total = Status {
            max_size: self.max_sessions,
            ..Status::default()
        };
        for server in &self.servers {
            let s = server.status;
            total.size += s.size;
            total.idle += s.idle;
            total.in_use += s.in_use;
            total.leases += s.leases;
            total.creating += s.creating;
            total.waiting += s.waiting;
        }
        total
    }
}
