//! The stages of a `--stage` (or `herd knee`) run on the report page: the per-stage table, and
//! where each stage starts on the time charts.

use super::svg::escape;
use serde_json::Value;
use std::fmt::Write;

fn stages(doc: &Value) -> &[Value] {
    doc.pointer("/shape/stages").and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// When each stage starts, in seconds since the start of the run (the time charts' axis): the
/// results time stages from the start of sending, which follows the connect phase.
pub fn marks(doc: &Value) -> Vec<(f64, String)> {
    let connect = doc.pointer("/phases/connect_s").and_then(Value::as_f64).unwrap_or(0.0);
    stages(doc)
        .iter()
        .enumerate()
        .filter_map(|(i, st)| {
            let start = st.get("start_s")?.as_f64()?;
            Some((connect + start, format!("stage {}", i + 1)))
        })
        .collect()
}

/// The per-stage table (empty for a run without stages).
pub fn table(doc: &Value) -> String {
    let stages = stages(doc);
    if stages.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "<section><h2>Stages</h2><table id=\"stages\"><tr><th>stage</th><th>start s</th><th>end s</th>\
         <th>rate/s</th><th>sent</th><th>expected</th><th>delivered</th><th>missed</th><th>duplicated</th>\
         <th>deliveries/s</th><th>p50 ms</th><th>p99 ms</th><th>connections</th></tr>",
    );
    let num = |v: Option<&Value>| match v {
        Some(Value::Number(n)) if n.is_f64() => {
            let t = format!("{:.3}", n.as_f64().unwrap_or_default());
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        }
        Some(Value::Number(n)) => n.to_string(),
        _ => "-".to_string(),
    };
    for (i, st) in stages.iter().enumerate() {
        let _ = write!(s, "<tr><th>{}</th>", i + 1);
        for key in [
            "/start_s",
            "/end_s",
            "/rate",
            "/sent",
            "/expected",
            "/delivered",
            "/missed",
            "/duplicated",
            "/deliveries_per_s",
            "/latency/corrected/p50_ms",
            "/latency/corrected/p99_ms",
            "/connections",
        ] {
            let _ = write!(s, "<td>{}</td>", escape(&num(st.pointer(key))));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table><p>Times from the start of sending; latency corrected.</p></section>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stages_give_a_row_each_and_marks_from_the_run_start() {
        let doc = json!({"phases": {"connect_s": 0.5}, "shape": {"stages": [
            {"start_s": 0.0, "end_s": 1.0, "rate": 5.0, "sent": 20, "delivered": 40, "missed": 0,
             "latency": {"corrected": {"p99_ms": 1.23456}}},
            {"start_s": 1.0, "end_s": 2.0, "rate": 20.0, "sent": 80, "delivered": 160, "missed": 1, "connections": 12}
        ]}});
        let t = table(&doc);
        assert!(t.contains("<tr><th>1</th><td>0</td><td>1</td><td>5</td><td>20</td><td>-</td><td>40</td>"), "{t}");
        assert!(t.contains("<td>1.235</td><td>-</td></tr>"), "{t}");
        assert!(t.contains("<td>160</td><td>1</td>") && t.ends_with("</section>"), "{t}");
        assert_eq!(marks(&doc), vec![(0.5, "stage 1".to_string()), (1.5, "stage 2".to_string())]);
        assert_eq!(table(&json!({"shape": null})), "");
        assert!(marks(&json!({"shape": {"stages": [1, {"start_s": "x"}]}})).is_empty());
    }
}
