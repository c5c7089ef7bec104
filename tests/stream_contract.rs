//! A property test of the StreamPool's reuse contract against the real echo
//! server on loopback, on both runtimes: borrowers in turn, each with a byte
//! of its own, drive random interleavings of writes, reads, cancelled
//! writes and reads (their futures dropped after one poll, or by a short
//! timeout), finishes, resets, marks of completion and releases over one
//! pooled stream (`max_size` 1). Every byte a borrower reads must be its own:
//! no borrower ever reads a byte written for another borrower's exchange.
//!
//! The borrowers are honest as far as they know: one marks its exchange
//! complete once it read back at least every byte of its completed writes.
//! A write or a read it gave up on halfway is bytes it does not know of (it
//! may even have read back part of the echo of such a write); the pool must
//! catch that tear.
//!
//! Cases come from proptest with a seed printed at the start;
//! `WTPOOL_STREAM_SEED=<n>` replays a run, `WTPOOL_STREAM_CASES=<n>` sets how
//! many cases each runtime plays (64 by default).

#[macro_use]
#[path = "support/harness.rs"]
mod harness;

use std::time::Duration;

use futures::FutureExt;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use wtpool_webtransport::echo::{EchoServer, EchoServerOptions};
use wtpool_webtransport::{ClientOptions, SessionPool, StreamPool, client_endpoint};
use wtransport::VarInt;

use harness::{TestRuntime, within};

/// What a borrower does next.
#[derive(Debug, Clone)]
enum Op {
    /// Writes `len` bytes; with `cancel`, the write is dropped after one poll.
    Write {
        len: usize,
        cancel: bool,
    },
    /// The same through tokio's `AsyncWriteExt::write_all`, on the
    /// poll-based trait.
    PollWrite {
        len: usize,
        cancel: bool,
    },
    /// Reads what is there; with `cancel`, the read is dropped after one poll.
    Read {
        cancel: bool,
    },
    /// Reads exactly `len` bytes through futures' `AsyncReadExt::read_exact`,
    /// given up after `GIVE_UP` (a cancellation, when fewer came back).
    PollReadExact {
        len: usize,
    },
    /// Reads until every byte of its completed writes came back.
    ReadAll,
    /// Marks the exchange complete, if the borrower believes it is.
    MarkComplete,
    Finish,
    Reset,
    /// Gives the stream back; the next borrower takes one.
    Release,
}

/// A write that cannot complete in one poll: larger than the flow-control
/// windows.
const LARGE: usize = 4 << 20;
/// How long a read or a write may take before the borrower gives up on it
/// (a cancellation like any other). Only a stream that is stalled by an
/// earlier torn write ever waits this long.
const GIVE_UP: Duration = Duration::from_millis(100);

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..=64).prop_map(|len| Op::Write { len, cancel: false }),
        1 => prop_oneof![Just(8usize), Just(LARGE)].prop_map(|len| Op::Write { len, cancel: true }),
        1 => (1usize..=64).prop_map(|len| Op::PollWrite { len, cancel: false }),
        1 => prop_oneof![Just(8usize), Just(LARGE)]
            .prop_map(|len| Op::PollWrite { len, cancel: true }),
        1 => (1usize..=64).prop_map(|len| Op::PollReadExact { len }),
        2 => any::<bool>().prop_map(|cancel| Op::Read { cancel }),
        4 => Just(Op::ReadAll),
        4 => Just(Op::MarkComplete),
        1 => Just(Op::Finish),
        1 => Just(Op::Reset),
        4 => Just(Op::Release),
    ]
}

/// What the test saw over all its cases.
#[derive(Debug, Default)]
struct Tally {
    bytes_read: usize,
    checkouts: usize,
    reused: usize,
}

