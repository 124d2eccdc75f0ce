//! The HTML report of a real run, rendered in headless Chromium (Debian's `chromium`, installed
//! by .ci/deps): no script errors, every chart drawn with its elements, a screenshot that is not
//! blank. Also `herd report` from results and an HdrHistogram log.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=900,2600",
    "--enable-logging=stderr",
    "--v=0",
];

/// Runs chromium on a file with a fresh profile; `action` is `--dump-dom` or `--screenshot=...`.
fn chromium(page: &Path, profile: &Path, action: &str) -> Output {
    let child = Command::new("chromium")
        .args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(action)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium is not installed: run `bash .ci/deps` (Debian package chromium)");
    output_within(child, Duration::from_secs(90))
}

/// Share of pixels that differ from the top-left (background) pixel, and the number of distinct
/// colours, of an RGB(A) PNG.
fn ink(png_path: &Path) -> (f64, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png_path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = info.color_type.samples();
    assert!(px >= 3, "unexpected PNG colour type {:?}", info.color_type);
    let data = &buf[..info.buffer_size()];
    let bg = &data[..3];
    let pixels: Vec<&[u8]> = data.chunks(px).collect();
    let inked = pixels.iter().filter(|p| &p[..3] != bg).count();
    let mut colours: Vec<[u8; 3]> = pixels.iter().map(|p| [p[0], p[1], p[2]]).collect();
    colours.sort();
    colours.dedup();
    (inked as f64 / pixels.len() as f64, colours.len())
}

#[test]
fn the_report_renders_in_headless_chromium_with_its_charts() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("run.html");
    let (_, v) =
        run_herd(dir.path(), &["-c", "6", "-k", "3", "--rate", "10", "-d", "3s", "--report", page.to_str().unwrap()]);
    assert!(u(&v, "messages.delivered") > 0);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"), "the report fetches nothing");

    let dom = chromium(&page, &dir.path().join("profile-dom"), "--dump-dom");
    assert!(dom.status.success(), "chromium failed: {}", String::from_utf8_lossy(&dom.stderr));
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    let log = String::from_utf8_lossy(&dom.stderr);
    assert!(dom_text.contains("data-ready=\"1\""), "the page's script did not finish:\n{log}");
    assert!(dom_text.contains("<pre id=\"console-errors\"></pre>"), "script errors in the page:\n{dom_text}");
    for line in log.lines().filter(|l| l.contains("CONSOLE")) {
        assert!(!line.to_lowercase().contains("error"), "console error: {line}");
    }
    assert!(!log.contains("Uncaught"), "{log}");
    // Every chart that has data is drawn: series polylines with points, bars as rects.
    for id in ["latency-distribution", "latency-over-time", "throughput", "connections", "accounting-over-time"] {
        let start = dom_text.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no chart {id}"));
        let fig = &dom_text[start..start + dom_text[start..].find("</figure>").unwrap()];
        assert!(fig.contains("<svg"), "{id} has no svg");
        let drawn = fig.matches("<polyline class=\"series\"").count();
        assert!(drawn >= 1, "{id}: no series drawn");
        assert!(
            fig.split("points=\"").skip(1).all(|p| p.split('"').next().unwrap().contains(',')),
            "{id}: empty points"
        );
    }
    let acc = dom_text.find("id=\"accounting\"").unwrap();
    assert_eq!(dom_text[acc..].split("</figure>").next().unwrap().matches("<rect class=\"bar\"").count(), 5);
    let charts: usize = dom_text
        .split("data-charts=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|n| n.parse().ok())
        .expect("data-charts set by the page's script");
    assert!(charts >= 15, "{charts} chart elements counted by the page");

    let shot = dir.path().join("shot.png");
    let o = chromium(&page, &dir.path().join("profile-shot"), &format!("--screenshot={}", shot.display()));
    assert!(o.status.success(), "chromium failed: {}", String::from_utf8_lossy(&o.stderr));
    let (inked, colours) = ink(&shot);
    assert!(inked > 0.02, "the screenshot is (nearly) blank: {:.4} of pixels inked", inked);
    assert!(colours > 8, "only {colours} colours: the charts' series colours are missing");
}

