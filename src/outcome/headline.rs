//! The headline figures of a run, by name, read from its results document (the `--out` JSON).
//! Thresholds (`herd run --threshold`), `herd compare` and the HTML report all name figures
//! through this one table, so a name means the same thing everywhere.

use serde_json::Value;

/// Which way is better for a figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

/// A figure's unit, for parsing limits and printing values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Ms,
    Count,
    PerSecond,
    Bytes,
    Micros,
}

#[derive(Clone, Copy, Debug)]
enum Source {
    /// A JSON pointer into the results document.
    Ptr(&'static str),
    /// The sum of every error category.
    ErrorsTotal,
    /// delivered / (send + drain seconds).
    DeliveriesPerSecond,
}

/// One named figure.
#[derive(Clone, Debug)]
pub struct Figure {
    pub name: String,
    pub unit: Unit,
    pub better: Better,
    /// What a percentage of this figure is taken of (a pointer), if it has one.
    pub percent_of: Option<&'static str>,
    /// Known only once the run has ended (not judged on live figures).
    pub final_only: bool,
    source: Source,
}

use Better::*;
use Source::*;
use Unit::*;

const ATTEMPTED: &str = "/connections/attempted";
const EXPECTED: &str = "/messages/expected";
/// The send phase times herd's executor threads: what run-queue wait and busy time are shares of.
const THREAD_MS: &str = "/generator/cpu/thread_ms";

/// name, source, unit, better, percent of, final only.
type Row = (&'static str, Source, Unit, Better, Option<&'static str>, bool);

#[rustfmt::skip]
const TABLE: &[Row] = &[
    ("p50", Ptr("/latency/corrected/p50_ms"), Ms, Lower, None, false),
    ("p90", Ptr("/latency/corrected/p90_ms"), Ms, Lower, None, false),
    ("p99", Ptr("/latency/corrected/p99_ms"), Ms, Lower, None, false),
    ("p999", Ptr("/latency/corrected/p999_ms"), Ms, Lower, None, false),
    ("max", Ptr("/latency/corrected/max_ms"), Ms, Lower, None, false),
    ("mean", Ptr("/latency/corrected/mean_ms"), Ms, Lower, None, false),
    ("uncorrected_p50", Ptr("/latency/uncorrected/p50_ms"), Ms, Lower, None, false),
    ("uncorrected_p90", Ptr("/latency/uncorrected/p90_ms"), Ms, Lower, None, false),
    ("uncorrected_p99", Ptr("/latency/uncorrected/p99_ms"), Ms, Lower, None, false),
    ("uncorrected_p999", Ptr("/latency/uncorrected/p999_ms"), Ms, Lower, None, false),
    ("uncorrected_max", Ptr("/latency/uncorrected/max_ms"), Ms, Lower, None, false),
    ("uncorrected_mean", Ptr("/latency/uncorrected/mean_ms"), Ms, Lower, None, false),
    ("connect_p50", Ptr("/connect/p50_ms"), Ms, Lower, None, false),
    ("connect_p99", Ptr("/connect/p99_ms"), Ms, Lower, None, false),
    ("connect_max", Ptr("/connect/max_ms"), Ms, Lower, None, false),
    ("connect_mean", Ptr("/connect/mean_ms"), Ms, Lower, None, false),
    ("established", Ptr("/connections/established"), Count, Higher, Some(ATTEMPTED), false),
    ("connect_failed", Ptr("/connections/failed"), Count, Lower, Some(ATTEMPTED), false),
    ("closed_by_peer", Ptr("/connections/closed_by_peer"), Count, Lower, Some("/connections/established"), false),
    ("reconnected", Ptr("/connections/reconnected"), Count, Lower, Some("/connections/established"), false),
    ("peak_open", Ptr("/connections/peak_open"), Count, Higher, Some(ATTEMPTED), false),
    ("sent", Ptr("/messages/sent"), Count, Higher, None, false),
    ("expected", Ptr("/messages/expected"), Count, Higher, None, false),
    ("delivered", Ptr("/messages/delivered"), Count, Higher, Some(EXPECTED), false),
    ("missed", Ptr("/messages/missed"), Count, Lower, Some(EXPECTED), true),
    ("duplicated", Ptr("/messages/duplicated"), Count, Lower, Some(EXPECTED), false),
    ("reordered", Ptr("/messages/reordered"), Count, Lower, Some(EXPECTED), false),
    ("unexpected", Ptr("/messages/unexpected"), Count, Lower, Some(EXPECTED), false),
    ("unsent", Ptr("/messages/unsent"), Count, Lower, Some("/messages/sent"), false),
    ("missed_while_away", Ptr("/messages/missed_while_away"), Count, Lower, Some(EXPECTED), false),
    ("errors", ErrorsTotal, Count, Lower, Some(ATTEMPTED), false),
    ("deliveries_per_s", DeliveriesPerSecond, PerSecond, Higher, None, true),
    ("rss_per_conn", Ptr("/process/rss_per_connection_bytes"), Bytes, Lower, None, true),
    ("cpu_per_delivery", Ptr("/process/cpu_per_delivery_us"), Micros, Lower, None, true),
    ("rss_peak", Ptr("/process/rss_peak_bytes"), Bytes, Lower, None, true),
    ("send_lag_p50", Ptr("/generator/send_lag/p50_ms"), Ms, Lower, None, false),
    ("send_lag_p99", Ptr("/generator/send_lag/p99_ms"), Ms, Lower, None, false),
    ("send_lag_max", Ptr("/generator/send_lag/max_ms"), Ms, Lower, None, false),
    ("read_lag_p50", Ptr("/generator/read_lag/p50_ms"), Ms, Lower, None, false),
    ("read_lag_p99", Ptr("/generator/read_lag/p99_ms"), Ms, Lower, None, false),
    ("read_lag_max", Ptr("/generator/read_lag/max_ms"), Ms, Lower, None, false),
    ("run_queue_wait", Ptr("/generator/cpu/run_queue_wait_ms"), Ms, Lower, Some(THREAD_MS), true),
    ("herd_busy", Ptr("/generator/cpu/busy_ms"), Ms, Lower, Some(THREAD_MS), true),
];

/// Other spellings accepted for a name.
const ALIASES: &[(&str, &str)] = &[
    ("p99.9", "p999"),
    ("uncorrected_p99.9", "uncorrected_p999"),
    ("failed", "connect_failed"),
    ("rss_per_connection", "rss_per_conn"),
    ("cpu_per_delivery_us", "cpu_per_delivery"),
];

/// The figure a name stands for: a table name, an alias, or `errors.<category>` (any category
/// of the results' `errors` map, e.g. `errors.connect_timeout`).
pub fn lookup(name: &str) -> Option<Figure> {
    let name = ALIASES.iter().find(|(a, _)| *a == name).map(|(_, n)| *n).unwrap_or(name);
    if let Some(cat) = name.strip_prefix("errors.") {
        if !crate::measure::stats::ErrorKind::ALL.iter().any(|k| k.name() == cat) {
            return None;
        }
        return Some(Figure {
            name: name.to_string(),
            unit: Count,
            better: Lower,
            percent_of: Some(ATTEMPTED),
            final_only: false,
            source: ErrorsTotal,
        });
    }
    TABLE.iter().find(|r| r.0 == name).map(|&(n, source, unit, better, percent_of, final_only)| Figure {
        name: n.to_string(),
        unit,
        better,
        percent_of,
        final_only,
        source,
    })
}

/// Every figure name in table order (for `herd compare`, which shows them all, and for error
/// messages).
pub fn names() -> Vec<&'static str> {
    TABLE.iter().map(|r| r.0).collect()
}

