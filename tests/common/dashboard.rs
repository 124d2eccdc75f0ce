//! Checks a Grafana dashboard against a live Prometheus: every PromQL `expr` of every panel, and
//! every `label_values(...)` variable, must parse and return data.

use super::promstack::PromStack;
use std::collections::BTreeMap;

/// Every PromQL `expr` in the dashboard, in panel order, with its panel's title.
pub fn dashboard_exprs(dash: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(panels: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("").to_string();
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((title.clone(), e.to_string()));
                }
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// Replaces `$name`, `${name}` and `[[name]]` with `vars[name]`; panics on a variable it does not
/// know, so that a new dashboard variable cannot slip past this test.
pub fn substitute(expr: &str, vars: &BTreeMap<&str, &str>) -> String {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(pos) = rest.find(['$', '[']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        let (name, len) = if let Some(t) = tail.strip_prefix("${") {
            let end = t.find('}').expect("unclosed ${");
            (&t[..end], end + 3)
        } else if let Some(t) = tail.strip_prefix("[[") {
            let end = t.find("]]").expect("unclosed [[");
            (&t[..end], end + 4)
        } else if let Some(t) = tail.strip_prefix('$') {
            let end = t.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(t.len());
            (&t[..end], end + 1)
        } else {
            out.push('[');
            rest = &tail[1..];
            continue;
        };
        let value =
            vars.get(name).unwrap_or_else(|| panic!("dashboard variable {name:?} in {expr:?} has no test value"));
        out.push_str(value);
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

/// Loads `dashboards/NAME`.
pub fn load(name: &str) -> serde_json::Value {
    let path = format!("{}/dashboards/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}")))
        .unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

/// Evaluates every query of the dashboard with `vars` substituted; returns one line per failure
/// (a parse error, no data, or only NaN) and the number of queries evaluated.
pub fn failures(stack: &PromStack, dash: &serde_json::Value, vars: &BTreeMap<&str, &str>) -> (Vec<String>, usize) {
    let exprs = dashboard_exprs(dash);
    let mut failures = Vec::new();
    for (title, expr) in &exprs {
        let q = substitute(expr, vars);
        match stack.query(&q) {
            Err(e) => failures.push(format!("[{title}] {q}\n    error: {e}")),
            Ok(r) if r.is_empty() => failures.push(format!("[{title}] {q}\n    no data")),
            Ok(r) => {
                let values: Vec<&str> = r.iter().filter_map(|s| s["value"][1].as_str()).collect();
                println!("[{title}] {q}\n    -> {} series, first {}", r.len(), r[0]);
                if values.iter().all(|v| *v == "NaN") {
                    failures.push(format!("[{title}] {q}\n    only NaN: {values:?}"));
                }
            }
        }
    }
    for v in dash["templating"]["list"].as_array().expect("templating.list") {
        if v["type"] != "query" {
            continue;
        }
        let def = v["definition"].as_str().expect("a query variable has a definition");
        let inner = def
            .strip_prefix("label_values(")
            .and_then(|d| d.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable query {def:?} is not label_values(...)"));
        let (matcher, label) = inner.rsplit_once(',').expect("label_values(matcher, label)");
        let matcher = substitute(matcher.trim(), vars);
        match stack.label_values(label.trim(), &matcher) {
            Ok(vals) if !vals.is_empty() => println!("variable {}: {vals:?}", v["name"]),
            other => failures.push(format!("variable {}: {def} -> {other:?}", v["name"])),
        }
    }
    (failures, exprs.len())
}
