//! The reporter thread: folds the cores' snapshots into one view of the run, prints the live
//! progress line, writes the HdrHistogram interval log, and calls observers (metrics push) once
//! per interval. It owns no socket and never blocks a core.

use crate::client::{Control, Phase};
use crate::measure::stats::{Counters, Histos, Merged, Snapshot};
use hdrhistogram::serialization::interval_log::{IntervalLogWriter, IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use std::io::Write;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Longest the reporter waits for a snapshot before it looks whether it was abandoned.
const ABANDON_LOOK: Duration = Duration::from_millis(250);

/// Called once per interval (and once at the end, with `Phase::Done`) with the merged view.
pub type Observer = Box<dyn FnMut(&Merged, Phase) + Send>;

pub struct ReporterConfig {
    pub cores: usize,
    pub interval: Duration,
    pub quiet: bool,
    pub hdr_log: Option<std::fs::File>,
    /// Put before each progress line (`shard 1/3 `).
    pub prefix: String,
}

/// What the reporter hands back when every core has sent its last snapshot.
pub struct Report {
    pub merged: Merged,
    /// Highest number of connections open at once, as seen at snapshot times.
    pub peak_open: u64,
    pub hdr_log_error: Option<String>,
}

pub fn spawn(
    cfg: ReporterConfig,
    rx: Receiver<Snapshot>,
    control: Arc<Control>,
    mut observers: Vec<Observer>,
) -> std::thread::JoinHandle<Report> {
    std::thread::Builder::new()
        .name("herd-reporter".into())
        .spawn(move || {
            let mut merged = Merged::new(cfg.cores);
            let mut finished = vec![false; cfg.cores];
            let started = Instant::now();
            let wall_start = SystemTime::now();
            let mut last_tick = Instant::now();
            let mut prev = Counters::default();
            let mut peak_open = 0;
            let mut hdr_file = cfg.hdr_log.map(std::io::BufWriter::new);
            let mut ser = V2DeflateSerializer::new();
            let mut hdr_error = None;
            let mut hdr = match hdr_file.as_mut() {
                Some(f) => match IntervalLogWriterBuilder::new()
                    .add_comment("herd delivery latency; values in microseconds")
                    .with_start_time(wall_start)
                    .with_base_time(wall_start)
                    .begin_log_with(f, &mut ser)
                {
                    Ok(w) => Some(w),
                    Err(e) => {
                        hdr_error = Some(e.to_string());
                        None
                    }
                },
                None => None,
            };
            while !finished.iter().all(|&f| f) {
                // Until the next progress line, looking at `abandoned` at least every 250 ms.
                let wait =
                    cfg.interval.saturating_sub(last_tick.elapsed()).clamp(Duration::from_millis(1), ABANDON_LOOK);
                match rx.recv_timeout(wait) {
                    Ok(s) => {
                        if s.core < finished.len() {
                            finished[s.core] |= s.last;
                        }
                        merged.fold(&s);
                        peak_open = peak_open.max(merged.counters.open());
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    // Every core is gone (one may have panicked): report what arrived.
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                // A core that did not stop in time is not waited for: report what arrived.
                if control.abandoned.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                if last_tick.elapsed() >= cfg.interval {
                    let secs = last_tick.elapsed().as_secs_f64();
                    last_tick = Instant::now();
                    let interval = merged.take_interval();
                    let phase = control.phase();
                    if !cfg.quiet {
                        let stalled: Vec<usize> = control.heartbeats.stalled().iter().map(|&(c, _)| c).collect();
                        let stalled =
                            if stalled.is_empty() { String::new() } else { format!(" | STALLED core(s) {stalled:?}") };
                        crate::errln!(
                            "{}{}{stalled}",
                            cfg.prefix,
                            progress_line(started.elapsed(), phase, &merged.counters, &prev, &interval, secs)
                                + &stage_part(&merged.windows)
                        );
                    }
                    write_hdr(&mut hdr, &mut hdr_error, &interval, started.elapsed(), secs);
                    for o in observers.iter_mut() {
                        o(&merged, phase);
                    }
                    prev = merged.counters.clone();
                }
            }
            let interval = merged.take_interval();
            let secs = last_tick.elapsed().as_secs_f64();
            write_hdr(&mut hdr, &mut hdr_error, &interval, started.elapsed(), secs);
            drop(hdr);
            if let Some(mut f) = hdr_file {
                if let Err(e) = f.flush() {
                    hdr_error.get_or_insert(e.to_string());
                }
            }
            for o in observers.iter_mut() {
                o(&merged, Phase::Done);
            }
            Report { merged, peak_open, hdr_log_error: hdr_error }
        })
        .expect("spawning the reporter thread")
}

/// One progress line (pure).
pub fn progress_line(
    elapsed: Duration,
    phase: Phase,
    c: &Counters,
    prev: &Counters,
    interval: &Histos,
    secs: f64,
) -> String {
    let rate = |a: u64, b: u64| ((a.saturating_sub(b)) as f64 / secs.max(1e-9)).round() as u64;
    let q = |p: f64| {
        if interval.corrected.is_empty() {
            "-".to_string()
        } else {
            format!("{:.2}", interval.corrected.value_at_quantile(p) as f64 / 1000.0)
        }
    };
    let mut line = format!(
        "[{:>6.1}s] {:<10} conns {} open, {} failed | sent {}/s recv {}/s | p50 {} p99 {} ms | pending {} dup {} reord {} | errors {}",
        elapsed.as_secs_f64(),
        phase.name(),
        c.open(),
        c.conns_failed,
        rate(c.msgs_sent, prev.msgs_sent),
        rate(c.msgs_delivered, prev.msgs_delivered),
        q(0.5),
        q(0.99),
        c.pending(),
        c.msgs_duplicated,
        c.msgs_reordered,
        c.errors_total(),
    );
    // Stalls: a target that does not finish handshakes, or does not read what is sent.
    if c.conns_connecting > 0 {
        line.push_str(&format!(" | connecting {}", c.conns_connecting));
    }
    if c.msgs_unsent > 0 {
        line.push_str(&format!(" | unsent {}", c.msgs_unsent));
    }
    if c.conns_reconnected > 0 {
        line.push_str(&format!(" | reconnected {}", c.conns_reconnected));
    }
    line
}

/// ` | stage 2/5` on a run with stages.
fn stage_part(w: &crate::measure::windows::MergedWindows) -> String {
    match (w.current_stage(), w.stage_count()) {
        (_, 0) => String::new(),
        (cur, n) => format!(" | stage {cur}/{n}"),
    }
}

type HdrWriter<'a, 'b> = IntervalLogWriter<'a, 'b, std::io::BufWriter<std::fs::File>, V2DeflateSerializer>;

/// Appends one interval to the HdrHistogram log (V2, deflated): one line per non-empty
/// histogram, tagged `corrected`, `uncorrected` and `connect`; values are microseconds.
fn write_hdr(w: &mut Option<HdrWriter>, error: &mut Option<String>, h: &Histos, at: Duration, secs: f64) {
    let Some(writer) = w.as_mut() else { return };
    let dur = Duration::from_secs_f64(secs);
    let start = at.saturating_sub(dur);
    for (name, hist) in [("corrected", &h.corrected), ("uncorrected", &h.uncorrected), ("connect", &h.connect)] {
        if hist.is_empty() {
            continue;
        }
        if let Err(e) = writer.write_histogram(hist, start, dur, Tag::new(name)) {
            *error = Some(format!("{e:?}"));
            *w = None;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_shows_rates_and_quantiles() {
        let prev = Counters { msgs_sent: 100, msgs_delivered: 300, ..Default::default() };
        let cur = Counters {
            conns_established: 40,
            msgs_sent: 200,
            msgs_delivered: 600,
            msgs_expected: 602,
            ..Default::default()
        };
        let mut h = Histos::default();
        h.corrected.record(1500).unwrap();
        let line = progress_line(Duration::from_secs(3), Phase::Sending, &cur, &prev, &h, 1.0);
        assert!(line.contains("sending"), "{line}");
        assert!(line.contains("40 open"), "{line}");
        assert!(line.contains("sent 100/s recv 300/s"), "{line}");
        assert!(line.contains("p50 1.50"), "{line}");
        assert!(line.contains("pending 2"), "{line}");
        assert!(!line.contains("connecting"), "{line}");
        let stalled = Counters { conns_connecting: 7, msgs_unsent: 12, ..cur };
        let line = progress_line(Duration::from_secs(4), Phase::Sending, &stalled, &prev, &h, 1.0);
        assert!(line.contains("connecting 7") && line.contains("unsent 12"), "{line}");
    }
}
