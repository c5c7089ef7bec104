//! The pools' `tracing` spans and events and their `metrics` (features
//! `tracing` and `metrics`, on in this crate's dev-dependencies), seen by a
//! real subscriber (a `tracing-subscriber` layer that keeps what it sees)
//! and a real recorder (`metrics-util`'s `DebuggingRecorder`).
//!
//! Both are process-wide, so each test names its pool and looks only at
//! what carries that name.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};
use wtpool_tokio::echo::{EchoServer, EchoServerOptions};
use wtpool_tokio::{
    ClientOptions, Factory, Pool, PoolError, SessionPool, TimeoutKind, client_endpoint, observe,
};

// ---- what the subscriber saw ----

/// A span (when it closed, with its fields as they were then) or an event.
#[derive(Debug, Clone)]
struct Seen {
    span: bool,
    /// The span's name, or the event's message.
    name: String,
    level: Level,
    fields: BTreeMap<String, String>,
    /// The name of the span it happened in (an event) or under (a span).
    parent: Option<String>,
    /// That span's `pool` field.
    parent_pool: Option<String>,
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

/// Keeps every span and event it sees in [`SEEN`].
struct Keep;

static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Keep {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        ctx.span(id)
            .expect("a new span")
            .extensions_mut()
            .insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("a live span");
        let mut extensions = span.extensions_mut();
        values.record(extensions.get_mut::<Fields>().expect("kept at birth"));
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let name = fields.0.remove("message").unwrap_or_default();
        let parent = ctx.event_span(event);
        let parent_pool = parent.as_ref().and_then(|span| {
            let extensions = span.extensions();
            extensions.get::<Fields>()?.0.get("pool").cloned()
        });
        lock(&SEEN).push(Seen {
            span: false,
            name,
            level: *event.metadata().level(),
            fields: fields.0,
            parent: parent.map(|span| span.name().to_owned()),
            parent_pool,
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let span = ctx.span(&id).expect("a closing span");
        let fields = span
            .extensions()
            .get::<Fields>()
            .map(|fields| fields.0.clone())
            .unwrap_or_default();
        lock(&SEEN).push(Seen {
            span: true,
            name: span.name().to_owned(),
            level: *span.metadata().level(),
            fields,
            parent: span.parent().map(|parent| parent.name().to_owned()),
            parent_pool: None,
        });
    }
}

// ---- what the recorder saw ----

/// A metric: its name and labels, sorted.
type MetricKey = (String, Vec<(String, String)>);

/// Every value recorded so far: counters summed, histograms' samples kept.
/// (A snapshot drains the recorder, so they are gathered here.)
#[derive(Default)]
struct Recorded {
    counters: HashMap<MetricKey, u64>,
    histograms: HashMap<MetricKey, Vec<f64>>,
}

static RECORDED: Mutex<Option<Recorded>> = Mutex::new(None);

fn install() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        tracing::subscriber::set_global_default(Registry::default().with(Keep))
            .expect("the only subscriber");
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("the only recorder");
        snapshotter
    })
}

/// The metrics recorded so far for the pool named `pool`, labels other than
/// `pool` kept: counters, and the histograms' sample counts and samples.
fn metrics_of(pool: &str) -> (HashMap<MetricKey, u64>, HashMap<MetricKey, Vec<f64>>) {
    let mut recorded = lock(&RECORDED);
    let recorded = recorded.get_or_insert_with(Recorded::default);
    for (key, _, _, value) in install().snapshot().into_vec() {
        let (_, key) = key.into_parts();
        let mut labels: Vec<(String, String)> = key
            .labels()
            .map(|label| (label.key().to_owned(), label.value().to_owned()))
            .collect();
        labels.sort();
        let key = (key.name().to_owned(), labels);
        match value {
            DebugValue::Counter(n) => *recorded.counters.entry(key).or_default() += n,
            DebugValue::Histogram(samples) => recorded
                .histograms
                .entry(key)
                .or_default()
                .extend(samples.into_iter().map(|sample| sample.into_inner())),
            DebugValue::Gauge(_) => {}
        }
    }
    let of_pool = |key: &MetricKey| {
        let mut labels = key.1.clone();
        let at = labels.iter().position(|(k, v)| k == "pool" && v == pool)?;
        labels.remove(at);
        Some((key.0.clone(), labels))
    };
    let counters = (recorded.counters.iter())
        .filter_map(|(key, n)| Some((of_pool(key)?, *n)))
        .collect();
    let histograms = (recorded.histograms.iter())
        .filter_map(|(key, samples)| Some((of_pool(key)?, samples.clone())))
        .collect();
    (counters, histograms)
}

