//! Prometheus histogram buckets computed exactly from an HDR histogram of microseconds.

use hdrhistogram::Histogram;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Bucket, Histogram as HistogramProto, Metric, MetricFamily, MetricType};

/// Default bucket upper bounds in seconds, 25 µs to 60 s.
///
/// Each decade from 100 µs to 10 s has the steps 1, 1.5, 2, 3, 4, 5 and 7.5, so neighbouring
/// bounds are at most 1.5× apart: `histogram_quantile`'s linear interpolation inside a bucket is
/// off by at most that bucket's width, less than half the true value. Loopback runs deliver in tens of microseconds, hence the two bounds
/// below 100 µs. Above 10 s only coarse steps remain (15, 20, 30, 60 s): latencies there mean
/// the server is failing, not that it is slow. 42 bounds plus `+Inf`; exact quantiles are
/// exported beside the histogram anyway.
pub const DEFAULT_BOUNDS_SECONDS: [f64; 42] = [
    0.000025, 0.00005, //
    0.0001, 0.00015, 0.0002, 0.0003, 0.0004, 0.0005, 0.00075, //
    0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, //
    0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, //
    0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, //
    1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, //
    10.0, 15.0, 20.0, 30.0, 60.0,
];

/// One bound in whole microseconds (bounds are rounded to the microsecond the histogram records).
fn bound_us(bound_seconds: f64) -> u64 {
    (bound_seconds * 1e6).round() as u64
}

/// Cumulative bucket counts of an HDR histogram of microseconds, for the given ascending upper
/// bounds in seconds. Returns `(cumulative_counts, sum_seconds, count)`, where
/// `cumulative_counts[i]` counts the recorded values `<= bounds_seconds[i]`.
///
/// "`<=`" is decided with HDR's value equivalence, exactly like `Histogram::count_between(0,
/// bound)`: a recorded value counts when it is equivalent to a value at or below the bound
/// (`lowest_equivalent(value) <= bound`). Bounds below 2048 µs are exact to the microsecond
/// (HDR's first buckets have a width of 1 µs at 3 significant digits); above, a value that HDR
/// cannot tell apart from the bound counts as at the bound, an error of at most 0.1%.
///
/// `count` is the total count (the `+Inf` bucket). `sum_seconds` adds every value as the middle of
/// its HDR equivalence range, like `Histogram::mean`, so it is as precise as the histogram.
/// A non-finite bound counts every value (the encoder leaves them out: `+Inf` is implied).
/// Bounds must ascend; unsorted bounds give unspecified counts.
pub fn hdr_buckets(h: &Histogram<u64>, bounds_seconds: &[f64]) -> (Vec<u64>, f64, u64) {
    let bounds: Vec<u64> =
        bounds_seconds.iter().map(|&b| if b.is_finite() { bound_us(b.max(0.0)) } else { u64::MAX }).collect();
    let mut per_bucket = vec![0u64; bounds.len()];
    let mut sum_us: u128 = 0;
    let mut next = 0usize;
    for v in h.iter_recorded() {
        let value = v.value_iterated_to();
        let n = v.count_at_value();
        sum_us += u128::from(h.median_equivalent(value)) * u128::from(n);
        let lowest = h.lowest_equivalent(value);
        while next < bounds.len() && bounds[next] < lowest {
            next += 1;
        }
        if next < bounds.len() {
            per_bucket[next] += n;
        }
    }
    let mut running = 0u64;
    let cumulative = per_bucket
        .into_iter()
        .zip(bounds_seconds)
        .map(|(n, b)| {
            running += n;
            if b.is_finite() {
                running
            } else {
                h.len()
            }
        })
        .collect();
    (cumulative, sum_us as f64 / 1e6, h.len())
}

/// Histogram families computed elsewhere, registered as one collector.
#[derive(Default)]
pub struct Precomputed {
    descs: Vec<Desc>,
    families: Vec<MetricFamily>,
}

impl Precomputed {
    pub fn add(
        &mut self,
        name: &str,
        help: &str,
        h: &hdrhistogram::Histogram<u64>,
        bounds: &[f64],
    ) -> prometheus::Result<()> {
        let desc = Desc::new(name.to_string(), help.to_string(), vec![], Default::default())?;
        let (cumulative, sum, count) = hdr_buckets(h, bounds);
        let buckets = bounds
            .iter()
            .zip(cumulative)
            .map(|(&le, n)| {
                let mut b = Bucket::default();
                b.set_upper_bound(le);
                b.set_cumulative_count(n);
                b
            })
            .collect();
        let mut hp = HistogramProto::default();
        hp.set_bucket(buckets);
        hp.set_sample_count(count);
        hp.set_sample_sum(sum);
        let mut m = Metric::default();
        m.set_histogram(hp);
        let mut mf = MetricFamily::default();
        mf.set_name(name.to_string());
        mf.set_help(help.to_string());
        mf.set_field_type(MetricType::HISTOGRAM);
        mf.set_metric(vec![m]);
        self.descs.push(desc);
        self.families.push(mf);
        Ok(())
    }
}

