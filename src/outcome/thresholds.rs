//! Pass/fail thresholds of a run: `--threshold 'p99<50ms'`, `--threshold 'missed==0'`,
//! `--threshold 'connect_failed<1%'` (or `threshold = [...]` in the scenario file). Each names a
//! headline figure ([`crate::outcome::headline`]), an operator and a limit; after the run each is judged
//! against the results, shown in the summary and written to the results. A crossed threshold
//! makes herd exit with [`EXIT_CROSSED`]. With `--abort-on-fail` the figures known while sending
//! are judged every second, and the first crossing stops sending early.

use crate::config::units;
use crate::error::{Error, Result};
use crate::outcome::headline::{self, Figure, Unit};
use clap::Args;
use serde::Serialize;
use serde_json::Value;

pub use crate::error::EXIT_CROSSED;

#[derive(Args, Debug, Default, Clone)]
pub struct ThresholdArgs {
    /// Pass/fail condition on a figure, e.g. 'p99<50ms', 'missed==0', 'connect_failed<1%'
    /// (repeatable). A crossed threshold exits 99
    #[arg(long = "threshold", value_name = "FIGURE OP LIMIT")]
    pub thresholds: Vec<String>,
    /// Stop sending as soon as a threshold is crossed (judged every second on the figures known
    /// while sending: latency, connections, duplicates, reordering, errors)
    #[arg(long)]
    pub abort_on_fail: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Op {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    fn holds(self, v: f64, limit: f64) -> bool {
        match self {
            Op::Lt => v < limit,
            Op::Le => v <= limit,
            Op::Gt => v > limit,
            Op::Ge => v >= limit,
            Op::Eq => v == limit,
            Op::Ne => v != limit,
        }
    }
}

/// One parsed threshold.
#[derive(Clone, Debug, Serialize)]
pub struct Threshold {
    /// As written.
    pub text: String,
    pub figure: String,
    pub op: Op,
    /// In the figure's unit (milliseconds for times), or percent when `percent`.
    pub limit: f64,
    pub percent: bool,
    #[serde(skip)]
    fig: Option<Figure>,
}

/// A threshold judged against a run.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub threshold: String,
    /// The measured value, in the threshold's terms (percent for a percentage threshold); null
    /// when the run did not measure the figure, which fails the threshold.
    pub value: Option<f64>,
    /// The value's unit: `ms`, `%`, `/s`, `B`, `µs`, or empty for counts.
    pub unit: &'static str,
    pub passed: bool,
}

/// Parses `FIGURE OP LIMIT`: `p99<50ms`, `p99 <= 1.5s`, `missed==0`, `connect_failed<1%`,
/// `deliveries_per_s>=10k`. Times take a unit (`us`, `ms`, `s`, `m`) or are milliseconds.
pub fn parse(text: &str) -> std::result::Result<Threshold, String> {
    let t = text.trim();
    let at = t.find(['<', '>', '=', '!']).ok_or_else(|| format!("'{text}': no operator (<, <=, >, >=, ==, !=)"))?;
    let (name, rest) = t.split_at(at);
    let (op, limit) = [("<=", Op::Le), (">=", Op::Ge), ("==", Op::Eq), ("!=", Op::Ne), ("<", Op::Lt), (">", Op::Gt)]
        .iter()
        .find_map(|(s, op)| rest.strip_prefix(s).map(|l| (*op, l.trim())))
        .ok_or_else(|| format!("'{text}': unknown operator (use <, <=, >, >=, ==, !=)"))?;
    let name = name.trim();
    let fig = headline::lookup(name).ok_or_else(|| {
        format!("'{text}': unknown figure '{name}' (known: {}, errors.<category>)", headline::names().join(", "))
    })?;
    if limit.is_empty() {
        return Err(format!("'{text}': no limit after the operator"));
    }
    let (limit, percent) = if let Some(p) = limit.strip_suffix('%') {
        if fig.percent_of.is_none() {
            return Err(format!("'{text}': {} has no percentage (it is not a share of anything)", fig.name));
        }
        let v: f64 = p.trim().parse().map_err(|_| format!("'{text}': '{limit}' is not a percentage"))?;
        (v, true)
    } else if fig.unit == Unit::Ms {
        match limit.parse::<f64>() {
            Ok(v) => (v, false),
            Err(_) => {
                (units::parse_duration(limit).map_err(|e| format!("'{text}': {e}"))?.as_secs_f64() * 1000.0, false)
            }
        }
    } else {
        match limit.parse::<f64>() {
            Ok(v) => (v, false),
            Err(_) => (units::parse_rate(limit).map_err(|e| format!("'{text}': {e}"))?, false),
        }
    };
    if !limit.is_finite() {
        return Err(format!("'{text}': the limit must be a finite number"));
    }
    Ok(Threshold { text: t.to_string(), figure: fig.name.clone(), op, limit, percent, fig: Some(fig) })
}

