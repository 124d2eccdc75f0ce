//! `herd knee`: the highest send rate a target delivers within a latency bound.
//!
//! At a fixed connection count (`-c x -k`, all opened before sending), the per-sender rate goes
//! up in steps (`--from`, times `--factor` each step, at most `--steps`), each held for
//! `--step-duration`. Every step is a stage of one run (see `shape`), so each step's senders
//! follow the step's rate from its start (no catch-up burst) and the figures of each step count
//! exactly the messages intended during it. A step is within when its corrected p99 is within
//! `--p99` with nothing missed. A step past the bound counts only when the next step is past too
//! (one noisy step between steps within is an outlier, reported, and the search goes on); the
//! knee is the last step within before that confirmed crossing, and the run stops there.

use crate::config::args::RunArgs;
use crate::error::{Error, Result};
use crate::measure::stats::Merged;
use crate::measure::windows::StageResult;
use crate::outcome::results::RunResult;
use crate::shape::{Shape, Stage};
use clap::Args;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Args, Debug, Clone)]
pub struct KneeArgs {
    /// The latency bound: the highest corrected p99 a step may have, e.g. 50ms
    #[arg(long, value_parser = crate::config::units::parse_duration)]
    pub p99: Duration,
    /// The first step's rate, messages per second per sender
    #[arg(long, value_parser = crate::config::units::parse_rate, default_value = "1")]
    pub from: f64,
    /// Each step's rate is the previous one's times this
    #[arg(long, default_value_t = 2.0)]
    pub factor: f64,
    /// Most steps
    #[arg(long, default_value_t = 8)]
    pub steps: u32,
    /// How long each step holds its rate
    #[arg(long, value_parser = crate::config::units::parse_duration, default_value = "10s")]
    pub step_duration: Duration,
    /// Write the knee and its curve as JSON to this file (with the run's results)
    #[arg(long = "knee-out", value_name = "FILE")]
    pub knee_out: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// One step of the curve.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Step {
    pub rate_per_sender: f64,
    pub deliveries_per_s: f64,
    pub sent: u64,
    pub delivered: u64,
    pub missed: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub within: bool,
    /// Messages of the step herd sent more than 10 ms late (its own delay).
    pub sent_late: u64,
    /// herd itself sent this step late (send lag p99 past 10 ms): a step past the bound may be
    /// herd's failure, not the target's.
    pub herd_late: bool,
}

#[derive(Serialize, Debug, Clone)]
pub struct KneeResult {
    pub p99_limit_ms: f64,
    /// The highest step rate within the bound (absent: even the first step was past it).
    pub knee_rate_per_sender: Option<f64>,
    pub knee_deliveries_per_s: Option<f64>,
    /// Steps past the bound whose next step was within: one noisy step each, which did not end
    /// the search (the steps disagreed; the run's notes say by how much).
    pub outlier_rates_per_sender: Vec<f64>,
    /// The steps that ran, in order.
    pub curve: Vec<Step>,
    pub run: RunResult,
}

/// The rates of the steps.
pub fn rates(from: f64, factor: f64, steps: u32) -> Vec<f64> {
    (0..steps).map(|i| from * factor.powi(i as i32)).take_while(|&r| r <= crate::shape::MAX_RATE).collect()
}

/// The steps as stages: each starts at its own rate.
pub fn stages(rates: &[f64], hold: Duration) -> Vec<Stage> {
    rates.iter().map(|&rate| Stage { duration: hold, connections: None, rate, step: true }).collect()
}

/// A stage's figures as a step of the curve, judged against the bound.
pub fn step(st: &StageResult, p99_limit_ms: f64) -> Step {
    let l = &st.latency.corrected;
    Step {
        rate_per_sender: st.rate,
        deliveries_per_s: st.deliveries_per_s,
        sent: st.sent,
        delivered: st.delivered,
        missed: st.missed,
        p50_ms: l.p50_ms,
        p99_ms: l.p99_ms,
        within: st.delivered > 0 && l.p99_ms <= p99_limit_ms && st.missed == 0,
        sent_late: st.sent_late,
        herd_late: crate::outcome::generator::part_sent_late(st.sent, st.sent_late),
    }
}

