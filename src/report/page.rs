//! The report page: header, verdict and thresholds, notes, charts, and tables of every figure,
//! from a results document (and optionally an HdrHistogram log's series).

use super::hdrlog::LogSeries;
use super::svg::{bars, escape, line_chart, line_chart_marked, Line, XAxis};
use serde_json::Value;
use std::fmt::Write;

const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("readout.js");

fn f(v: &Value, ptr: &str) -> f64 {
    v.pointer(ptr).and_then(Value::as_f64).unwrap_or(0.0)
}

fn text(v: &Value, ptr: &str) -> String {
    match v.pointer(ptr) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

fn pairs(v: &Value, ptr: &str) -> Vec<(f64, f64)> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?))).collect())
        .unwrap_or_default()
}

/// A key/value table of an object's scalar members (nested objects flattened with dots); `id`
/// names the table.
fn table(title: &str, id: &str, v: Option<&Value>) -> String {
    let mut rows = vec![];
    fn walk(prefix: &str, v: &Value, rows: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&key, x, rows);
                }
            }
            Value::String(s) => rows.push((prefix.to_string(), s.clone())),
            // Floats to three decimals: the JSON keeps full precision for tools.
            Value::Number(n) if n.is_f64() => {
                let x = n.as_f64().unwrap_or_default();
                let t = format!("{x:.3}");
                rows.push((prefix.to_string(), t.trim_end_matches('0').trim_end_matches('.').to_string()))
            }
            other => rows.push((prefix.to_string(), other.to_string())),
        }
    }
    if let Some(v) = v {
        walk("", v, &mut rows);
    }
    let mut s = format!("<section class=\"table\"><h3>{}</h3><table id=\"{}\">", escape(title), escape(id));
    for (k, val) in rows {
        let _ = write!(s, "<tr><th>{}</th><td>{}</td></tr>", escape(&k), escape(&val));
    }
    s.push_str("</table></section>");
    s
}

/// Per-second rates from cumulative counts in the samples (which start from 0 at the start of
/// the run, so the first sample has a rate too).
fn rate(samples: &[Value], key: &str) -> Vec<(f64, f64)> {
    let start = serde_json::json!({"t_s": 0.0, key: 0});
    std::iter::once(&start)
        .chain(samples)
        .collect::<Vec<_>>()
        .windows(2)
        .filter_map(|w| {
            let (t0, t1) = (w[0].get("t_s")?.as_f64()?, w[1].get("t_s")?.as_f64()?);
            let (a, b) = (w[0].get(key)?.as_f64()?, w[1].get(key)?.as_f64()?);
            (t1 > t0).then(|| (t1, (b - a).max(0.0) / (t1 - t0)))
        })
        .collect()
}

fn series_of(samples: &[Value], key: &str) -> Vec<(f64, f64)> {
    samples.iter().filter_map(|s| Some((s.get("t_s")?.as_f64()?, s.get(key)?.as_f64()?))).collect()
}

/// `key` is `corrected` or `uncorrected`; `i` 0 = p50, 1 = p99, 2 = max.
fn latency_of(samples: &[Value], key: &str, i: usize) -> Vec<(f64, f64)> {
    samples.iter().filter_map(|s| Some((s.get("t_s")?.as_f64()?, s.get(key)?.get(i)?.as_f64()?))).collect()
}

