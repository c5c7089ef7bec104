//! Every error of wtpool and wtpool-webtransport follows the ecosystem's
//! convention: its message names what failed at its own layer, and the
//! cause is reached through `source()` only, never repeated in the message.
//! A reporter that walks the chain (anyhow's `{:#}`, eyre, tracing) thus
//! prints each message once.

use std::error::Error;
use std::time::Duration;

use wtpool::{CloseErrors, ConfigError, ErrorChain, PoolError, TimeoutKind};
use wtpool_webtransport::WebTransportError;
use wtransport::error::{ConnectingError, ConnectionError, StreamOpeningError};

/// The messages of `error`'s chain, outermost first.
fn messages(error: &dyn Error) -> Vec<String> {
    let mut messages = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        messages.push(cause.to_string());
        source = cause.source();
    }
    messages
}

/// Asserts that no message of the chain repeats one of its causes', and
/// that the chain reads as `expected`.
fn prints_each_message_once(error: &dyn Error, expected: &str) {
    let messages = messages(error);
    for (n, outer) in messages.iter().enumerate() {
        for inner in &messages[n + 1..] {
            assert!(
                !outer.contains(inner.as_str()),
                "{outer:?} repeats its cause {inner:?}"
            );
        }
    }
    assert_eq!(ErrorChain(error).to_string(), expected);
}

fn url() -> String {
    "https://127.0.0.1:4433/echo".to_owned()
}

/// One of each variant, with its whole chain as a reporter prints it.
fn webtransport_errors() -> Vec<(WebTransportError, String)> {
    let url = url();
    vec![
        (
            WebTransportError::Config(ConfigError::ZeroMaxSize),
            "invalid pool setting: max_size must be at least 1, got 0".into(),
        ),
        (
            WebTransportError::InvalidUrl {
                url: "http://x/".into(),
                reason: "the scheme must be https".into(),
            },
            "invalid WebTransport URL \"http://x/\": the scheme must be https".into(),
        ),
        (
            WebTransportError::InvalidIdleTimeout(Some(Duration::ZERO)),
            "invalid QUIC idle timeout Some(0ns): it must be above zero and fit QUIC \
             (use None for no timeout)"
                .into(),
        ),
        (
            WebTransportError::InvalidKeepAlive(Duration::ZERO),
            "invalid keep-alive interval 0ns: use None for no keep-alive".into(),
        ),
        (
            WebTransportError::Endpoint(std::io::Error::other("address in use")),
            "could not set up the client endpoint: address in use".into(),
        ),
        (
            WebTransportError::Resolve {
                url: url.clone(),
                reason: "no address found".into(),
            },
            format!("cannot resolve the host of {url}: no address found"),
        ),
        (
            WebTransportError::Unreachable { url: url.clone() },
            format!("no WebTransport server answered at {url} (QUIC handshake timed out)"),
        ),
        (
            WebTransportError::Tls {
                url: url.clone(),
                source: ConnectionError::LocallyClosed,
            },
            format!("TLS handshake with {url} failed: connection locally closed"),
        ),
        (
            WebTransportError::CertificateNotPinned {
                url: url.clone(),
                source: ConnectionError::LocallyClosed,
            },
            format!(
                "the certificate of {url} matches no pinned hash (a pinned certificate must \
                 also be ECDSA P-256 and valid 14 days at most): connection locally closed"
            ),
        ),
        (
            WebTransportError::SessionRejected { url: url.clone() },
            format!("the server at {url} refused the WebTransport session (HTTP error status)"),
        ),
        (
            WebTransportError::Handshake {
                url: url.clone(),
                source: ConnectionError::TimedOut,
            },
            format!("the connection to {url} failed during the handshake: connection timed out"),
        ),
        (
            WebTransportError::Connect {
                url: url.clone(),
                source: ConnectingError::DnsNotFound,
            },
            format!("connecting to {url} failed: cannot resolve domain"),
        ),
        (
            WebTransportError::SessionClosed(ConnectionError::TimedOut),
            "the session is closed: connection timed out".into(),
        ),
        (
            WebTransportError::StreamOpen(StreamOpeningError::Refused),
            "could not open a stream: opening stream refused".into(),
        ),
        (
            WebTransportError::NoIoRuntime,
            "no tokio runtime to run wtransport on: call this inside a tokio runtime, \
             or use wtpool-smol"
                .into(),
        ),
        (
            WebTransportError::IoTaskLost,
            "the background handshake task ended without a result".into(),
        ),
    ]
}