#[test]
fn herd_report_reads_results_and_an_hdr_log() {
    let dir = tempfile::tempdir().unwrap();
    let hlog = dir.path().join("run.hlog");
    let (_, _) =
        run_herd(dir.path(), &["-c", "4", "-k", "2", "--rate", "10", "-d", "2s", "--hdr-log", hlog.to_str().unwrap()]);
    let results = dir.path().join("results.json");
    let o = Command::new(herd_bin())
        .args(["report", results.to_str().unwrap(), "--hdr-log", hlog.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = std::fs::read_to_string(dir.path().join("results.html")).unwrap();
    assert!(page.contains("Delivery latency per interval (HdrHistogram log)"));
    assert!(page.matches("<polyline class=\"series\"").count() >= 4);

    let junk = dir.path().join("junk.hlog");
    std::fs::write(&junk, "not,a,log\n").unwrap();
    let o = Command::new(herd_bin())
        .args(["report", results.to_str().unwrap(), "--hdr-log", junk.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(65), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--hdr-log"));
    let o = Command::new(herd_bin()).args(["report", dir.path().join("none.json").to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(74));
}

/// The text of the cell in column `col` after the row's first cell, in the row whose first cell
/// is `row`, of the table with `id`.
fn cell(page: &str, id: &str, row: &str, col: usize) -> Option<String> {
    let table = page.split(&format!("<table id=\"{id}\"")).nth(1)?.split("</table>").next()?;
    table.split("<tr").find_map(|tr| {
        let cells: Vec<&str> =
            tr.split('<').filter_map(|p| p.strip_prefix("td>").or_else(|| p.strip_prefix("th>"))).collect();
        (cells.first() == Some(&row)).then(|| cells.get(col + 1).map(|c| c.to_string()))?
    })
}

#[test]
fn a_staged_run_has_its_stage_table_and_boundaries_on_the_time_charts() {
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = run_herd(dir.path(), &["-c", "4", "-k", "3", "--stage", "1s:4:5", "--stage", "1s:4:20"]);
    let o =
        Command::new(herd_bin()).args(["report", dir.path().join("results.json").to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = std::fs::read_to_string(dir.path().join("results.html")).unwrap();
    let stages = v["shape"]["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2);
    for (i, st) in stages.iter().enumerate() {
        let row = (i + 1).to_string();
        for (col, key) in [(3, "sent"), (5, "delivered"), (6, "missed")] {
            assert_eq!(
                cell(&page, "stages", &row, col).as_deref(),
                Some(st[key].as_u64().unwrap().to_string().as_str()),
                "stage {row} {key} on the page"
            );
        }
    }
    assert!(stages[1]["sent"].as_u64().unwrap() > stages[0]["sent"].as_u64().unwrap(), "20/s after 5/s");
    // Each time chart marks where stage 2 starts, at the results' time from the run's start.
    let at = stages[1]["start_s"].as_f64().unwrap() + v["phases"]["connect_s"].as_f64().unwrap();
    for id in ["latency-over-time", "throughput", "connections", "accounting-over-time"] {
        let chart = page.split(&format!("id=\"{id}\"")).nth(1).unwrap().split("</figure>").next().unwrap();
        let marks: Vec<f64> = chart
            .split("class=\"stage-mark\" data-t=\"")
            .skip(1)
            .map(|m| m.split('"').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(marks.len(), 2, "{id}: one mark per stage");
        assert!((marks[1] - at).abs() < 0.01, "{id}: stage 2 at {} s, results say {at}", marks[1]);
    }
    // And the run-wide figures on the page are the results' own.
    assert_eq!(cell(&page, "messages", "delivered", 0), Some(v["messages"]["delivered"].to_string()));
}