fn latency_charts(
    doc: &Value,
    samples: &[Value],
    log: Option<&LogSeries>,
    marks: &[(f64, String)],
) -> (String, String) {
    let (dist, over_time, source) = match log {
        Some(l) => {
            let col = |v: &[[f64; 4]], i: usize| v.iter().map(|p| (p[0], p[i])).collect::<Vec<_>>();
            let sp = |v: &[[f64; 2]]| v.iter().map(|p| (p[0], p[1])).collect::<Vec<_>>();
            (
                vec![
                    Line { name: "corrected".into(), points: sp(&l.corrected_spectrum) },
                    Line { name: "uncorrected".into(), points: sp(&l.uncorrected_spectrum) },
                ],
                vec![
                    Line { name: "corrected p50".into(), points: col(&l.corrected, 1) },
                    Line { name: "corrected p99".into(), points: col(&l.corrected, 2) },
                    Line { name: "corrected max".into(), points: col(&l.corrected, 3) },
                    Line { name: "uncorrected p99".into(), points: col(&l.uncorrected, 2) },
                ],
                "HdrHistogram log",
            )
        }
        None => (
            vec![
                Line { name: "corrected".into(), points: pairs(doc, "/series/corrected_spectrum") },
                Line { name: "uncorrected".into(), points: pairs(doc, "/series/uncorrected_spectrum") },
            ],
            vec![
                Line { name: "corrected p50".into(), points: latency_of(samples, "corrected", 0) },
                Line { name: "corrected p99".into(), points: latency_of(samples, "corrected", 1) },
                Line { name: "corrected max".into(), points: latency_of(samples, "corrected", 2) },
                Line { name: "uncorrected p99".into(), points: latency_of(samples, "uncorrected", 1) },
            ],
            "results",
        ),
    };
    (
        line_chart(
            "latency-distribution",
            &format!("Delivery latency by percentile ({source})"),
            XAxis::Percentile,
            "ms",
            &dist,
        ),
        line_chart_marked(
            "latency-over-time",
            &format!("Delivery latency per interval ({source})"),
            XAxis::Time,
            "ms",
            &over_time,
            marks,
        ),
    )
}

