//! A population's metrics per room class, labelled `room_class` (at most
//! `population::config::MAX_CLASSES` values, so the series stay bounded): messages sent, owed
//! and delivered, and exact latency quantiles (corrected and uncorrected) from the class's HDR
//! histograms.

use crate::measure::stats::Merged;
use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};

const QUANTILES: [(f64, &str); 4] = [(0.5, "0.5"), (0.9, "0.9"), (0.99, "0.99"), (1.0, "1")];

/// Registers the per-class series of `classes` (the run's room class names; none for a grid).
pub fn register(
    reg: &Registry,
    name: &dyn Fn(&str) -> String,
    classes: &[String],
    m: &Merged,
) -> prometheus::Result<()> {
    if classes.is_empty() {
        return Ok(());
    }
    let w = &m.windows;
    for (base, help, pick) in [
        ("class_messages_sent_total", "Messages sent in rooms of this class.", 0),
        ("class_messages_expected_total", "Deliveries owed in rooms of this class.", 1),
        ("class_messages_delivered_total", "First receipts of owed messages in rooms of this class.", 2),
    ] {
        let c = IntCounterVec::new(Opts::new(name(base), help), &["room_class"])?;
        for (k, class) in classes.iter().enumerate() {
            let s = w.class(k);
            c.with_label_values(&[class.as_str()]).inc_by([s.sent, s.expected, s.delivered][pick]);
        }
        reg.register(Box::new(c))?;
    }
    let q = GaugeVec::new(
        Opts::new(
            name("class_delivery_latency_quantile_seconds"),
            "Exact delivery latency quantiles per room class over the run so far (HDR histogram).",
        ),
        &["room_class", "quantile", "kind"],
    )?;
    for (k, class) in classes.iter().enumerate() {
        let (c, u) = w.class_histograms(k);
        for (kind, h) in [("corrected", c), ("uncorrected", u)] {
            let Some(h) = h.filter(|h| !h.is_empty()) else { continue };
            for (quantile, label) in QUANTILES {
                q.with_label_values(&[class.as_str(), label, kind]).set(h.value_at_quantile(quantile) as f64 / 1e6);
            }
        }
    }
    reg.register(Box::new(q))
}

#[cfg(test)]
mod tests {
    use crate::measure::stats::{CoreStats, Merged};
    use crate::metrics::{encode, Phase, RunInfo};

    #[test]
    fn each_class_gets_its_series_and_a_grid_none() {
        let mut a =
            CoreStats { windows: crate::measure::windows::CoreWindows::with_classes(0, 2), ..Default::default() };
        a.windows.class_sent(0, 1, false);
        a.windows.class_sent(1, 40, false);
        a.windows.classes[0].record_delivery(2_000_000, 1_000_000);
        for i in 0..40 {
            a.windows.classes[1].record_delivery(80_000_000 + i * 100_000, 70_000_000);
        }
        let mut m = Merged::new(1);
        m.fold(&a.snapshot(0, 1, false));
        let run = RunInfo { room_classes: vec!["dm".into(), "channel".into()], ..Default::default() };
        let t = encode("herd", &run, Phase::Sending, &m);
        let value = |series: &str| -> f64 {
            let line = t.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("no {series} in\n{t}"));
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        assert_eq!(value("herd_class_messages_expected_total{room_class=\"channel\"}"), 40.0);
        assert_eq!(value("herd_class_messages_delivered_total{room_class=\"dm\"}"), 1.0);
        let p99 = value(
            "herd_class_delivery_latency_quantile_seconds{kind=\"corrected\",quantile=\"0.99\",room_class=\"channel\"}",
        );
        assert!((0.08..0.085).contains(&p99), "{p99}");
        let grid = encode("herd", &RunInfo::default(), Phase::Sending, &m);
        assert!(!grid.contains("room_class"), "{grid}");
    }
}
