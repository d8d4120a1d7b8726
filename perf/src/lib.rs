//! The performance harness of the MPTCP toolkit.
//!
//! `perf/core/run.sh` builds this crate and the Go peer (`perf/go`), then runs the
//! `perf` binary, which measures mptcp-net side by side with raw system calls,
//! Go's `net`, the `mptcp` crate 0.1.5 and plain TCP, and writes
//! `perf/RESULTS.md` and `perf/results.json`. See perf/README.md.
//!
//! Benchmarks, not tests: nothing here asserts a time.
#![warn(missing_docs)]

pub mod bulk;
pub mod calls;
pub mod conn;
pub mod driver;
pub mod micro;
pub mod report;
pub mod stats;
pub mod sys;
pub mod targets;
