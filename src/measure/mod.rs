//! Measurement, mostly pure: the process clock, send schedules (`pacing.rs`), the marker each
//! message carries, loss/duplicate/reorder accounting, latency figures, per-core counters and
//! histograms with their exact merge (`stats.rs`), per-stage windows and outages.

pub mod accounting;
pub mod clock;
pub mod cpu;
pub mod latency;
pub mod marker;
pub mod pacing;
pub mod stats;
pub mod windows;
