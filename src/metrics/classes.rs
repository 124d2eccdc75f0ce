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