/// One case: a stream pool of one stream on `session`, borrowers in turn.
async fn play<R: TestRuntime>(
    session: &wtransport::Connection,
    ops: &[Op],
    tally: &mut Tally,
) -> Result<(), String> {
    let streams = StreamPool::<R>::new(session.clone(), 1).map_err(|e| e.to_string())?;
    let mut ops = ops.iter().peekable();
    let mut borrower = 0u8;
    let mut last_id = None;
    while ops.peek().is_some() {
        // Each borrower writes a byte of its own (never 0, the reads' filler).
        borrower = borrower % 250 + 1;
        let tag = borrower;
        let mut stream = streams.acquire().await.map_err(|e| e.to_string())?;
        tally.checkouts += 1;
        if last_id == Some(stream.id()) {
            tally.reused += 1;
        }
        last_id = Some(stream.id());
        // Bytes of completed writes, and bytes read back.
        let (mut written, mut read) = (0, 0);
        let mut buffer = [0; 256];
        let mut check = |bytes: &[u8], read: &mut usize| -> Result<(), String> {
            if let Some(other) = bytes.iter().find(|&&b| b != tag) {
                return Err(format!(
                    "borrower {tag} read byte {other}, written for another borrower"
                ));
            }
            *read += bytes.len();
            tally.bytes_read += bytes.len();
            Ok(())
        };
        for op in ops.by_ref() {
            match *op {
                Op::Write { len, cancel } => {
                    let message = vec![tag; len];
                    let done = if cancel {
                        stream.write_all(&message).now_or_never()
                    } else {
                        within::<R, _>(GIVE_UP, stream.write_all(&message)).await
                    };
                    if let Some(Ok(())) = done {
                        written += len;
                    }
                }
                Op::PollWrite { len, cancel } => {
                    let message = vec![tag; len];
                    let write = tokio::io::AsyncWriteExt::write_all(&mut *stream, &message);
                    let done = if cancel {
                        write.now_or_never()
                    } else {
                        within::<R, _>(GIVE_UP, write).await
                    };
                    if let Some(Ok(())) = done {
                        written += len;
                    }
                }
                Op::PollReadExact { len } => {
                    let mut exact = vec![0; len];
                    let read_exact = futures::AsyncReadExt::read_exact(&mut *stream, &mut exact);
                    if let Some(Ok(())) = within::<R, _>(GIVE_UP, read_exact).await {
                        check(&exact, &mut read)?;
                    }
                }
                Op::Read { cancel } => {
                    let done = if cancel {
                        stream.read(&mut buffer).now_or_never()
                    } else {
                        within::<R, _>(GIVE_UP, stream.read(&mut buffer)).await
                    };
                    if let Some(Ok(Some(n))) = done {
                        check(&buffer[..n], &mut read)?;
                    }
                }
                Op::ReadAll => {
                    while read < written {
                        let want = (written - read).min(buffer.len());
                        match within::<R, _>(GIVE_UP, stream.read(&mut buffer[..want])).await {
                            Some(Ok(Some(n))) => check(&buffer[..n], &mut read)?,
                            _ => break,
                        }
                    }
                }
                Op::MarkComplete => {
                    // Every byte it knows it wrote came back (and maybe
                    // more: the echo of a write it gave up on).
                    if read >= written {
                        stream.mark_complete();
                    }
                }
                Op::Finish => {
                    let _ = within::<R, _>(GIVE_UP, stream.finish()).await;
                }
                Op::Reset => stream.reset(VarInt::from_u32(1)),
                Op::Release => break,
            }
        }
    }
    streams.close().await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Plays the cases on one session to a fresh echo server.
async fn borrowers_never_read_each_others_bytes<R: TestRuntime>() {
    let seed: u64 = std::env::var("WTPOOL_STREAM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let cases: usize = std::env::var("WTPOOL_STREAM_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    println!("{}: WTPOOL_STREAM_SEED={seed}, {cases} cases", R::NAME);

    let server = EchoServer::start(EchoServerOptions::default()).expect("an echo server");
    let options = ClientOptions::default().with_certificate_hash(server.certificate_hash());
    let endpoint = client_endpoint::<R>(&options).expect("a client endpoint");
    let sessions = SessionPool::<R>::new(endpoint, server.url(), 1).expect("a session pool");
    let session = sessions.acquire().await.expect("a session");

    let mut seed_bytes = [0; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = proptest::collection::vec(op(), 1..40);
    let mut tally = Tally::default();
    // Case 0 is one clean exchange after another, so that reuse is seen;
    // cases 1 and 2 a write torn by a cancel (async, then poll-based) that
    // its borrower reads some echo of and then marks. Each case ends with a
    // clean exchange by the next borrower.
    let then_next_borrower = |first: &[Op]| {
        let next = [
            Op::MarkComplete,
            Op::Release,
            Op::Write {
                len: 4,
                cancel: false,
            },
            Op::ReadAll,
        ];
        [first, &next].concat()
    };
    let torn = |cancelled| then_next_borrower(&[cancelled, Op::Read { cancel: false }]);
    let clean = then_next_borrower(&[
        Op::Write {
            len: 4,
            cancel: false,
        },
        Op::ReadAll,
    ]);
    for case in 0..cases + 3 {
        let ops = match case {
            0 => clean.clone(),
            1 => torn(Op::Write {
                len: LARGE,
                cancel: true,
            }),
            2 => torn(Op::PollWrite {
                len: LARGE,
                cancel: true,
            }),
            _ => strategy.new_tree(&mut runner).expect("a case").current(),
        };
        if let Err(failure) = play::<R>(&session, &ops, &mut tally).await {
            panic!("case {case} of WTPOOL_STREAM_SEED={seed}: {failure}\nops: {ops:?}");
        }
    }
    println!("{}: {tally:?}", R::NAME);
    // The cases read bytes and reused streams, or they proved little.
    assert!(tally.bytes_read > 0 && tally.reused > 0, "{tally:?}");
}

scenarios!(borrowers_never_read_each_others_bytes);