impl Threshold {
    fn figure(&self) -> Figure {
        self.fig.clone().or_else(|| headline::lookup(&self.figure)).expect("parsed thresholds name known figures")
    }

    /// The measured value in this threshold's terms.
    pub fn measure(&self, doc: &Value) -> Option<f64> {
        let f = self.figure();
        if self.percent {
            f.percent(doc)
        } else {
            f.value(doc)
        }
    }

    pub fn judge(&self, doc: &Value) -> Verdict {
        let value = self.measure(doc);
        let unit = if self.percent {
            "%"
        } else {
            match self.figure().unit {
                Unit::Ms => "ms",
                Unit::Count => "",
                Unit::PerSecond => "/s",
                Unit::Bytes => "B",
                Unit::Micros => "µs",
            }
        };
        Verdict {
            threshold: self.text.clone(),
            value,
            unit,
            passed: value.is_some_and(|v| self.op.holds(v, self.limit)),
        }
    }

    /// Whether this threshold can be judged before the run ends.
    pub fn live(&self) -> bool {
        !self.figure().final_only
    }
}

/// The thresholds of a run and whether to stop at the first crossing.
#[derive(Clone, Debug, Default)]
pub struct Judge {
    pub thresholds: Vec<Threshold>,
    pub abort_on_fail: bool,
}

