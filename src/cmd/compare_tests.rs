use super::*;
use serde_json::json;

fn run(p99: f64, missed: u64, delivered: u64) -> Value {
    json!({
        "scenario": {"conversations": 10, "members": 4, "rate": 1.0, "seed": 7, "out": "a.json"},
        "latency": {"corrected": {"p99_ms": p99}},
        "connections": {"attempted": 40, "established": 40, "failed": 0},
        "messages": {"expected": 300, "delivered": delivered, "missed": missed},
        "errors": {"reset": 0, "connect_timeout": 0},
        "phases": {"send_s": 10.0, "drain_s": 0.0}
    })
}

fn row<'a>(rows: &'a [Row], name: &str) -> &'a Row {
    rows.iter().find(|r| r.figure.name == name).unwrap_or_else(|| panic!("no row {name}"))
}

#[test]
fn limits_parse_with_units_and_name_bad_parts() {
    let l = parse_limits("p99=10%, missed=0,connect_p99=5ms,deliveries_per_s=1k").unwrap();
    assert_eq!(
        l.iter().map(|(f, _)| f.name.as_str()).collect::<Vec<_>>(),
        ["p99", "missed", "connect_p99", "deliveries_per_s"]
    );
    assert_eq!(l[0].1, Limit::Percent(10.0));
    assert_eq!(l[1].1, Limit::Absolute(0.0));
    assert_eq!(l[2].1, Limit::Absolute(5.0));
    assert_eq!(l[3].1, Limit::Absolute(1000.0));
    assert!(parse_limits("p99").unwrap_err().contains("FIGURE=LIMIT"));
    assert!(parse_limits("p98=1%").unwrap_err().contains("unknown figure 'p98'"));
    assert!(parse_limits("p99=-3%").unwrap_err().contains("at least 0"));
    assert!(parse_limits("p99=soon").unwrap_err().contains("soon"));
    assert!(parse_limits("").is_err());
}

#[test]
fn one_run_per_side_every_worsening_beyond_its_limit_counts() {
    let limits = parse_limits("p99=10%,missed=0,delivered=1%").unwrap();
    let rows = compare(&[run(10.0, 0, 300)], &[run(10.5, 0, 300)], &limits);
    assert!(row(&rows, "p99").regression.is_none(), "+5% is within 10%");
    assert_eq!(row(&rows, "p99").change_pct, Some(5.0));
    let rows = compare(&[run(10.0, 0, 300)], &[run(12.0, 1, 290)], &limits);
    assert_eq!(row(&rows, "p99").regression, Some(Limit::Percent(10.0)));
    assert_eq!(row(&rows, "missed").regression, Some(Limit::Absolute(0.0)), "missed 0 → 1 with limit 0");
    assert!(row(&rows, "delivered").regression.is_some(), "higher is better: fewer delivered is worse");
    let rows = compare(&[run(12.0, 1, 290)], &[run(10.0, 0, 300)], &limits);
    assert!(rows.iter().all(|r| r.regression.is_none()), "improvements are never regressions");
    assert_eq!(note(row(&rows, "p99")), "better");
}

#[test]
fn several_runs_judge_on_the_larger_spread() {
    let limits = parse_limits("p99=10%").unwrap();
    // Base runs spread 8..12 (4 ms): a median move of 10 → 12 ms (+20%) is within that noise.
    let base = [run(8.0, 0, 300), run(12.0, 0, 300), run(10.0, 0, 300)];
    let rows = compare(&base, &[run(12.0, 0, 300), run(12.0, 0, 300)], &limits);
    let r = row(&rows, "p99");
    assert_eq!((r.base.median, r.new.median, r.base.spread()), (10.0, 12.0, 4.0));
    assert!(!r.beyond_noise && r.regression.is_none());
    assert_eq!(note(r), "within noise");
    // 10 → 15 ms exceeds the 4 ms spread and the 10% limit.
    let rows = compare(&base, &[run(15.0, 0, 300), run(15.0, 0, 300)], &limits);
    assert!(row(&rows, "p99").regression.is_some());
}

#[test]
fn error_categories_appear_only_when_they_happened() {
    let mut b = run(1.0, 0, 300);
    b["errors"]["reset"] = json!(4);
    let rows = compare(&[b], &[run(1.0, 0, 300)], &[]);
    assert_eq!(row(&rows, "errors.reset").change, -4.0);
    assert!(rows.iter().all(|r| r.figure.name != "errors.connect_timeout"));
    assert!(rows.iter().all(|r| r.figure.name != "rss_per_conn"), "unmeasured figures are left out");
}

#[test]
fn scenarios_differ_only_on_keys_that_change_the_measurement() {
    let a = run(1.0, 0, 300);
    let mut b = run(1.0, 0, 300);
    b["scenario"]["seed"] = json!(8);
    b["scenario"]["out"] = json!("b.json");
    assert!(scenario_differences(&a, &b).is_empty());
    b["scenario"]["members"] = json!(5);
    assert_eq!(scenario_differences(&a, &b), ["members: 4 → 5"]);
}

#[test]
fn text_and_markdown_show_every_row_and_the_verdict() {
    let limits = parse_limits("p99=10%").unwrap();
    let rows = compare(&[run(10.0, 0, 300)], &[run(12.0, 0, 300)], &limits);
    let t = render(&rows, "heading", &["w".into()], Format::Text);
    assert!(t.contains("warning: w"), "{t}");
    let p99 = t.lines().find(|l| l.starts_with("p99 ")).unwrap();
    assert!(
        p99.contains("10.000 ms") && p99.contains("+2.000 ms (+20.0%)") && p99.contains("REGRESSION (limit 10%)"),
        "{p99}"
    );
    assert!(t.contains("verdict: 1 regression(s) beyond --max-regression: p99"), "{t}");
    let m = render(&rows, "heading", &[], Format::Markdown);
    assert!(m.contains("| figure | base | new | change | note |"), "{m}");
    assert!(m.contains("| p99 | 10.000 ms | 12.000 ms | +2.000 ms (+20.0%) | **REGRESSION (limit 10%)** |"), "{m}");
    let rows = compare(&[run(10.0, 0, 300), run(11.0, 0, 300)], &[run(10.0, 0, 300)], &[]);
    let t = render(&rows, "h", &[], Format::Text);
    assert!(t.contains("10.500 ms [10.000–11.000]"), "{t}");
}

#[test]
fn unclean_runs_are_named() {
    let mut r = run(1.0, 0, 300);
    assert_eq!(unclean(&r), None);
    r["verdict"] = json!("failed");
    assert_eq!(unclean(&r), None, "a crossed threshold is the run's own judgement, not a reason to distrust it");
    r["verdict"] = json!("attention");
    r["notes"] = json!(["the drain ended early"]);
    assert_eq!(unclean(&r).unwrap(), "outcome completed, verdict attention: the drain ended early");
    r["outcome"] = json!("interrupted");
    r["notes"] = json!([]);
    assert_eq!(unclean(&r).unwrap(), "outcome interrupted, verdict attention");
}

proptest::proptest! {
    #[test]
    fn any_limit_text_parses_or_errs_without_panicking(t in "\\PC{0,40}", limit in "[-<>=!%0-9a-zµ. ]{0,12}") {
        let _ = parse_limits(&format!("{t}={limit}"));
    }
}
