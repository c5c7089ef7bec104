//! Fuzzes the sans-IO pool machine against the reference model.
//!
//! The input decodes to a config and a list of ops (`ops::from_bytes`), which
//! `ops::run` plays on the machine and the model, checking every step. The
//! config's first byte also picks the kind of pool: exclusive
//! (`PoolState::new`) or shared with 1 to 4 leases per object
//! (`PoolState::shared`), so both go through the same interpreter. The
//! same function runs on stable in `tests/model.rs`, which also replays
//! `fuzz/corpus/pool_ops/`.
//!
//! Run with `cargo +nightly fuzz run pool_ops` from the repository root.
#![no_main]

#[path = "../../tests/support/ops.rs"]
mod ops;

libfuzzer_sys::fuzz_target!(|data: &[u8]| ops::run_bytes(data));
