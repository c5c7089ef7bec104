//! The main job: WebTransport echo requests through a SessionPool and a
//! StreamPool, with figures.
//!
//! With no argument it starts an echo server on loopback (a fresh self-signed
//! certificate, pinned by hash) and sends `--requests` echo requests,
//! `--concurrency` at a time, in two phases:
//!
//! 1. SessionPool: each request borrows a pooled session and opens a new
//!    stream on it (message, finish, read the echo to its end);
//! 2. StreamPool: each request borrows a pooled stream that stays open (one
//!    StreamPool per session) and echoes a message on it.
//!
//! and prints, for each: requests, errors, objects created versus reused,
//! throughput and latency percentiles.
//!
//! ```sh
//! cargo run --release -p wtpool-echo
//! cargo run --release -p wtpool-echo -- --runtime smol
//! cargo run --release -p wtpool-echo -- --stats   # and the pools' metrics
//! cargo run --release -p wtpool-echo -- --url https://host:4433/echo --cert-hash 3a:…:9f
//! ```

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use url::Url;
use wtpool_webtransport::echo::{EchoServer, EchoServerOptions};
use wtpool_webtransport::{
    ClientOptions, SessionPool, StreamPool, TransportRuntime, client_endpoint,
};
use wtransport::tls::Sha256Digest;

// The command line is parsed with lexopt and the progress line drawn by
// hand: clap and indicatif, with their dependencies, cost about 17 s of CPU
// in a cold release build (more on a busy machine), for nine options and a
// line.

const USAGE: &str = "\
Echo requests through wtpool's SessionPool and StreamPool, with figures

Usage: wtpool-echo [OPTIONS]

