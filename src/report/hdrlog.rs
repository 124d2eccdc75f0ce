//! Reading herd's HdrHistogram interval log (`--hdr-log`) back: per-interval latency
//! percentiles and the whole run's percentile distribution, corrected and uncorrected.

use crate::measure::stats::new_histogram;
use crate::outcome::series::spectrum;
use base64::Engine;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;

/// What the report takes from a log.
#[derive(Debug, Default)]
pub struct LogSeries {
    /// (interval end in seconds since the log's start, p50, p99, max in ms) per interval.
    pub corrected: Vec<[f64; 4]>,
    pub uncorrected: Vec<[f64; 4]>,
    pub corrected_spectrum: Vec<[f64; 2]>,
    pub uncorrected_spectrum: Vec<[f64; 2]>,
}

fn point(t: f64, h: &Histogram<u64>) -> [f64; 4] {
    let ms = |us: u64| us as f64 / 1000.0;
    [t, ms(h.value_at_quantile(0.5)), ms(h.value_at_quantile(0.99)), ms(h.max())]
}

/// Parses a V2 interval log (deflated or not). Intervals tagged `corrected` and `uncorrected`
/// are used; `connect` and untagged ones are skipped.
pub fn read_hdr_log(bytes: &[u8]) -> Result<LogSeries, String> {
    let mut out = LogSeries::default();
    let (mut all_c, mut all_u) = (new_histogram(), new_histogram());
    let mut de = Deserializer::new();
    let mut intervals = 0;
    for entry in IntervalLogIterator::new(bytes) {
        let entry = entry.map_err(|e| format!("not an HdrHistogram interval log ({e:?})"))?;
        let LogEntry::Interval(ih) = entry else { continue };
        let tag = ih.tag().map(|t| t.as_str()).unwrap_or("");
        if tag != "corrected" && tag != "uncorrected" {
            continue;
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(ih.encoded_histogram())
            .map_err(|e| format!("interval at {:?}: bad base64: {e}", ih.start_timestamp()))?;
        let h: Histogram<u64> = de
            .deserialize(&mut raw.as_slice())
            .map_err(|e| format!("interval at {:?}: bad histogram: {e:?}", ih.start_timestamp()))?;
        let t = (ih.start_timestamp() + ih.duration()).as_secs_f64();
        intervals += 1;
        let (series, all) =
            if tag == "corrected" { (&mut out.corrected, &mut all_c) } else { (&mut out.uncorrected, &mut all_u) };
        if !h.is_empty() {
            series.push(point(t, &h));
            all.add(&h).map_err(|e| format!("interval at {t:.1}s: {e:?}"))?;
        }
    }
    if intervals == 0 {
        return Err("no corrected or uncorrected intervals in the log".into());
    }
    out.corrected_spectrum = spectrum(&all_c);
    out.uncorrected_spectrum = spectrum(&all_u);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
    use hdrhistogram::serialization::V2DeflateSerializer;
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_written_log_reads_back_per_interval() {
        let mut buf = vec![];
        let mut ser = V2DeflateSerializer::new();
        {
            let t0 = SystemTime::now();
            let mut w = IntervalLogWriterBuilder::new()
                .with_start_time(t0)
                .with_base_time(t0)
                .begin_log_with(&mut buf, &mut ser)
                .unwrap();
            for (i, us) in [1000u64, 20_000].iter().enumerate() {
                let mut h = new_histogram();
                h.record(*us).unwrap();
                let start = Duration::from_secs(i as u64);
                w.write_histogram(&h, start, Duration::from_secs(1), Tag::new("corrected")).unwrap();
                w.write_histogram(&h, start, Duration::from_secs(1), Tag::new("connect")).unwrap();
            }
        }
        let s = read_hdr_log(&buf).unwrap();
        assert_eq!(s.corrected.len(), 2);
        assert_eq!(s.corrected[0], [1.0, 1.0, 1.0, 1.0]);
        assert_eq!(s.corrected[1][0], 2.0);
        assert!((s.corrected[1][3] - 20.0).abs() < 0.02, "{:?}", s.corrected[1]);
        assert!(s.uncorrected.is_empty());
        assert_eq!(s.corrected_spectrum.last().map(|p| p[0]), Some(100.0));
        assert!(read_hdr_log(b"#just a comment\n").unwrap_err().contains("no corrected"));
        assert!(read_hdr_log(b"garbage,garbage\n").is_err());
    }
}
