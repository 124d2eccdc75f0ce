//! Merging the shape part of workers' results (`--stage`, `--churn`, `--storm`, outages):
//! per-stage counters add, per-stage and outage histograms add bucket by bucket, outages merge
//! where they overlap in time from the start of sending; the figures then come from the same
//! code as `herd run`'s own (`shape::results`).

use super::input::Input;
use crate::measure::stats::Merged;
use crate::measure::windows::{CoreWindows, MergedWindows};
use crate::shape::results::ShapeResults;
use crate::shape::{Shape, Stage, Storm};

/// A scenario's `--stage`, `--storm` and `--churn`.
type Parts = (Option<Shape>, Option<Storm>, Option<f64>);

/// The shape settings of the scenario as the first file wrote them.
pub fn scenario_parts(i: &Input) -> Result<Parts, String> {
    let s = &i.scenario;
    let shape = match s.get("shape").filter(|v| !v.is_null()) {
        Some(v) => {
            let stages: Vec<Stage> =
                serde_json::from_value(v.clone()).map_err(|e| format!("{}: scenario.shape: {e}", i.name))?;
            Some(Shape::new(stages).map_err(|e| format!("{}: scenario.shape: {e}", i.name))?)
        }
        None => None,
    };
    let storm = match s.get("storm").filter(|v| !v.is_null()) {
        Some(v) => Some(serde_json::from_value(v.clone()).map_err(|e| format!("{}: scenario.storm: {e}", i.name))?),
        None => None,
    };
    let churn = s.get("churn").and_then(|v| v.as_f64());
    Ok((shape, storm, churn))
}

/// One worker's shape figures as one "core" of a merged view.
fn windows(i: &Input, sh: &ShapeResults) -> Result<CoreWindows, String> {
    let decode =
        |what: String, text: &str| super::decode_histogram(&what, text).map_err(|e| format!("{}: {e}", i.name));
    let mut w = CoreWindows::new(sh.stages.len());
    for (k, st) in sh.stages.iter().enumerate() {
        let s = &mut w.stages[k];
        (s.sent, s.expected, s.delivered, s.duplicated) = (st.sent, st.expected, st.delivered, st.duplicated);
        if let Some([c, u]) = sh.histograms.stages.get(k) {
            s.corrected = Some(decode(format!("shape stage {} corrected", k + 1), c)?);
            s.uncorrected = Some(decode(format!("shape stage {} uncorrected", k + 1), u)?);
        }
    }
    let ns = |s: f64| (s.max(0.0) * 1e9) as u64;
    w.outages.closed =
        sh.outages.iter().map(|o| (ns(o.start_s), ns(o.start_s) + ns(o.recovery_s), o.connections_lost)).collect();
    w.outages.delivered = sh.outage_deliveries;
    let [c, u] = &sh.histograms.outages;
    if !c.is_empty() {
        w.outages.corrected = Some(decode("shape outages corrected".into(), c)?);
        w.outages.uncorrected = Some(decode("shape outages uncorrected".into(), u)?);
    }
    Ok(w)
}

/// The merged shape figures, if any worker had some. `send_s` is the longest send phase.
pub fn merge(inputs: &[Input], first: &Input, send_s: f64) -> Result<Option<ShapeResults>, String> {
    if inputs.iter().all(|i| i.doc.shape.is_none()) {
        return Ok(None);
    }
    let (shape, storm, churn) = scenario_parts(first)?;
    let mut m = Merged::new(1);
    let mut mw = MergedWindows::default();
    for (k, i) in inputs.iter().enumerate() {
        if let Some(sh) = &i.doc.shape {
            mw.fold(k, &windows(i, sh)?);
            m.counters.conns_left += sh.left;
            m.counters.conns_rejoined += sh.rejoined;
        }
    }
    m.windows = mw;
    let unfinished: Vec<(f64, f64)> = inputs
        .iter()
        .filter_map(|i| i.doc.shape.as_ref())
        .flat_map(|sh| sh.outages.iter().filter(|o| o.unfinished).map(|o| (o.start_s, o.start_s + o.recovery_s)))
        .collect();
    let mut r = crate::shape::results::build(shape.as_ref(), storm, churn, &m, 0, (send_s * 1e9) as u64, u64::MAX)
        .unwrap_or_default();
    // A merged outage is unfinished when any worker's part of it was.
    for o in &mut r.outages {
        let end = o.start_s + o.recovery_s;
        o.unfinished = unfinished.iter().any(|&(s, e)| s <= end + 1e-9 && e >= o.start_s - 1e-9);
    }
    Ok(Some(r))
}