Options:
      --requests <REQUESTS>          Echo requests in each phase [default: 20000]
      --concurrency <CONCURRENCY>    Requests in flight at once [default: 64]
      --sessions <SESSIONS>          The SessionPool's max_size [default: 8]
      --streams <STREAMS>            Each StreamPool's max_size (one StreamPool per session) [default: 16]
      --message-size <MESSAGE_SIZE>  Bytes in each message [default: 64]
      --runtime <RUNTIME>            The runtime to drive the pools on [default: tokio] [possible values: tokio, smol]
      --url <URL>                    An echo server to use instead of the embedded one (https://…)
      --cert-hash <CERT_HASH>        The SHA-256 hash of that server's certificate, in hex (colons allowed)
      --stats                        Print the pools' metrics (wait and create times, closes by reason)
  -h, --help                         Print help
";

#[derive(Debug, Clone)]
struct Args {
    requests: usize,
    concurrency: usize,
    sessions: usize,
    streams: usize,
    message_size: usize,
    runtime: RuntimeKind,
    url: Option<Url>,
    cert_hash: Option<Sha256Digest>,
    stats: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RuntimeKind {
    Tokio,
    Smol,
}

impl Args {
    /// The command line's options; prints the usage and exits for `--help`,
    /// and prints what was wrong and exits with 2 for a bad one.
    fn parse() -> Args {
        match Args::parse_from(lexopt::Parser::from_env()) {
            Ok(Some(args)) => args,
            Ok(None) => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            Err(error) => {
                eprintln!("error: {error}\n\nFor more information, try '--help'.");
                std::process::exit(2);
            }
        }
    }

    /// `Ok(None)` for `--help`.
    fn parse_from(mut parser: lexopt::Parser) -> Result<Option<Args>, lexopt::Error> {
        use lexopt::prelude::*;
        let mut args = Args {
            requests: 20_000,
            concurrency: 64,
            sessions: 8,
            streams: 16,
            message_size: 64,
            runtime: RuntimeKind::Tokio,
            url: None,
            cert_hash: None,
            stats: false,
        };
        while let Some(arg) = parser.next()? {
            let option = match arg {
                Short('h') | Long("help") => return Ok(None),
                Long("stats") => {
                    args.stats = true;
                    continue;
                }
                Long(option) => option.to_owned(),
                _ => return Err(arg.unexpected()),
            };
            let parser = &mut parser;
            match option.as_str() {
                "requests" => args.requests = value(parser, &option)?,
                "concurrency" => args.concurrency = value(parser, &option)?,
                "sessions" => args.sessions = value(parser, &option)?,
                "streams" => args.streams = value(parser, &option)?,
                "message-size" => args.message_size = value(parser, &option)?,
                "runtime" => args.runtime = value(parser, &option)?,
                "url" => args.url = Some(value(parser, &option)?),
                "cert-hash" => {
                    let text: String = value(parser, &option)?;
                    args.cert_hash = Some(parse_hash(&text)?);
                }
                _ => return Err(Long(&option).unexpected()),
            }
        }
        for (option, n) in [
            ("requests", args.requests),
            ("concurrency", args.concurrency),
            ("sessions", args.sessions),
            ("streams", args.streams),
        ] {
            if n == 0 {
                return Err(format!("--{option} must be at least 1").into());
            }
        }
        if args.url.is_some() != args.cert_hash.is_some() {
            return Err("--url and --cert-hash go together: give both or neither".into());
        }
        Ok(Some(args))
    }
}

/// The value of `--option`, parsed; an error names the option and the value.
fn value<T>(parser: &mut lexopt::Parser, option: &str) -> Result<T, lexopt::Error>
where
    T: std::str::FromStr<Err: std::fmt::Display>,
{
    let text = lexopt::ValueExt::string(parser.value()?)?;
    (text.parse()).map_err(|e| format!("invalid value '{text}' for '--{option}': {e}").into())
}

impl std::str::FromStr for RuntimeKind {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "tokio" => Ok(RuntimeKind::Tokio),
            "smol" => Ok(RuntimeKind::Smol),
            _ => Err("possible values: tokio, smol"),
        }
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match echo(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", wtpool::ErrorChain(&*error));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The main job, with the parsed `args`.
fn echo(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let stats = args.stats.then(stats::install);
    let (server, url, hash) = match (&args.url, &args.cert_hash) {
        (Some(url), Some(hash)) => (None, url.clone(), hash.clone()),
        _ => {
            let server = EchoServer::start(EchoServerOptions::default())?;
            let (url, hash) = (server.url(), server.certificate_hash());
            (Some(server), url, hash)
        }
    };
    println!(
        "wtpool echo: {} requests per phase, {} at a time, {} bytes each, on {:?}, against {}{}",
        args.requests,
        args.concurrency,
        args.message_size,
        args.runtime,
        url,
        if server.is_some() {
            " (embedded server)"
        } else {
            ""
        },
    );
    let reports = match args.runtime {
        RuntimeKind::Tokio => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
            .block_on(run::<wtpool_tokio::Tokio>(args, url, hash))?,
        RuntimeKind::Smol => smol::block_on(run::<wtpool_smol::Smol>(args, url, hash))?,
    };
    println!();
    println!(
        "{:<40} {:>8} {:>7} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "phase", "requests", "errors", "created", "reused", "req/s", "p50", "p99", "max"
    );
    for report in &reports {
        report.print();
    }
    if let Some(server) = server {
        println!(
            "\nserver: {} sessions and {} streams accepted",
            server.sessions_accepted(),
            server.streams_accepted()
        );
    }
    if let Some(stats) = stats {
        stats::print(&stats);
    }
    let errors: usize = reports.iter().map(|r| r.errors).sum();
    if errors > 0 {
        return Err(format!("{errors} requests failed").into());
    }
    Ok(())
}

/// A hex SHA-256 hash, with or without colons.
fn parse_hash(text: &str) -> Result<Sha256Digest, String> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    let bytes: Result<Vec<u8>, _> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("x"), 16))
        .collect();
    let bytes: [u8; 32] = bytes
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("--cert-hash {text:?} is not a SHA-256 hash in hex (64 digits)"))?;
    Ok(bytes.into())
}

