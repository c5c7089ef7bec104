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
//! cargo run --release -p wtpool-echo -- --url https://host:4433/echo --cert-hash 3a:…:9f
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use futures::channel::oneshot;
use indicatif::{ProgressBar, ProgressStyle};
use url::Url;
use wtpool_webtransport::echo::{EchoServer, EchoServerOptions};
use wtpool_webtransport::{
    ClientOptions, SessionPool, StreamPool, TransportRuntime, client_endpoint,
};
use wtransport::tls::Sha256Digest;

#[derive(Parser, Debug, Clone)]
#[command(about = "Echo requests through wtpool's SessionPool and StreamPool, with figures")]
struct Args {
    /// Echo requests in each phase.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// The SessionPool's max_size.
    #[arg(long, default_value_t = 8)]
    sessions: usize,
    /// Each StreamPool's max_size (one StreamPool per session).
    #[arg(long, default_value_t = 16)]
    streams: usize,
    /// Bytes in each message.
    #[arg(long, default_value_t = 64)]
    message_size: usize,
    /// The runtime to drive the pools on.
    #[arg(long, value_enum, default_value_t = RuntimeKind::Tokio)]
    runtime: RuntimeKind,
    /// An echo server to use instead of the embedded one (https://…).
    #[arg(long, requires = "cert_hash")]
    url: Option<Url>,
    /// The SHA-256 hash of that server's certificate, in hex (colons allowed).
    #[arg(long, requires = "url")]
    cert_hash: Option<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum RuntimeKind {
    Tokio,
    Smol,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.requests == 0 || args.concurrency == 0 {
        return Err("--requests and --concurrency must be at least 1".into());
    }
    let (server, url, hash) = match (&args.url, &args.cert_hash) {
        (Some(url), Some(hash)) => (None, url.clone(), parse_hash(hash)?),
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
            .block_on(run::<wtpool_tokio::Tokio>(&args, url, hash))?,
        RuntimeKind::Smol => smol::block_on(run::<wtpool_smol::Smol>(&args, url, hash))?,
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

/// An error and its causes, one after the other: each layer's message once.
fn report(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
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
    let bar = ProgressBar::new(args.requests as u64).with_message(name);
    bar.set_style(
        ProgressStyle::with_template("{msg:<40} [{bar:30}] {pos}/{len} {per_sec}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
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
                bar.inc(1);
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
    bar.finish_and_clear();
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