/// The note for a curve whose first step past the bound is one herd itself sent late (pure).
pub fn herd_late_note(curve: &[Step]) -> Option<String> {
    let st = curve.iter().find(|s| !s.within).filter(|s| s.herd_late)?;
    Some(format!(
        "the step at {}/s per sender went past the bound while herd itself sent late ({} of {} messages over 10 ms late): its latency includes herd's own delay, so the knee may be herd's, not the target's; use more cores or fewer connections per node",
        st.rate_per_sender, st.sent_late, st.sent
    ))
}

/// The knee, and the steps that disagreed with their neighbours. A step past the bound ends the
/// search only when the next step is past it too (or there is no next step): one step past
/// between steps within is noise (a pause, a neighbour's burst), listed as an outlier, and the
/// search goes on. The knee is the last step within before the first confirmed crossing.
pub fn knee(curve: &[Step]) -> (Option<&Step>, Vec<usize>) {
    let (mut knee, mut outliers) = (None, vec![]);
    for (i, s) in curve.iter().enumerate() {
        if s.within {
            knee = Some(s);
        } else if curve.get(i + 1).is_some_and(|next| next.within) {
            outliers.push(i);
        } else {
            break;
        }
    }
    (knee, outliers)
}

/// Whether the run may stop: step `i` and the one after it are both past the bound.
fn confirmed_past(past: impl Fn(usize) -> bool, i: usize) -> bool {
    past(i) && past(i + 1)
}

fn check(a: &KneeArgs) -> Result<()> {
    let bad = |flag: &str, m: &str| Err(Error::Usage(format!("--{flag}: {m}")));
    if a.p99.is_zero() {
        return bad("p99", "must be positive");
    }
    if a.from.is_nan() || a.from <= 0.0 {
        return bad("from", "must be a positive rate");
    }
    if !(a.factor > 1.0 && a.factor.is_finite()) {
        return bad("factor", "must be above 1");
    }
    if a.steps == 0 || a.steps > 100 {
        return bad("steps", "must be between 1 and 100");
    }
    if a.step_duration < Duration::from_secs(1) {
        return bad("step-duration", "must be at least 1s");
    }
    let r = &a.run;
    if !r.shape.stages.is_empty() || r.duration.is_some() || r.rate.is_some() {
        return Err(Error::Usage(
            "herd knee sets the rate and duration itself: drop --stage, --rate and --duration (flags or scenario keys)"
                .into(),
        ));
    }
    Ok(())
}

/// Stops the run once two finished steps in a row are past the bound (see [`knee`]): each judged
/// once the step after it has run for `GRACE`, so its own last deliveries have had time to
/// arrive.
const GRACE: Duration = Duration::from_secs(2);

fn watcher(shape: Shape, p99_limit_ms: f64, halt: Arc<AtomicBool>) -> crate::drive::reporter::Observer {
    let seen: Mutex<Vec<Option<Instant>>> = Mutex::new(vec![None; shape.stages().len()]);
    Box::new(move |m: &Merged, _phase| {
        let Ok(mut seen) = seen.lock() else { return };
        let n = seen.len();
        for i in 0..n {
            if seen[i].is_none() && m.windows.stage(i).sent > 0 {
                seen[i] = Some(Instant::now());
            }
        }
        let results = crate::shape::results::stages(&shape, m, u64::MAX);
        let past = |i: usize| {
            let st = &results[i];
            seen.get(i + 1).is_some_and(|t| t.is_some_and(|t| t.elapsed() >= GRACE))
                && st.delivered > 0
                && st.latency.corrected.p99_ms > p99_limit_ms
        };
        if (0..n.saturating_sub(2)).any(|i| confirmed_past(past, i)) {
            halt.store(true, Ordering::SeqCst);
        }
    })
}