/// Unix seconds as `2026-11-29 11:54:15 UTC` (days to civil date: Howard Hinnant's algorithm).
pub fn utc(unix_s: f64) -> String {
    let secs = unix_s.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The whole page.
pub fn render(doc: &Value, log: Option<&LogSeries>) -> String {
    let samples: Vec<Value> = doc.pointer("/series/samples").and_then(Value::as_array).cloned().unwrap_or_default();
    let verdict = text(doc, "/verdict");
    let title = format!("herd run {} — {}", text(doc, "/run_id"), text(doc, "/target"));
    let mut s = String::with_capacity(64 * 1024);
    let _ = write!(
        s,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style>\
         </head><body><pre id=\"console-errors\"></pre><header><h1>{}</h1><p>herd {} · started {} · \
         {:.1} s · outcome <b>{}</b> · verdict <b class=\"verdict-{}\">{}</b></p><p>host {} · {} cpus · kernel {}</p>\
         </header>",
        escape(&title),
        escape(&title),
        escape(&text(doc, "/herd_version")),
        utc(f(doc, "/started_at_unix_s")),
        f(doc, "/duration_s"),
        escape(&text(doc, "/outcome")),
        escape(&verdict),
        escape(&verdict),
        escape(&text(doc, "/host/name")),
        text(doc, "/host/cpus"),
        escape(&text(doc, "/host/kernel")),
    );
    if let Some(th) = doc.get("thresholds").and_then(Value::as_array).filter(|a| !a.is_empty()) {
        s.push_str("<section><h2>Thresholds</h2><table class=\"thresholds\"><tr><th>threshold</th><th>measured</th><th>verdict</th></tr>");
        for t in th {
            let passed = t.get("passed").and_then(Value::as_bool).unwrap_or(false);
            let measured = match t.get("value").and_then(Value::as_f64) {
                Some(v) => format!("{v} {}", escape(t.get("unit").and_then(Value::as_str).unwrap_or_default())),
                None => "not measured".into(),
            };
            let _ = write!(
                s,
                "<tr class=\"{}\"><td>{}</td><td>{measured}</td><td>{}</td></tr>",
                if passed { "pass" } else { "fail" },
                escape(&text(t, "/threshold")),
                if passed { "pass" } else { "FAIL" }
            );
        }
        s.push_str("</table></section>");
    }
    if let Some(notes) = doc.get("notes").and_then(Value::as_array).filter(|a| !a.is_empty()) {
        s.push_str("<section><h2>Notes</h2><ul class=\"notes\">");
        for n in notes {
            let _ = write!(s, "<li>{}</li>", escape(n.as_str().unwrap_or_default()));
        }
        s.push_str("</ul></section>");
    }
    s.push_str(&super::stages::table(doc));
    let marks = super::stages::marks(doc);
    let (dist, over_time) = latency_charts(doc, &samples, log, &marks);
    s.push_str("<section class=\"charts\"><h2>Latency</h2>");
    s.push_str(&dist);
    s.push_str(&over_time);
    s.push_str("</section>");
    s.push_str(&super::classes::section(doc));
    s.push_str("<section class=\"charts\"><h2>Throughput and connections</h2>");
    s.push_str(&line_chart_marked(
        "throughput",
        "Messages per second",
        XAxis::Time,
        "per second",
        &[
            Line { name: "sent/s".into(), points: rate(&samples, "sent") },
            Line { name: "delivered/s".into(), points: rate(&samples, "delivered") },
        ],
        &marks,
    ));
    s.push_str(&line_chart_marked(
        "connections",
        "Connections",
        XAxis::Time,
        "connections",
        &[
            Line { name: "open".into(), points: series_of(&samples, "open") },
            Line { name: "failed (total)".into(), points: series_of(&samples, "failed") },
            Line { name: "closed by peer (total)".into(), points: series_of(&samples, "closed_by_peer") },
        ],
        &marks,
    ));
    s.push_str("<h2>Loss, duplicates, reordering, errors</h2>");
    let counts: Vec<(String, f64)> = ["missed", "duplicated", "reordered", "unexpected", "unsent"]
        .iter()
        .map(|k| (k.to_string(), f(doc, &format!("/messages/{k}"))))
        .collect();
    s.push_str(&bars("accounting", "Missed, duplicated, reordered (whole run)", &counts));
    s.push_str(&line_chart_marked(
        "accounting-over-time",
        "Pending deliveries, duplicates, reorders and errors over time",
        XAxis::Time,
        "count",
        &[
            Line { name: "pending".into(), points: series_of(&samples, "pending") },
            Line { name: "duplicated (total)".into(), points: series_of(&samples, "duplicated") },
            Line { name: "reordered (total)".into(), points: series_of(&samples, "reordered") },
            Line { name: "errors (total)".into(), points: series_of(&samples, "errors") },
        ],
        &marks,
    ));
    let errors: Vec<(String, f64)> = doc
        .get("errors")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| v.as_f64().filter(|&n| n > 0.0).map(|n| (k.clone(), n))).collect())
        .unwrap_or_default();
    if errors.is_empty() {
        s.push_str("<figure class=\"chart\" id=\"errors\"><figcaption>Errors by category</figcaption><p class=\"empty\">no errors</p></figure>");
    } else {
        s.push_str(&bars("errors", "Errors by category", &errors));
    }
    s.push_str("</section><section class=\"tables\"><h2>Figures</h2>");
    for (title, key) in [
        ("Messages", "messages"),
        ("Connections", "connections"),
        ("Latency (ms)", "latency"),
        ("Connect (ms)", "connect"),
        ("WebSocket", "websocket"),
        ("Phases (s)", "phases"),
        ("Process", "process"),
        ("Embedded server", "server"),
        ("Scenario", "scenario"),
        ("Host", "host"),
    ] {
        if doc.get(key).is_some_and(|v| !v.is_null()) {
            s.push_str(&table(title, key, doc.get(key)));
        }
    }
    let _ = writeln!(s, "</section><script>{SCRIPT}</script></body></html>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "herd_version": "0.1.0", "run_id": "abcd", "target": "ws://127.0.0.1:1/conv/{conv}",
            "outcome": "completed", "verdict": "failed", "duration_s": 3.0,
            "scenario": {"conversations": 2, "members": 2, "url": "<script>"},
            "messages": {"sent": 10, "missed": 2, "duplicated": 1, "reordered": 0},
            "errors": {"reset": 2, "io": 0},
            "thresholds": [{"threshold": "p99<1ms", "value": 2.5, "unit": "ms", "passed": false}],
            "notes": ["the drain ended <early>"],
            "series": {
                "samples": [
                    {"t_s": 1.0, "open": 4, "failed": 0, "closed_by_peer": 0, "sent": 0, "delivered": 0, "pending": 0,
                     "duplicated": 0, "reordered": 0, "errors": 0},
                    {"t_s": 2.0, "open": 4, "failed": 0, "closed_by_peer": 0, "sent": 10, "delivered": 8, "pending": 2,
                     "duplicated": 1, "reordered": 0, "errors": 2, "corrected": [1.0, 2.0, 3.0], "uncorrected": [0.5, 1.0, 1.5]}
                ],
                "corrected_spectrum": [[0.0, 1.0], [50.0, 1.0], [100.0, 3.0]],
                "uncorrected_spectrum": [[0.0, 0.5], [100.0, 1.5]]
            }
        })
    }

    #[test]
    fn the_page_holds_every_chart_and_escapes_input() {
        let p = render(&doc(), None);
        for id in ["latency-distribution", "latency-over-time", "throughput", "connections", "accounting", "errors"] {
            assert!(p.contains(&format!("id=\"{id}\"")), "{id}");
        }
        assert!(p.contains("<td>p99&lt;1ms</td><td>2.5 ms</td><td>FAIL</td>"), "thresholds table");
        assert!(p.contains("the drain ended &lt;early&gt;"));
        assert!(!p.contains("<script>\"") && p.contains("&lt;script&gt;"), "scenario values are escaped");
        assert!(!p.contains("http://") && !p.contains("https://"), "nothing is fetched");
        assert!(p.contains("data-name=\"delivered/s\""), "rates from cumulative samples");
        assert!(p.contains("data-values=\"1,0 2,8\""), "0 deliveries in the first second, 8 in the second");
        assert_eq!(p.matches("<script>").count(), 1);
    }

    #[test]
    fn malformed_results_render_without_panicking() {
        for doc in [
            json!({}),
            json!({"series": {"samples": [1, "x", {"t_s": "a"}, {"t_s": 1.0, "corrected": [1]}]}, "thresholds": [5]}),
            json!({"series": {"corrected_spectrum": [[1], "x", [1.0, 2.0, 3.0]]}, "errors": {"reset": "many"}}),
            json!({"notes": [1, null], "scenario": [1, 2], "messages": {"missed": -5}}),
        ] {
            let p = render(&doc, None);
            assert!(p.ends_with("</html>\n"));
        }
    }

    #[test]
    fn tables_flatten_and_shorten_floats() {
        let t = table("T", "t", Some(&json!({"a": 0.9883975000000002, "b": {"c": 3.0, "d": 7, "e": "x<y"}})));
        assert!(t.contains("<tr><th>a</th><td>0.988</td></tr>"), "{t}");
        assert!(t.contains("<tr><th>b.c</th><td>3</td></tr>") && t.contains("<tr><th>b.d</th><td>7</td></tr>"), "{t}");
        assert!(t.contains("<td>x&lt;y</td>"), "{t}");
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_795_953_255.9), "2026-11-29 11:54:15 UTC");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn a_log_replaces_the_latency_source() {
        let log = LogSeries {
            corrected: vec![[1.0, 1.0, 9.0, 10.0]],
            uncorrected: vec![],
            corrected_spectrum: vec![[0.0, 1.0], [100.0, 10.0]],
            uncorrected_spectrum: vec![],
        };
        let p = render(&doc(), Some(&log));
        assert!(p.contains("Delivery latency per interval (HdrHistogram log)"));
        assert!(p.contains("data-values=\"1,9\""), "p99 of the log's interval");
    }
}