/// Both phases on the runtime `R`.
async fn run<R: TransportRuntime>(
    args: &Args,
    url: Url,
    hash: Sha256Digest,
) -> Result<Vec<Report>, Box<dyn std::error::Error>> {
    let options = ClientOptions::default().with_certificate_hash(hash);
    let client = client_endpoint::<R>(&options)?;
    let sessions = SessionPool::<R>::new(client, url, args.sessions)?;
    let message = Arc::new(vec![b'w'; args.message_size]);

    let mut reports = Vec::new();
    let pool = sessions.clone();
    let msg = message.clone();
    reports.push(
        phase::<R, _, _>(args, "SessionPool (a new stream per request)", move |_| {
            let (pool, msg) = (pool.clone(), msg.clone());
            async move {
                let session = pool.acquire().await.map_err(|e| report(&e))?;
                let (mut send, mut recv) = session
                    .open_bi()
                    .await
                    .map_err(|e| report(&e))?
                    .await
                    .map_err(|e| report(&e))?;
                send.write_all(&msg).await.map_err(|e| report(&e))?;
                send.finish().await.map_err(|e| report(&e))?;
                let mut echoed = Vec::with_capacity(msg.len());
                let mut chunk = [0u8; 4096];
                while let Some(n) = recv.read(&mut chunk).await.map_err(|e| report(&e))? {
                    echoed.extend_from_slice(&chunk[..n]);
                }
                check_echo(&msg, &echoed)
            }
        })
        .await
        .with_counters(sessions.counters()),
    );

    // One StreamPool per session, each over a session taken out of the SessionPool.
    let mut stream_pools = Vec::new();
    for _ in 0..args.sessions {
        let session = sessions.acquire().await?.detach();
        stream_pools.push(StreamPool::<R>::new(session, args.streams)?);
    }
    let stream_pools = Arc::new(stream_pools);
    let pools = stream_pools.clone();
    let msg = message.clone();
    let mut report = phase::<R, _, _>(args, "StreamPool (pooled open streams)", move |i| {
        let (pools, msg) = (pools.clone(), msg.clone());
        async move {
            let pool = &pools[i % pools.len()];
            let mut stream = pool.acquire().await.map_err(|e| report(&e))?;
            stream.write_all(&msg).await.map_err(|e| report(&e))?;
            let mut echoed = vec![0u8; msg.len()];
            stream
                .read_exact(&mut echoed)
                .await
                .map_err(|e| report(&e))?;
            stream.mark_complete();
            check_echo(&msg, &echoed)
        }
    })
    .await;
    report.created = stream_pools.iter().map(|p| p.counters().created).sum();
    report.reused = stream_pools.iter().map(|p| p.counters().reused).sum();
    reports.push(report);

    for pool in stream_pools.iter() {
        let _ = pool.close().await;
    }
    let _ = sessions.close().await;
    Ok(reports)
}

/// An error and its causes, each layer's message once.
fn report(error: &dyn std::error::Error) -> String {
    wtpool::ErrorChain(error).to_string()
}

fn check_echo(sent: &[u8], echoed: &[u8]) -> Result<(), String> {
    if sent == echoed {
        Ok(())
    } else {
        Err(format!(
            "sent {} bytes, got {} different ones back",
            sent.len(),
            echoed.len()
        ))
    }
}

/// Runs `args.requests` calls of `request`, `args.concurrency` at a time,
/// each worker a task of its own on the runtime `R`.
async fn phase<R, Fut, Req>(args: &Args, name: &'static str, request: Req) -> Report
where
    R: TransportRuntime,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
    Req: Fn(usize) -> Fut + Send + Sync + 'static,
{
    let bar = Arc::new(Progress::new(name, args.requests));
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.min(args.requests) {
        let (request, next, bar) = (request.clone(), next.clone(), bar.clone());
        let total = args.requests;
        let (done, result) = oneshot::channel();
        wtpool::Runtime::spawn(&R::default(), async move {
            let mut latencies = Vec::new();
            let mut errors = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let start = Instant::now();
                match request(i).await {
                    Ok(()) => latencies.push(start.elapsed()),
                    Err(error) => errors.push(error),
                }
                bar.inc();
            }
            let _ = done.send((latencies, errors));
        });
        workers.push(result);
    }
    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    for worker in workers {
        let (l, e) = worker.await.expect("a worker ended without reporting");
        latencies.extend(l);
        errors.extend(e);
    }
    let elapsed = started.elapsed();
    bar.clear();
    if let Some(first) = errors.first() {
        eprintln!("{name}: {} errors, the first: {first}", errors.len());
    }
    latencies.sort();
    Report {
        name,
        requests: args.requests,
        errors: errors.len(),
        created: 0,
        reused: 0,
        elapsed,
        latencies,
    }
}

/// A progress line on stderr, `name [=====>    ] done/total rate/s`, redrawn
/// in place (`\r`) at each percent, and only when stderr is a terminal.
struct Progress {
    name: &'static str,
    total: usize,
    /// Redraw every `step` requests.
    step: usize,
    visible: bool,
    started: Instant,
    done: AtomicUsize,
    /// The count last drawn and the width of the line on screen (workers draw
    /// from several threads: the lock keeps one line, and the newest count).
    drawn: Mutex<(usize, usize)>,
}

impl Progress {
    const WIDTH: usize = 30;