pub fn main(a: &KneeArgs) -> Result<KneeResult> {
    check(a)?;
    let shape = Shape::new(stages(&rates(a.from, a.factor, a.steps), a.step_duration)).map_err(Error::Usage)?;
    // The steps are the run's stages, resolved and checked as `--stage` is (duration, rate,
    // a storm within the send phase).
    let mut run = a.run.clone();
    run.shape.built = Some(shape.clone());
    let s = crate::cpu::resolve(&run, &crate::cpu::Budget::detect())?;
    let limit_ms = a.p99.as_secs_f64() * 1e3;
    let halt = Arc::new(AtomicBool::new(false));
    let signals = crate::runtime::signal::Signals::install()?;
    let mut hooks = crate::cmd::run::Hooks { halt: Some(halt.clone()), ..Default::default() };
    hooks.observers.push(watcher(shape, limit_ms, halt.clone()));
    if !s.quiet {
        let r: Vec<String> = rates(a.from, a.factor, a.steps).iter().map(|r| format!("{r}")).collect();
        crate::errln!(
            "herd: knee: {} connections, rate per sender {} /s, {:?} each, bound p99 <= {limit_ms} ms",
            s.connections(),
            r.join(", "),
            a.step_duration
        );
    }
    let mut run = crate::cmd::run::run(s, signals, hooks)?;
    let stages = run.shape.as_ref().map(|sh| sh.stages.clone()).unwrap_or_default();
    let curve: Vec<Step> = stages.iter().filter(|st| st.sent > 0).map(|st| step(st, limit_ms)).collect();
    if halt.load(Ordering::SeqCst) {
        run.notes.push(format!(
            "stopped after two steps in a row past the bound (p99 over {limit_ms} ms); later steps did not run"
        ));
    }
    let (k, outliers) = knee(&curve);
    let k = k.cloned();
    let outlier_rates: Vec<f64> = outliers.iter().map(|&i| curve[i].rate_per_sender).collect();
    for &i in &outliers {
        let (a, b) = (&curve[i], &curve[i + 1]);
        run.notes.push(format!(
            "knee: steps disagreed: {}/s was past the bound (p99 {:.3} ms, {} missed) but {}/s after it was within \
             (p99 {:.3} ms); taken as one noisy step, and the search went on",
            a.rate_per_sender, a.p99_ms, a.missed, b.rate_per_sender, b.p99_ms
        ));
    }
    if let Some(n) = herd_late_note(&curve) {
        run.notes.push(n);
        // A note makes the run's verdict `attention`, as for any other note.
        if run.judged.verdict == "clean" {
            run.judged.verdict = "attention".into();
        }
    }
    let result = KneeResult {
        p99_limit_ms: limit_ms,
        outlier_rates_per_sender: outlier_rates,
        knee_rate_per_sender: k.as_ref().map(|s| s.rate_per_sender),
        knee_deliveries_per_s: k.as_ref().map(|s| s.deliveries_per_s),
        curve,
        run,
    };
    if let Some(p) = &a.knee_out {
        let f = crate::outcome::outfile::OutFile::create("--knee-out", p)?;
        f.write_json(&result)?;
    }
    Ok(result)
}