fn key(name: &str, labels: &[(&str, &str)]) -> MetricKey {
    let mut labels: Vec<(String, String)> = (labels.iter())
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    (name.to_owned(), labels)
}

/// What was seen of the pool named `pool`: its spans and events, and the
/// events that happened in its spans (the factory's own).
fn seen_of(pool: &str) -> Vec<Seen> {
    let of_pool = |name: Option<&String>| name.is_some_and(|name| name == pool);
    lock(&SEEN)
        .iter()
        .filter(|seen| of_pool(seen.fields.get("pool")) || of_pool(seen.parent_pool.as_ref()))
        .cloned()
        .collect()
}

/// The spans (`span`) or events named `name` among `seen`.
fn named<'a>(seen: &'a [Seen], span: bool, name: &str) -> Vec<&'a Seen> {
    (seen.iter())
        .filter(|s| s.span == span && s.name == name)
        .collect()
}

fn count(seen: &[Seen], span: bool, name: &str) -> usize {
    named(seen, span, name).len()
}

/// The events named `name` among `seen`.
fn events<'a>(seen: &'a [Seen], name: &str) -> Vec<&'a Seen> {
    named(seen, false, name)
}

/// Waits, yielding to the runtime, until `done` holds of what was seen of
/// `pool`; fails after 10 s of real time (a bound, not a pace: each check
/// follows a step of the runtime).
async fn until(pool: &str, done: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = seen_of(pool);
        if done(&seen) {
            return seen;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not seen in 10 s; seen of {pool}: {seen:#?}"
        );
        tokio::task::yield_now().await;
    }
}

// ---- a factory that can fail and kill on demand ----

#[derive(Default)]
struct Numbers {
    next: AtomicU64,
    fail_next: AtomicBool,
    dead: Mutex<Vec<u64>>,
}

/// How long each creation of [`Numbers`] takes (on tokio's clock, paused in
/// the tests that use it, so that every duration reported is exact).
const CREATION: Duration = Duration::from_millis(30);

impl Factory for Numbers {
    type Object = u64;
    type Error = io::Error;