    fn new(name: &'static str, total: usize) -> Progress {
        Progress {
            name,
            total,
            step: (total / 100).max(1),
            visible: std::io::stderr().is_terminal(),
            started: Instant::now(),
            done: AtomicUsize::new(0),
            drawn: Mutex::new((0, 0)),
        }
    }

    fn inc(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if !self.visible || (!done.is_multiple_of(self.step) && done != self.total) {
            return;
        }
        let mut drawn = self.drawn.lock().unwrap_or_else(|e| e.into_inner());
        if done <= drawn.0 {
            return;
        }
        let filled = done * Self::WIDTH / self.total.max(1);
        let bar: String = (0..Self::WIDTH)
            .map(|i| match i.cmp(&filled) {
                std::cmp::Ordering::Less => '=',
                std::cmp::Ordering::Equal => '>',
                std::cmp::Ordering::Greater => ' ',
            })
            .collect();
        let rate = done as f64 / self.started.elapsed().as_secs_f64();
        let line = format!(
            "{:<40} [{bar}] {done}/{} {rate:.0}/s",
            self.name, self.total
        );
        // Padded to the previous line's width, to cover all of it.
        let width = drawn.1;
        let _ = write!(std::io::stderr(), "\r{line:<width$}");
        *drawn = (done, drawn.1.max(line.chars().count()));
    }

    /// Blanks the line, if one was drawn.
    fn clear(&self) {
        let width = self.drawn.lock().unwrap_or_else(|e| e.into_inner()).1;
        if width > 0 {
            let _ = write!(std::io::stderr(), "\r{:width$}\r", "");
        }
    }
}

struct Report {
    name: &'static str,
    requests: usize,
    errors: usize,
    created: u64,
    reused: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Report {
    fn with_counters(mut self, counters: wtpool::Counters) -> Self {
        self.created = counters.created;
        self.reused = counters.reused;
        self
    }

    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((self.latencies.len() as f64) * p).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }

    fn print(&self) {
        let rate = (self.requests - self.errors) as f64 / self.elapsed.as_secs_f64();
        println!(
            "{:<40} {:>8} {:>7} {:>8} {:>8} {:>9.0} {:>9} {:>9} {:>9}",
            self.name,
            self.requests,
            self.errors,
            self.created,
            self.reused,
            rate,
            micros(self.percentile(0.50)),
            micros(self.percentile(0.99)),
            micros(self.percentile(1.0)),
        );
    }
}

fn micros(d: Duration) -> String {
    format!("{} us", d.as_micros())
}

/// `--stats`: what the pools report through the `metrics` facade (their
/// `metrics` feature), gathered by metrics-util's recorder and printed at the
/// end. The session pool is named for its URL, the stream pools `streams`.
mod stats {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

    /// Installs the recorder; call before the pools are built.
    pub fn install() -> Snapshotter {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("no other metrics recorder");
        snapshotter
    }

    /// Every metric recorded, one line each: counters with their count,
    /// histograms (in seconds) with their count and percentiles in µs.
    pub fn print(snapshotter: &Snapshotter) {
        let mut lines: Vec<String> = (snapshotter.snapshot().into_vec().into_iter())
            .map(|(key, _, _, value)| {
                let (_, key) = key.into_parts();
                let labels: Vec<String> = (key.labels())
                    .map(|label| format!("{}={}", label.key(), label.value()))
                    .collect();
                let name = format!("{}{{{}}}", key.name(), labels.join(","));
                match value {
                    DebugValue::Counter(n) => format!("{name:<90} {n}"),
                    DebugValue::Gauge(g) => format!("{name:<90} {g}"),
                    DebugValue::Histogram(samples) if samples.is_empty() => {
                        format!("{name:<90} count 0")
                    }
                    DebugValue::Histogram(samples) => {
                        let mut micros: Vec<f64> =
                            samples.iter().map(|s| s.into_inner() * 1e6).collect();
                        micros.sort_by(f64::total_cmp);
                        let at = |p: f64| {
                            let rank = ((micros.len() as f64) * p).ceil() as usize;
                            micros[rank.clamp(1, micros.len()) - 1]
                        };
                        format!(
                            "{name:<90} count {} p50 {:.0} us p99 {:.0} us max {:.0} us",
                            micros.len(),
                            at(0.5),
                            at(0.99),
                            at(1.0)
                        )
                    }
                }
            })
            .collect();
        lines.sort();
        println!("\nmetrics (--stats):");
        for line in lines {
            println!("{line}");
        }
    }
}