impl Collector for Precomputed {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.families.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::stats::new_histogram;

    /// A small deterministic generator (xorshift64*), so the test needs no extra crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    fn brute_force(h: &Histogram<u64>, values: &[u64], bounds: &[f64]) -> Vec<u64> {
        bounds
            .iter()
            .map(|&b| {
                let b = bound_us(b);
                values.iter().filter(|&&v| h.lowest_equivalent(v) <= b).count() as u64
            })
            .collect()
    }

    #[test]
    fn default_bounds_are_ascending_and_distinct_in_microseconds() {
        for w in DEFAULT_BOUNDS_SECONDS.windows(2) {
            assert!(w[0] < w[1]);
            assert!(bound_us(w[0]) < bound_us(w[1]));
        }
        assert_eq!(bound_us(DEFAULT_BOUNDS_SECONDS[0]), 25);
        assert_eq!(bound_us(0.00015), 150);
        assert_eq!(*DEFAULT_BOUNDS_SECONDS.last().unwrap(), 60.0);
    }

    #[test]
    fn buckets_match_brute_force() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut h = new_histogram();
        let mut values = Vec::new();
        for i in 0..50_000 {
            // Log-uniform from 1 µs to ~2 min, plus values sitting on and next to the bounds.
            let v = if i % 5 == 0 {
                let b = bound_us(DEFAULT_BOUNDS_SECONDS[(rng.next() % 42) as usize]);
                match rng.next() % 3 {
                    0 => b - 1,
                    1 => b,
                    _ => b + 1,
                }
            } else {
                let exp = (rng.next() % 1_000_000) as f64 / 1_000_000.0 * 8.1;
                (10f64.powf(exp) as u64).max(1)
            };
            h.record(v).unwrap();
            values.push(v);
        }
        let (cum, sum, count) = hdr_buckets(&h, &DEFAULT_BOUNDS_SECONDS);
        assert_eq!(count, values.len() as u64);
        assert_eq!(cum, brute_force(&h, &values, &DEFAULT_BOUNDS_SECONDS));
        for (c, &b) in cum.iter().zip(DEFAULT_BOUNDS_SECONDS.iter()) {
            assert_eq!(*c, h.count_between(0, bound_us(b)));
            // Never fewer than the raw values at or below the bound, never more than those
            // within the bound's equivalence range.
            let raw_le = values.iter().filter(|&&v| v <= bound_us(b)).count() as u64;
            let raw_le_eq = values.iter().filter(|&&v| v <= h.highest_equivalent(bound_us(b))).count() as u64;
            assert!(raw_le <= *c && *c <= raw_le_eq, "bound {b}");
            if bound_us(b) < 2048 {
                assert_eq!(*c, raw_le, "bounds below 2048 µs are exact");
            }
        }
        assert!(cum.windows(2).all(|w| w[0] <= w[1]));
        // Values above 60 s are only in +Inf.
        assert!(*cum.last().unwrap() < count);
        let exact_sum: u64 = values.iter().sum();
        let rel = (sum - exact_sum as f64 / 1e6).abs() / (exact_sum as f64 / 1e6);
        assert!(rel < 0.001, "sum off by {rel}");
        assert!((sum - h.mean() * count as f64 / 1e6).abs() / sum < 1e-9);
    }

    #[test]
    fn empty_histogram_and_odd_bounds() {
        let h = new_histogram();
        let (cum, sum, count) = hdr_buckets(&h, &DEFAULT_BOUNDS_SECONDS);
        assert!(cum.iter().all(|&c| c == 0));
        assert_eq!((sum, count), (0.0, 0));

        let mut h = new_histogram();
        h.record(1).unwrap();
        h.record(100).unwrap();
        h.record(101).unwrap();
        let (cum, _, count) = hdr_buckets(&h, &[0.0, 0.0001, f64::INFINITY]);
        assert_eq!(cum, vec![0, 2, 3]);
        assert_eq!(count, 3);
        let (cum, _, _) = hdr_buckets(&h, &[]);
        assert!(cum.is_empty());
    }
}