/// The `--threshold` flags (a scenario file's `threshold` list arrives as those flags; an empty
/// one, `threshold = []`, as `--threshold ''`: none) and `--abort-on-fail`.
pub fn resolve(a: &ThresholdArgs) -> Result<Judge> {
    let thresholds = (a.thresholds.iter().filter(|t| !t.is_empty()))
        .map(|t| parse(t).map_err(|e| Error::Usage(format!("--threshold: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    let abort_on_fail = a.abort_on_fail;
    if abort_on_fail && thresholds.is_empty() {
        return Err(Error::Usage("--abort-on-fail: no --threshold to judge".into()));
    }
    Ok(Judge { thresholds, abort_on_fail })
}

impl Judge {
    pub fn judge(&self, doc: &Value) -> Vec<Verdict> {
        self.thresholds.iter().map(|t| t.judge(doc)).collect()
    }

    /// The first live threshold crossed by the figures so far, if any. A figure not measured
    /// yet (no delivery so far) is not a crossing.
    pub fn first_live_crossing(&self, doc: &Value) -> Option<Verdict> {
        self.thresholds.iter().filter(|t| t.live()).map(|t| t.judge(doc)).find(|v| v.value.is_some() && !v.passed)
    }
}

/// What a run's results say about how it went, beyond its figures (flattened into the results
/// document: `verdict`, `thresholds`, `series`).
#[derive(Serialize, Debug, Clone, Default)]
pub struct Judged {
    /// `clean`; `attention` when the notes report an ending the figures alone do not show (see
    /// [`crate::outcome::endings`]); `failed` when a threshold was crossed.
    pub verdict: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<Verdict>,
    /// The run over time, for the HTML report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<crate::outcome::series::Series>,
    /// Where the run ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<Host>,
}

impl Judged {
    pub fn crossed(&self) -> bool {
        self.thresholds.iter().any(|v| !v.passed)
    }
}

/// The verdict word for a run.
pub fn verdict(crossed: bool, attention: bool) -> &'static str {
    if crossed {
        "failed"
    } else if attention {
        "attention"
    } else {
        "clean"
    }
}

/// The summary's threshold lines: `threshold    ✓ p99<50ms  (12.345)`.
pub fn summary_lines(verdicts: &[Verdict]) -> String {
    let mut s = String::new();
    for v in verdicts {
        let value = match v.value {
            Some(x) if v.unit.is_empty() => format!("{x}"),
            Some(x) => format!("{x:.3} {}", v.unit),
            None => "not measured".into(),
        };
        let mark = if v.passed { "pass" } else { "FAIL" };
        s.push_str(&format!("threshold    {mark}  {:<28} measured {value}\n", v.threshold));
    }
    s
}

/// The generator's host, for reading a baseline later.
#[derive(serde::Serialize, Debug, Clone)]
pub struct Host {
    pub name: String,
    pub kernel: String,
    pub cpus: usize,
}

impl Host {
    pub fn this() -> Host {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
        Host { name: crate::metrics::hostname(), kernel, cpus: crate::runtime::executor::online_cores().len() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "latency": {"corrected": {"p99_ms": 42.0, "max_ms": 80.0}},
            "connections": {"attempted": 1000, "established": 995, "failed": 5},
            "messages": {"expected": 100, "delivered": 100, "missed": 0, "duplicated": 2},
            "errors": {"connect_timeout": 5},
            "phases": {"send_s": 1.0, "drain_s": 1.0}
        })
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_errs_without_panicking(t in "\\PC{0,40}", limit in "[-<>=!%0-9a-zµ. ]{0,12}") {
            let _ = parse(&t);
            let _ = parse(&format!("p99{limit}"));
        }
    }

    #[test]
    fn parses_the_documented_forms() {
        let t = parse("p99<50ms").unwrap();
        assert_eq!((t.figure.as_str(), t.op, t.limit, t.percent), ("p99", Op::Lt, 50.0, false));
        assert_eq!(parse("p99 <= 1.5s").unwrap().limit, 1500.0);
        assert_eq!(parse("max<250us").unwrap().limit, 0.25);
        assert_eq!(parse("p99<20").unwrap().limit, 20.0, "bare times are milliseconds");
        let t = parse("connect_failed<1%").unwrap();
        assert!(t.percent && t.limit == 1.0);
        assert_eq!(parse("deliveries_per_s>=10k").unwrap().limit, 10_000.0);
        assert_eq!(parse("missed==0").unwrap().op, Op::Eq);
        assert_eq!(parse("errors.reset!=3").unwrap().op, Op::Ne);
    }

    #[test]
    fn bad_thresholds_say_what_is_wrong() {
        let e = |t: &str| parse(t).unwrap_err();
        assert!(e("p99").contains("no operator"));
        assert!(e("p98<5ms").contains("unknown figure 'p98'"));
        assert!(e("p99<").contains("no limit"));
        assert!(e("p99<fast").contains("fast"));
        assert!(e("p99<5%").contains("no percentage"));
        assert!(e("missed=<3").contains("unknown operator"));
        assert!(e("missed<x%").contains("not a percentage"));
        let err = resolve(&ThresholdArgs { thresholds: vec!["nope<1".into()], ..Default::default() }).unwrap_err();
        assert_eq!(err.exit_code(), 64);
        assert!(err.to_string().starts_with("--threshold:"), "{err}");
        let err = resolve(&ThresholdArgs { abort_on_fail: true, ..Default::default() }).unwrap_err();
        assert!(err.to_string().contains("--abort-on-fail"), "{err}");
    }

    #[test]
    fn verdicts_follow_the_measured_values() {
        let j = resolve(&ThresholdArgs {
            thresholds: vec![
                "p99<50ms".into(),
                "max<50ms".into(),
                "connect_failed<1%".into(),
                "connect_failed<=0.4%".into(),
            ],
            abort_on_fail: true,
        })
        .unwrap();
        assert!(j.abort_on_fail);
        let v = j.judge(&doc());
        assert_eq!(v.iter().map(|v| v.passed).collect::<Vec<_>>(), [true, false, true, false]);
        assert_eq!(v[2].value, Some(0.5));
        assert_eq!(v[1].value, Some(80.0));
        let lines = summary_lines(&v);
        assert!(lines.contains("pass  p99<50ms") && lines.contains("FAIL  max<50ms"), "{lines}");
        assert!(lines.contains("measured 80.000 ms") && lines.contains("measured 0.500 %"), "{lines}");
    }

    #[test]
    fn empty_thresholds_are_none_and_unmeasured_figures_fail() {
        let a = ThresholdArgs { thresholds: vec!["missed==0".into(), String::new()], ..Default::default() };
        let j = resolve(&a).unwrap();
        assert_eq!(j.thresholds.len(), 1);
        assert!(j.judge(&doc())[0].passed);
        let v = parse("rss_per_conn<4k").unwrap().judge(&doc());
        assert!(!v.passed && v.value.is_none(), "a figure the run did not measure cannot pass");
    }

    #[test]
    fn live_judging_skips_final_figures_and_unmeasured_ones() {
        let j = resolve(&ThresholdArgs {
            thresholds: vec!["missed==0".into(), "duplicated<1".into()],
            ..Default::default()
        })
        .unwrap();
        let mut d = doc();
        d["messages"]["missed"] = json!(7);
        assert_eq!(j.first_live_crossing(&d).unwrap().threshold, "duplicated<1");
        let j =
            resolve(&ThresholdArgs { thresholds: vec!["missed==0".into(), "p50<1ms".into()], ..Default::default() })
                .unwrap();
        assert!(j.first_live_crossing(&d).is_none(), "missed is final-only; p50 is not measured");
    }
}