#[test]
fn webtransport_errors_print_each_message_once() {
    for (error, expected) in webtransport_errors() {
        prints_each_message_once(&error, &expected);
    }
}

#[test]
fn pool_errors_print_each_message_once() {
    type Error = PoolError<WebTransportError>;
    let unreachable = || WebTransportError::Unreachable { url: url() };
    let cases: Vec<(Error, String)> = vec![
        (PoolError::Closed, "the pool is closed".into()),
        (
            PoolError::Timeout(TimeoutKind::Wait),
            "timed out waiting for a pool object (wait_timeout)".into(),
        ),
        (
            PoolError::Timeout(TimeoutKind::Create),
            "timed out creating a pool object (create_timeout)".into(),
        ),
        (
            PoolError::Create(unreachable()),
            format!(
                "could not create a pool object: no WebTransport server answered at {} \
                 (QUIC handshake timed out)",
                url()
            ),
        ),
        (
            PoolError::CreateAborted,
            "creating a pool object was abandoned: its task ended before it finished".into(),
        ),
        (
            PoolError::CreatePanicked,
            "the factory panicked while creating a pool object".into(),
        ),
        (
            PoolError::Close(WebTransportError::SessionClosed(ConnectionError::TimedOut)),
            "could not close a pool object: the session is closed: connection timed out".into(),
        ),
        (
            PoolError::ForeignObject,
            "an object was released to a pool that did not hand it out".into(),
        ),
        (
            PoolError::Refused {
                retry_in: std::time::Duration::from_millis(250),
            },
            "the peer refused a new pool object lately: the pool tries again in 250ms".into(),
        ),
    ];
    for (error, expected) in cases {
        prints_each_message_once(&error, &expected);
    }
    // Each variant of the factory's error, inside `Create`.
    for (error, expected) in webtransport_errors() {
        let error: Error = PoolError::Create(error);
        prints_each_message_once(
            &error,
            &format!("could not create a pool object: {expected}"),
        );
    }
}

#[test]
fn close_errors_and_config_errors_print_each_message_once() {
    let errors = CloseErrors {
        errors: vec![
            WebTransportError::IoTaskLost,
            WebTransportError::NoIoRuntime,
        ],
    };
    prints_each_message_once(
        &errors,
        "closing the pool failed for 2 idle object(s): \
         the background handshake task ended without a result",
    );
    for (error, expected) in [
        (
            ConfigError::ZeroMaxSize,
            "max_size must be at least 1, got 0",
        ),
        (
            ConfigError::ZeroMaxCreating,
            "max_creating must be at least 1, got 0",
        ),
        (
            ConfigError::ZeroMaxLeases,
            "max_leases must be at least 1, got 0",
        ),
        (
            ConfigError::MinIdleAboveMaxSize {
                min_idle: 3,
                max_size: 2,
            },
            "min_idle (3) must not exceed max_size (2)",
        ),
        (
            ConfigError::ZeroDuration("wait_timeout"),
            "wait_timeout must be longer than zero",
        ),
    ] {
        prints_each_message_once(&error, expected);
    }
    let no_runtime = ConfigError::NoRuntime;
    assert!(
        no_runtime.to_string().contains("cannot run tasks"),
        "{no_runtime}"
    );
    assert!(no_runtime.source().is_none());
}