impl Figure {
    /// The figure's value in a results document; `None` when the run did not measure it (for
    /// example memory per connection with the embedded server).
    pub fn value(&self, doc: &Value) -> Option<f64> {
        match self.source {
            Ptr(p) => doc.pointer(p)?.as_f64(),
            ErrorsTotal => {
                let errors = doc.get("errors")?.as_object()?;
                match self.name.strip_prefix("errors.") {
                    Some(cat) => errors.get(cat)?.as_f64(),
                    None => Some(errors.values().filter_map(Value::as_f64).sum()),
                }
            }
            DeliveriesPerSecond => {
                let delivered = doc.pointer("/messages/delivered")?.as_f64()?;
                let secs = doc.pointer("/phases/send_s")?.as_f64()? + doc.pointer("/phases/drain_s")?.as_f64()?;
                (secs > 0.0).then(|| delivered / secs)
            }
        }
    }

    /// The value as a percentage of its `percent_of` figure (0 % of nothing is 0 %).
    pub fn percent(&self, doc: &Value) -> Option<f64> {
        let v = self.value(doc)?;
        let of = doc.pointer(self.percent_of?)?.as_f64()?;
        if of == 0.0 {
            return (v == 0.0).then_some(0.0);
        }
        Some(100.0 * v / of)
    }
}

