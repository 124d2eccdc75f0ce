//! The report's section for a population: what the population was, and per room class its
//! deliveries, losses and latency (corrected and uncorrected), with a chart of p99 by class so
//! that direct messages and thousand-member channels are compared at a glance.

use super::svg::{bars, escape};
use serde_json::Value;
use std::fmt::Write;

fn num(v: &Value, ptr: &str) -> f64 {
    v.pointer(ptr).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

/// The section, or nothing for a grid run.
pub fn section(doc: &Value) -> String {
    let Some(classes) = doc.pointer("/population/classes").and_then(Value::as_array).filter(|c| !c.is_empty()) else {
        return String::new();
    };
    let p = doc.pointer("/population/population").cloned().unwrap_or(Value::Null);
    let mut s = String::from("<section class=\"tables\"><h2>Room classes</h2>");
    let _ = write!(
        s,
        "<p>{} users, {} connections, {} rooms in {} communities, {} memberships; rooms per connection: mean {:.1}, \
         p99 {}, max {}</p>",
        num(&p, "/users"),
        num(&p, "/connections"),
        num(&p, "/rooms"),
        num(&p, "/communities"),
        num(&p, "/memberships"),
        num(&p, "/rooms_per_connection/mean"),
        num(&p, "/rooms_per_connection/p99"),
        num(&p, "/rooms_per_connection/max"),
    );
    s.push_str(
        "<table class=\"classes\"><tr><th>class</th><th>rooms</th><th>fan-out mean / p99 / max</th><th>sent</th>\
         <th>expected</th><th>delivered</th><th>missed</th><th>duplicated</th><th>p50 ms</th><th>p90 ms</th>\
         <th>p99 ms</th><th>p99 ms uncorrected</th></tr>",
    );
    let mut p99 = Vec::new();
    for c in classes {
        let name = c.get("class").and_then(Value::as_str).unwrap_or("?");
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{:.1} / {} / {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>",
            escape(name),
            num(c, "/rooms"),
            num(c, "/fanout/mean"),
            num(c, "/fanout/p99"),
            num(c, "/fanout/max"),
            num(c, "/sent"),
            num(c, "/expected"),
            num(c, "/delivered"),
            num(c, "/missed"),
            num(c, "/duplicated"),
            num(c, "/latency/corrected/p50_ms"),
            num(c, "/latency/corrected/p90_ms"),
            num(c, "/latency/corrected/p99_ms"),
            num(c, "/latency/uncorrected/p99_ms"),
        );
        let v = num(c, "/latency/corrected/p99_ms");
        if v.is_finite() {
            p99.push((name.to_string(), v));
        }
    }
    s.push_str("</table>");
    if !p99.is_empty() {
        s.push_str(&bars("class-p99", "p99 delivery latency by room class (ms, corrected)", &p99));
    }
    s.push_str("</section>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_line_per_class_and_nothing_for_a_grid() {
        let doc = json!({"population": {
        "population": {"users": 10, "connections": 12, "rooms_per_connection": {"mean": 2.5, "p99": 4, "max": 4}},
        "classes": [
            {"class": "dm", "rooms": 5, "sent": 7, "expected": 7, "delivered": 7,
             "latency": {"corrected": {"p99_ms": 2.0}}},
            {"class": "<ch>", "rooms": 1, "latency": {"corrected": {"p99_ms": 80.5}}}
        ]}});
        let s = section(&doc);
        assert_eq!(s.matches("<tr><td>").count(), 2, "{s}");
        assert!(s.contains("<td>&lt;ch&gt;</td>") && s.contains("id=\"class-p99\""), "{s}");
        assert!(s.contains("rooms per connection: mean 2.5, p99 4, max 4"), "{s}");
        assert_eq!(section(&json!({"messages": {}})), "");
        assert_eq!(section(&json!({"population": {"classes": "x"}})), "");
    }
}
