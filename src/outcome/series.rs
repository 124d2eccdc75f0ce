//! A run over time, kept in the results for the HTML report: one [`Sample`] per reporter
//! interval (connections, cumulative counts, that second's latency percentiles) and the final
//! latency percentile spectra (HdrHistogram's percentile distribution, corrected and
//! uncorrected). The samples come from a reporter observer; a second's latency is the
//! difference of the run-so-far histograms between two observations, so the reporter needs no
//! change.

use crate::client::Phase;
use crate::measure::stats::{new_histogram, Merged};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Serialize, Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Seconds since the run started.
    pub t_s: f64,
    pub phase: String,
    pub open: u64,
    pub established: u64,
    pub failed: u64,
    pub closed_by_peer: u64,
    pub sent: u64,
    pub delivered: u64,
    pub pending: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub errors: u64,
    /// This interval's delivery latency (ms): p50, p99, max; absent when nothing was delivered.
    pub corrected: Option<[f64; 3]>,
    pub uncorrected: Option<[f64; 3]>,
}

/// What the results keep for the report.
#[derive(Serialize, Debug, Clone, Default)]
pub struct Series {
    pub samples: Vec<Sample>,
    /// (percentile, latency ms) points, HdrHistogram's percentile distribution.
    pub corrected_spectrum: Vec<[f64; 2]>,
    pub uncorrected_spectrum: Vec<[f64; 2]>,
}

/// (percentile, ms) points of a histogram of microseconds: five ticks per halving of the
/// distance to 100 %, as HdrHistogram's percentile output; the last point is the maximum.
pub fn spectrum(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    if h.is_empty() {
        return vec![];
    }
    let mut out: Vec<[f64; 2]> = h
        .iter_quantiles(5)
        .map(|v| [v.quantile_iterated_to() * 100.0, h.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0])
        .collect();
    out.dedup_by(|b, a| a[0] == b[0]);
    out
}

fn three(h: &Histogram<u64>) -> Option<[f64; 3]> {
    (!h.is_empty()).then(|| {
        let ms = |us: u64| us as f64 / 1000.0;
        [ms(h.value_at_quantile(0.5)), ms(h.value_at_quantile(0.99)), ms(h.max())]
    })
}

/// Builds samples from successive merged views.
pub struct Recorder {
    started: Instant,
    prev_corrected: Histogram<u64>,
    prev_uncorrected: Histogram<u64>,
    pub samples: Vec<Sample>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            started: Instant::now(),
            prev_corrected: new_histogram(),
            prev_uncorrected: new_histogram(),
            samples: vec![],
        }
    }
}

/// `total` minus what it held at the previous observation.
fn since(total: &Histogram<u64>, prev: &mut Histogram<u64>) -> Histogram<u64> {
    let mut d = total.clone();
    // `total` only grows, so the subtraction cannot underflow; on any mismatch the interval
    // is reported empty rather than wrong.
    if d.subtract(&*prev).is_err() {
        d.reset();
    }
    prev.clone_from(total);
    d
}

impl Recorder {
    pub fn observe(&mut self, m: &Merged, phase: Phase, t_s: f64) {
        let c = &m.counters;
        let corrected = since(&m.total.corrected, &mut self.prev_corrected);
        let uncorrected = since(&m.total.uncorrected, &mut self.prev_uncorrected);
        self.samples.push(Sample {
            t_s,
            phase: phase.name().to_string(),
            open: c.open(),
            established: c.conns_established,
            failed: c.conns_failed,
            closed_by_peer: c.conns_closed_by_peer,
            sent: c.msgs_sent,
            delivered: c.msgs_delivered,
            pending: c.pending(),
            duplicated: c.msgs_duplicated,
            reordered: c.msgs_reordered,
            errors: c.errors_total(),
            corrected: three(&corrected),
            uncorrected: three(&uncorrected),
        });
    }

    /// An observer for the reporter that records into a shared recorder.
    pub fn observer(shared: Arc<Mutex<Recorder>>) -> crate::drive::reporter::Observer {
        Box::new(move |m, phase| {
            if let Ok(mut r) = shared.lock() {
                let t = r.started.elapsed().as_secs_f64();
                r.observe(m, phase, t);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::stats::test_snapshot as snap;

    #[test]
    fn each_sample_holds_only_its_own_interval() {
        let mut m = Merged::new(1);
        let mut r = Recorder::default();
        m.fold(&snap(0, 3, &[1000, 2000, 3000]));
        r.observe(&m, Phase::Sending, 1.0);
        m.fold(&snap(0, 4, &[50_000]));
        r.observe(&m, Phase::Sending, 2.0);
        r.observe(&m, Phase::Draining, 3.0);
        let s = &r.samples;
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].corrected.unwrap()[2], 3.001, "max of the first second (HDR-equivalent)");
        assert_eq!(s[1].corrected.unwrap()[0], 50.015, "the second second has only the 50 ms delivery");
        assert!(s[2].corrected.is_none(), "nothing delivered in the third");
        assert_eq!((s[1].delivered, s[1].pending, s[2].phase.as_str()), (4, 1, "draining"));
    }

    #[test]
    fn spectrum_rises_to_the_maximum() {
        let mut h = new_histogram();
        for us in 1..=10_000u64 {
            h.record(us).unwrap();
        }
        let sp = spectrum(&h);
        assert!(sp.len() > 20, "{}", sp.len());
        assert!(sp.windows(2).all(|w| w[0][0] < w[1][0] && w[0][1] <= w[1][1]));
        let last = sp.last().unwrap();
        assert_eq!(last[0], 100.0);
        assert!((last[1] - 10.0).abs() < 0.01, "{last:?}");
        assert!(spectrum(&new_histogram()).is_empty());
    }
}
