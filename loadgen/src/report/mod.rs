//! Reporting: what a run measured and how it is shown.
//!
//! Mergeable latency histograms and counters ([`stats`]), the live
//! counters behind the progress line ([`shared`], [`progress`]), what is
//! read from outside the load generator (the gateway's memory and
//! `/metrics` in [`probe`], CPU time in [`cpu`], context switches in
//! [`switches`]), and the outputs of a
//! finished run: the printed summary ([`summary`]), `--json`, `--hist`
//! ([`hgrm`]) and `--check` ([`check`]), all written once in [`outputs`].

pub(crate) mod check;
pub(crate) mod cpu;
pub(crate) mod hgrm;
pub(crate) mod outputs;
pub(crate) mod probe;
pub(crate) mod progress;
pub(crate) mod shared;
pub(crate) mod stats;
pub(crate) mod summary;
pub(crate) mod switches;
