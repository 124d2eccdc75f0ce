//! What `herd run` adds to a load for judging it: a reporter observer recording the run over
//! time ([`crate::outcome::series`]), with `--abort-on-fail` a live threshold watch, and at the end the
//! honest-ending notes, herd's own delay ([`crate::outcome::generator`]), the threshold verdicts
//! and the run's verdict.

use crate::client::Phase;
use crate::drive::load::Hooks;
use crate::measure::stats::Merged;
use crate::outcome::results::RunResult;
use crate::outcome::series::{self, Recorder, Series};
use crate::outcome::thresholds::{self, Judge, Verdict};
use std::sync::{Arc, Mutex};

/// Shared with the reporter's observers.
pub struct Watch {
    recorder: Arc<Mutex<Recorder>>,
    /// The first threshold crossed while connecting or sending (with `--abort-on-fail`), and
    /// when (seconds into the run).
    crossing: Arc<Mutex<Option<(Verdict, f64)>>>,
}

impl Watch {
    pub fn add(hooks: &mut Hooks, judge: &Judge) -> Watch {
        let recorder = Arc::new(Mutex::new(Recorder::default()));
        hooks.observers.push(Recorder::observer(recorder.clone()));
        let crossing: Arc<Mutex<Option<(Verdict, f64)>>> = Arc::default();
        if judge.abort_on_fail {
            let (judge, crossing, t0) = (judge.clone(), crossing.clone(), std::time::Instant::now());
            hooks.observers.push(Box::new(move |m: &Merged, phase| {
                if !matches!(phase, Phase::Starting | Phase::Connecting | Phase::Sending) {
                    return;
                }
                if let Ok(mut c) = crossing.lock() {
                    if c.is_none() {
                        *c = judge
                            .first_live_crossing(&crate::outcome::results::live_doc(m))
                            .map(|v| (v, t0.elapsed().as_secs_f64()));
                    }
                }
            }));
        }
        Watch { recorder, crossing }
    }

    pub fn crossed(&self) -> bool {
        self.crossing.lock().map(|c| c.is_some()).unwrap_or(false)
    }

    fn crossing(&self) -> Option<(Verdict, f64)> {
        self.crossing.lock().ok().and_then(|c| c.clone())
    }

    fn samples(&self) -> Vec<series::Sample> {
        self.recorder.lock().map(|mut r| std::mem::take(&mut r.samples)).unwrap_or_default()
    }
}

/// Fills the notes, series, threshold verdicts and verdict of a finished run.
pub fn conclude(r: &mut RunResult, judge: &Judge, watch: &Watch, m: &Merged, pending_at_drain_end: u64) {
    if let Some((v, at)) = watch.crossing() {
        r.notes.push(format!(
            "stopped early (--abort-on-fail): {} crossed at {at:.0}s (measured {})",
            v.threshold,
            v.value.map(|x| format!("{x:.3}")).unwrap_or_default()
        ));
    }
    r.notes.extend(crate::outcome::endings::notes(r, pending_at_drain_end));
    r.generator = crate::outcome::generator::build(&m.total, r.generator.cpu.take());
    r.notes.extend(crate::outcome::generator::note(&r.generator));
    r.judged.series = Some(Series {
        samples: watch.samples(),
        corrected_spectrum: series::spectrum(&m.total.corrected),
        uncorrected_spectrum: series::spectrum(&m.total.uncorrected),
    });
    if !judge.thresholds.is_empty() {
        let doc = serde_json::to_value(&*r).unwrap_or_default();
        r.judged.thresholds = judge.judge(&doc);
    }
    r.judged.host = Some(crate::outcome::thresholds::Host::this());
    r.judged.verdict = thresholds::verdict(r.judged.crossed(), !r.notes.is_empty()).to_string();
}