/// The knee's summary: the run's, then the curve and the knee.
pub fn summary(k: &KneeResult) -> String {
    use std::fmt::Write;
    let mut s = crate::outcome::results::summary(&k.run);
    let _ = writeln!(
        s,
        "knee curve   {:>10} {:>12} {:>9} {:>9} {:>7}",
        "rate/s", "deliveries/s", "p50 ms", "p99 ms", "missed"
    );
    for st in &k.curve {
        let _ = writeln!(
            s,
            "             {:>10} {:>12.1} {:>9.3} {:>9.3} {:>7}  {}",
            st.rate_per_sender,
            st.deliveries_per_s,
            st.p50_ms,
            st.p99_ms,
            st.missed,
            if st.within {
                "within"
            } else if k.outlier_rates_per_sender.contains(&st.rate_per_sender) {
                "past the bound, next step within: outlier"
            } else if st.herd_late {
                "PAST the bound, herd itself sending late"
            } else {
                "PAST the bound"
            }
        );
    }
    match (k.knee_rate_per_sender, k.knee_deliveries_per_s) {
        (Some(r), Some(d)) => {
            let _ =
                writeln!(s, "knee         {r}/s per sender ({d:.1} deliveries/s) with p99 <= {} ms", k.p99_limit_ms);
        }
        _ => {
            let _ = writeln!(s, "knee         none: the first steps were already past p99 <= {} ms", k.p99_limit_ms);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(rate: f64, p99: f64, missed: u64) -> Step {
        Step {
            rate_per_sender: rate,
            deliveries_per_s: rate * 10.0,
            sent: 10,
            delivered: 10,
            missed,
            p50_ms: p99 / 2.0,
            p99_ms: p99,
            within: p99 <= 50.0 && missed == 0,
            sent_late: 0,
            herd_late: false,
        }
    }

    #[test]
    fn a_failed_step_herd_sent_late_is_said_to_be_herds() {
        let mut s = StageResult { rate: 4.0, sent: 1000, expected: 2000, delivered: 2000, ..Default::default() };
        s.latency.corrected.p99_ms = 80.0;
        s.sent_late = 11;
        let late = step(&s, 50.0);
        assert!(!late.within && late.herd_late);
        let curve = vec![st(1.0, 5.0, 0), late.clone(), st(8.0, 90.0, 0)];
        let n = herd_late_note(&curve).unwrap();
        assert!(
            n.starts_with("the step at 4/s per sender went past the bound while herd itself sent late (11 of 1000"),
            "{n}"
        );
        s.sent_late = 10;
        assert!(!step(&s, 50.0).herd_late, "1 % late is within the send lag bound");
        assert!(herd_late_note(&[st(1.0, 5.0, 0), step(&s, 50.0)]).is_none(), "the target's failure, not herd's");
        let later = vec![st(1.0, 90.0, 0), late];
        assert!(herd_late_note(&later).is_none(), "only the first step past the bound is judged");
    }

    #[test]
    fn rates_grow_by_the_factor() {
        assert_eq!(rates(1.0, 2.0, 5), vec![1.0, 2.0, 4.0, 8.0, 16.0]);
        assert_eq!(rates(500_000.0, 2.0, 5), vec![500_000.0, 1_000_000.0]);
    }

    #[test]
    fn the_knee_is_the_last_step_before_the_first_confirmed_crossing() {
        // The run: 2/s past (61.8 ms) between two steps within is one noisy step.
        let noisy = vec![st(1.0, 1.2, 0), st(2.0, 61.8, 0), st(4.0, 12.2, 0), st(8.0, 70.0, 0), st(16.0, 90.0, 0)];
        let (k, outliers) = knee(&noisy);
        assert_eq!(k.unwrap().rate_per_sender, 4.0, "one noisy step does not end the search");
        assert_eq!(outliers, vec![1]);
        let curve = vec![st(1.0, 5.0, 0), st(2.0, 8.0, 0), st(4.0, 70.0, 0), st(8.0, 60.0, 0), st(16.0, 20.0, 0)];
        assert_eq!(
            knee(&curve),
            (Some(&curve[1]), vec![]),
            "two steps past in a row end it; a later lucky one does not count"
        );
        let lossy = vec![st(1.0, 5.0, 0), st(2.0, 8.0, 3)];
        assert_eq!(
            knee(&lossy).0.unwrap().rate_per_sender,
            1.0,
            "missed messages are past the bound; the last step needs no confirmation"
        );
        assert_eq!(knee(&[st(1.0, 90.0, 0)]).0, None);
        assert_eq!(knee(&[st(1.0, 90.0, 0), st(2.0, 95.0, 0)]).0, None);
        assert_eq!(knee(&[st(1.0, 90.0, 0), st(2.0, 5.0, 0)]), (Some(&st(2.0, 5.0, 0)), vec![0]));
    }

    #[test]
    fn steps_are_judged_on_corrected_p99_and_missed() {
        let mut s = StageResult { rate: 4.0, sent: 10, expected: 20, delivered: 20, ..Default::default() };
        s.latency.corrected.p99_ms = 49.0;
        assert!(step(&s, 50.0).within);
        s.latency.corrected.p99_ms = 51.0;
        assert!(!step(&s, 50.0).within);
        s.latency.corrected.p99_ms = 1.0;
        s.missed = 1;
        assert!(!step(&s, 50.0).within);
    }
}