/// A value in a figure's unit, for tables: `12.345 ms`, `1200`, `2183 B`.
pub fn show(unit: Unit, v: f64) -> String {
    match unit {
        Ms => format!("{v:.3} ms"),
        Count => format!("{v:.0}"),
        PerSecond => format!("{v:.1}/s"),
        Bytes => format!("{v:.0} B"),
        Micros => format!("{v:.2} µs"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "latency": {"corrected": {"p99_ms": 12.5}, "uncorrected": {"p99_ms": 3.0}},
            "connections": {"attempted": 200, "established": 198, "failed": 2},
            "messages": {"expected": 1000, "delivered": 990, "missed": 10},
            "errors": {"connect_timeout": 2, "reset": 3},
            "phases": {"send_s": 9.0, "drain_s": 1.0},
            "process": {"rss_per_connection_bytes": null}
        })
    }

    #[test]
    fn names_aliases_and_categories_resolve() {
        assert_eq!(lookup("p99").unwrap().value(&doc()), Some(12.5));
        assert_eq!(lookup("uncorrected_p99").unwrap().value(&doc()), Some(3.0));
        assert_eq!(lookup("failed").unwrap().name, "connect_failed");
        assert_eq!(lookup("errors").unwrap().value(&doc()), Some(5.0));
        assert_eq!(lookup("errors.reset").unwrap().value(&doc()), Some(3.0));
        assert!(lookup("errors.nonsense").is_none());
        assert!(lookup("p98").is_none());
        assert_eq!(lookup("deliveries_per_s").unwrap().value(&doc()), Some(99.0));
        assert_eq!(lookup("rss_per_conn").unwrap().value(&doc()), None, "not measured is not zero");
        for n in names() {
            assert!(lookup(n).is_some(), "{n}");
        }
    }

    #[test]
    fn herds_own_delays_are_figures_too() {
        let d = json!({"generator": {
            "send_lag": {"p99_ms": 9.5, "max_ms": 12.0},
            "cpu": {"thread_ms": 4000.0, "run_queue_wait_ms": 1520.0}
        }});
        assert_eq!(lookup("send_lag_p99").unwrap().value(&d), Some(9.5));
        assert_eq!(lookup("send_lag_max").unwrap().value(&d), Some(12.0));
        assert_eq!(lookup("run_queue_wait").unwrap().percent(&d), Some(38.0));
        assert_eq!(lookup("read_lag_p99").unwrap().value(&d), None, "not measured is not zero");
    }

    #[test]
    fn percentages_are_of_the_named_base() {
        assert_eq!(lookup("connect_failed").unwrap().percent(&doc()), Some(1.0));
        assert_eq!(lookup("missed").unwrap().percent(&doc()), Some(1.0));
        assert_eq!(lookup("p99").unwrap().percent(&doc()), None);
        let empty = json!({"connections": {"attempted": 0, "failed": 0}});
        assert_eq!(lookup("connect_failed").unwrap().percent(&empty), Some(0.0));
    }
}