    async fn create(&self) -> Result<u64, io::Error> {
        tracing::info!("the factory makes a number");
        tokio::time::sleep(CREATION).await;
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(io::Error::other("no numbers today"));
        }
        Ok(self.next.fetch_add(1, Ordering::SeqCst))
    }

    fn is_alive(&self, n: &mut u64) -> bool {
        !lock(&self.dead).contains(n)
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn acquire_create_close_and_failures_are_traced_and_measured() {
    install();
    let pool: Pool<Numbers> = Pool::builder(Numbers::default())
        .name("traced-numbers")
        .max_size(1)
        .wait_timeout(Duration::from_millis(250))
        .build()
        .unwrap();
    assert_eq!(pool.name(), "traced-numbers");

    // A creation, then a wait that times out while the one object is out.
    let first = pool.acquire().await.unwrap();
    let timed_out = pool.acquire().await.unwrap_err();
    assert!(matches!(timed_out, PoolError::Timeout(TimeoutKind::Wait)));
    // The object dies and is given back: closed as dead; a creation fails.
    lock(&pool.factory().dead).push(*first);
    drop(first);
    pool.factory().fail_next.store(true, Ordering::SeqCst);
    let failed = pool.acquire().await.unwrap_err();
    assert!(matches!(failed, PoolError::Create(_)));
    let second = pool.acquire().await.unwrap();
    drop(second);
    pool.close().await.unwrap();
    pool.close().await.unwrap();
    assert!(matches!(pool.acquire().await, Err(PoolError::Closed)));

    let seen = until("traced-numbers", |seen| count(seen, true, "create") == 3).await;

    // Each acquire has its span, with its wait, at DEBUG: 5 acquires.
    let acquires = named(&seen, true, "acquire");
    assert_eq!(acquires.len(), 5, "{seen:#?}");
    for span in &acquires {
        assert_eq!(span.level, Level::DEBUG);
        assert!(span.fields["wait_us"].parse::<u64>().is_ok(), "{span:?}");
    }
    // Each served acquire waited for its creation: exactly that long.
    for acquired in events(&seen, "acquired") {
        assert_eq!(acquired.level, Level::DEBUG);
        assert_eq!(acquired.fields["wait_us"], "30000");
    }
    // The timed-out one waited the wait timeout (paused time: exactly).
    let timeout = events(&seen, "acquire failed");
    let timeout = (timeout.iter())
        .find(|e| e.fields["error"] == "wait_timeout")
        .expect("the wait timeout reported");
    assert_eq!(timeout.level, Level::WARN);
    assert_eq!(timeout.parent.as_deref(), Some("acquire"));
    assert_eq!(timeout.fields["wait_us"], "250000");
    assert!(
        timeout.fields["cause"].contains("wait_timeout"),
        "{timeout:?}"
    );
    assert_eq!(events(&seen, "acquired").len(), 2);
    let closed = (events(&seen, "acquire failed").into_iter())
        .find(|e| e.fields["error"] == "closed")
        .expect("the acquire after close reported");
    assert_eq!(closed.level, Level::DEBUG);

    // Each creation has its span, without a parent, and the factory's own
    // event happens inside it.
    for span in named(&seen, true, "create") {
        assert_eq!(span.parent, None, "{span:?}");
        assert_eq!(span.level, Level::DEBUG);
    }
    let created = events(&seen, "created");
    assert_eq!(created.len(), 2);
    for created in &created {
        assert_eq!(created.level, Level::DEBUG);
        assert_eq!(created.fields["duration_us"], "30000");
    }
    let create_failed = events(&seen, "create failed");
    assert_eq!(create_failed.len(), 1);
    assert_eq!(create_failed[0].level, Level::WARN);
    assert_eq!(create_failed[0].fields["outcome"], "error");
    assert_eq!(create_failed[0].fields["duration_us"], "30000");
    assert_eq!(
        create_failed[0].fields["cause"], "no numbers today",
        "the factory's error, each message once"
    );
    let create_error = (events(&seen, "acquire failed").into_iter())
        .find(|e| e.fields["error"] == "create")
        .expect("the failed creation's waiter reported");
    assert_eq!(
        create_error.fields["cause"],
        "could not create a pool object: no numbers today"
    );
    // The factory's own event happens in the creation's span.
    let factory_events = events(&seen, "the factory makes a number");
    assert_eq!(factory_events.len(), 3);
    for event in factory_events {
        assert_eq!(event.parent.as_deref(), Some("create"));
    }

    // Closes, with their reasons: the dead one, then the idle one at close.
    let closing = events(&seen, "closing");
    let reasons: Vec<&str> = closing
        .iter()
        .map(|e| e.fields["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["dead", "pool_closed"]);
    assert!(closing.iter().all(|e| e.level == Level::DEBUG));
    assert_eq!(closing[0].fields["object"], "0");
    assert_eq!(
        events(&seen, "pool closed").len(),
        1,
        "closed twice, told once"
    );
    assert_eq!(events(&seen, "pool closed")[0].level, Level::INFO);

    // The same story in metrics.
    let (counters, histograms) = metrics_of("traced-numbers");
    // In seconds: each served acquire waited 30 ms, each creation took 30 ms.
    let seconds = |name: &str, labels: &[(&str, &str)]| -> Vec<f64> {
        let samples = &histograms[&key(name, labels)];
        samples.iter().map(|s| (s * 1e6).round() / 1e6).collect()
    };
    assert_eq!(seconds(observe::ACQUIRE_WAIT_SECONDS, &[]), [0.03, 0.03]);
    assert_eq!(
        seconds(observe::CREATE_SECONDS, &[("outcome", "created")]),
        [0.03, 0.03]
    );
    assert_eq!(
        seconds(observe::CREATE_SECONDS, &[("outcome", "error")]),
        [0.03]
    );
    for (error, n) in [("wait_timeout", 1), ("create", 1), ("closed", 1)] {
        assert_eq!(
            counters[&key(observe::ACQUIRE_FAILURES, &[("error", error)])],
            n,
            "{error}"
        );
    }
    for reason in ["dead", "pool_closed"] {
        assert_eq!(
            counters[&key(observe::CLOSED, &[("reason", reason)])],
            1,
            "{reason}"
        );
    }
}

/// An error whose `Display` panics, when asked to.
#[derive(Debug)]
struct Moody {
    panics: bool,
}

impl std::fmt::Display for Moody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.panics {
            panic!("this error cannot be displayed");
        }
        f.write_str("moody")
    }
}

impl std::error::Error for Moody {}

/// A factory whose next creation hangs, panics or fails with an error that
/// cannot be displayed, and whose next close panics, on request.
#[derive(Default)]
struct Whims {
    next: AtomicU64,
    hang: AtomicBool,
    panic: AtomicBool,
    undisplayable: AtomicBool,
    panic_close: AtomicBool,
    dead: Mutex<Vec<u64>>,
}

impl Factory for Whims {
    type Object = u64;
    type Error = Moody;

    async fn create(&self) -> Result<u64, Moody> {
        if self.hang.swap(false, Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.panic.swap(false, Ordering::SeqCst) {
            panic!("the factory panics, as asked");
        }
        if self.undisplayable.swap(false, Ordering::SeqCst) {
            return Err(Moody { panics: true });
        }
        Ok(self.next.fetch_add(1, Ordering::SeqCst))
    }

    fn is_alive(&self, n: &mut u64) -> bool {
        !lock(&self.dead).contains(n)
    }

    async fn close(&self, _: u64) -> Result<(), Moody> {
        if self.panic_close.swap(false, Ordering::SeqCst) {
            panic!("the factory's close panics, as asked");
        }
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn every_outcome_and_reason_is_reported() {
    install();
    const NAME: &str = "whims";
    let pool: Pool<Whims> = Pool::builder(Whims::default())
        .name(NAME)
        .max_size(2)
        // A lost slot would leave an acquire waiting: this makes it fail.
        .wait_timeout(Duration::from_secs(3600))
        .create_timeout(Duration::from_secs(1))
        .idle_timeout(Duration::from_secs(10))
        .max_lifetime(Duration::from_secs(100))
        .build()
        .unwrap();
    let whims = pool.factory();

    // Creations that time out and panic.
    whims.hang.store(true, Ordering::SeqCst);
    let timed_out = pool.acquire().await.map(drop);
    assert!(matches!(
        timed_out,
        Err(PoolError::Timeout(TimeoutKind::Create))
    ));
    whims.panic.store(true, Ordering::SeqCst);
    let panicked = pool.acquire().await.map(drop);
    assert!(matches!(panicked, Err(PoolError::CreatePanicked)));

    // An error that cannot be displayed costs no slot and no result.
    whims.undisplayable.store(true, Ordering::SeqCst);
    let undisplayable = pool.acquire().await.map(drop);
    assert!(matches!(
        undisplayable,
        Err(PoolError::Create(Moody { panics: true }))
    ));
    assert_eq!((pool.status().size, pool.status().creating), (0, 0));

    // A cancelled acquire: both objects out, the caller gives up after 10 ms.
    let (a, b) = (pool.acquire().await.unwrap(), pool.acquire().await.unwrap());
    let gave_up = tokio::time::timeout(Duration::from_millis(10), pool.acquire()).await;
    assert!(gave_up.is_err());

    // Closes for each reason: shrunk, retain, idle timeout, max lifetime, and
    // a close that panics.
    drop((a, b));
    pool.resize(1).unwrap();
    pool.resize(2).unwrap();
    assert_eq!(pool.retain(|_, _| false), 1);
    drop(pool.acquire().await.unwrap());
    tokio::time::sleep(Duration::from_secs(11)).await;
    let old = pool.acquire().await.unwrap();
    tokio::time::sleep(Duration::from_secs(101)).await;
    drop(old);
    let dead = pool.acquire().await.unwrap();
    lock(&whims.dead).push(*dead);
    whims.panic_close.store(true, Ordering::SeqCst);
    drop(dead);

    let seen = until(NAME, |seen| count(seen, false, "close failed") == 1).await;
    let outcomes: Vec<&str> = (events(&seen, "create failed").iter())
        .map(|e| e.fields["outcome"].as_str())
        .collect();
    // The undisplayable error's events are lost: their formatting panicked
    // (and was caught). Its metrics are not (below).
    assert_eq!(outcomes, ["timeout", "panic"]);
    assert_eq!(
        events(&seen, "create failed")[0].fields["duration_us"],
        "1000000"
    );
    let kinds: Vec<&str> = (events(&seen, "acquire failed").iter())
        .map(|e| e.fields["error"].as_str())
        .collect();
    assert_eq!(kinds, ["create_timeout", "create_panicked"]);
    let cancelled = events(&seen, "acquire cancelled");
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].level, Level::DEBUG);
    assert_eq!(cancelled[0].fields["wait_us"], "10000");
    let reasons: Vec<&str> = (events(&seen, "closing").iter())
        .map(|e| e.fields["reason"].as_str())
        .collect();
    assert_eq!(
        reasons,
        ["shrunk", "retain", "idle_timeout", "max_lifetime", "dead"]
    );
    let close_failed = events(&seen, "close failed");
    assert_eq!(close_failed[0].level, Level::WARN);
    assert_eq!(close_failed[0].fields["cause"], "the factory panicked");

    let (counters, histograms) = metrics_of(NAME);
    for (error, n) in [
        ("create_timeout", 1),
        ("create_panicked", 1),
        ("create", 1),
        ("cancelled", 1),
    ] {
        assert_eq!(
            counters[&key(observe::ACQUIRE_FAILURES, &[("error", error)])],
            n,
            "{error}"
        );
    }
    for outcome in ["timeout", "panic", "error"] {
        assert_eq!(
            histograms[&key(observe::CREATE_SECONDS, &[("outcome", outcome)])].len(),
            1,
            "{outcome}"
        );
    }
    for reason in ["shrunk", "retain", "idle_timeout", "max_lifetime", "dead"] {
        assert_eq!(
            counters[&key(observe::CLOSED, &[("reason", reason)])],
            1,
            "{reason}"
        );
    }
    assert_eq!(counters[&key(observe::CLOSE_FAILURES, &[])], 1);
}

/// Counts the closes the factory refuses.
struct FailingClose;

impl Factory for FailingClose {
    type Object = u64;
    type Error = io::Error;

    async fn create(&self) -> Result<u64, io::Error> {
        Ok(7)
    }

    async fn close(&self, _: u64) -> Result<(), io::Error> {
        Err(io::Error::other("the door is stuck"))
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_close_is_reported() {
    install();
    let pool: Pool<FailingClose> = Pool::builder(FailingClose)
        .name("failing-close")
        .build()
        .unwrap();
    drop(pool.acquire().await.unwrap());
    assert!(pool.close().await.is_err());
    let seen = until("failing-close", |seen| {
        count(seen, false, "close failed") == 1
    })
    .await;
    let failed = seen.iter().find(|s| s.name == "close failed").unwrap();
    assert_eq!(failed.level, Level::WARN);
    assert_eq!(failed.fields["cause"], "the door is stuck");
    let (counters, _) = metrics_of("failing-close");
    assert_eq!(counters[&key(observe::CLOSE_FAILURES, &[])], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_session_is_reported_in_its_creation() {
    install();
    let server = EchoServer::start(EchoServerOptions::default()).expect("the loopback echo server");
    let mut public = server.url();
    public.set_path("/no-such-path");
    // Credentials, a query and a fragment, which must reach no log or label.
    let mut url = public.clone();
    url.set_username("user").unwrap();
    url.set_password(Some("secret")).unwrap();
    url.set_query(Some("token=abc"));
    url.set_fragment(Some("frag"));
    let client = client_endpoint(&ClientOptions {
        bind: Some((std::net::Ipv4Addr::LOCALHOST, 0).into()),
        ..ClientOptions::default().with_certificate_hash(server.certificate_hash())
    })
    .expect("a client endpoint");
    let pool = SessionPool::builder(client, url.clone(), 2)
        .unwrap()
        .options(|o| o.refusal_backoff(std::time::Duration::from_secs(60)))
        .build()
        .unwrap();
    // The pool is named for its URL, credentials, query and fragment left out.
    assert_eq!(pool.name(), public.as_str());
    let refused = pool.acquire().await.unwrap_err();
    assert!(matches!(refused, PoolError::Create(_)), "{refused:?}");

    // wtpool-webtransport's event, in the creation's span.
    let seen = until(public.as_str(), |seen| {
        count(seen, false, "session refused by the server") == 1
            && count(seen, false, "create failed") == 1
    })
    .await;
    let refusal = (seen.iter())
        .find(|s| s.name == "session refused by the server")
        .unwrap();
    assert_eq!(refusal.level, Level::WARN);
    assert_eq!(refusal.parent.as_deref(), Some("create"));
    assert_eq!(refusal.fields["url"], public.as_str());
    let leaked = (lock(&SEEN).iter())
        .filter(|s| format!("{:?}", s.fields).contains("secret"))
        .count();
    assert_eq!(leaked, 0, "the password reached an event");
    let failed = seen.iter().find(|s| s.name == "create failed").unwrap();
    assert!(
        failed.fields["cause"].contains("refused the WebTransport session"),
        "{failed:?}"
    );
    // In the back-off the refusal started, the next acquire fails at once,
    // counted as `refused`.
    let backed_off = pool.acquire().await.unwrap_err();
    assert!(
        matches!(backed_off, PoolError::Refused { .. }),
        "{backed_off:?}"
    );
    let (counters, _) = metrics_of(public.as_str());
    assert_eq!(
        counters[&key(observe::ACQUIRE_FAILURES, &[("error", "create")])],
        1
    );
    assert_eq!(
        counters[&key(observe::ACQUIRE_FAILURES, &[("error", "refused")])],
        1
    );
    pool.close().await.unwrap();
}
