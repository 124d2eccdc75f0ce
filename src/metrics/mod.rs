//! Prometheus metrics of a run, pushed to a Pushgateway while the run goes on.
//!
//! The reporter thread owns the whole pipeline; the executors never see it:
//!
//! 1. [`encode`] turns the merged view of the run ([`crate::measure::stats::Merged`]) into the Prometheus
//!    text exposition format. Histograms come straight from the HDR histograms
//!    ([`hdr_buckets`]), so nothing is recorded twice.
//! 2. [`Pusher::update`] hands the newest text to the pusher's own thread, which PUTs it to
//!    `{pushgateway}/metrics/job/{job}/instance/{instance}` once per interval. Latest wins: a
//!    slow or absent Pushgateway costs the run nothing.
//! 3. [`Pusher::finish`] pushes the final text (with a few retries), deletes the group if asked
//!    to, and returns a [`PushReport`] for the results file.
//!
//! Files: `encode.rs` the exposition, `buckets.rs` HDR histograms as Prometheus buckets (and
//! the collector that registers them), `labels.rs` `herd_run_info`'s labels and valid names,
//! `grouping.rs` the Pushgateway grouping key, `pusher.rs` the pushing thread, `args.rs` flags.
//!
//! Every metric name starts with a prefix (`herd` by default, so `herd_delivery_latency_seconds`).
//! The dashboards in `dashboards/` expect the default prefix.

mod args;
mod buckets;
mod classes;
mod encode;
mod grouping;
mod labels;
mod pusher;

pub mod run_id;

pub use args::{default_instance, hostname, MetricsArgs};
pub use buckets::{hdr_buckets, DEFAULT_BOUNDS_SECONDS};
pub use encode::{encode, encode_with_bounds, Phase, RunInfo};
pub use grouping::{group_url, group_url_with, percent_encode, url_safe_base64};
pub use pusher::{PushConfig, PushReport, Pusher};
