//! Renders a [`Report`] as the human-readable text `herd doctor` prints.

use super::report::{Report, Status};
use std::fmt::Write;

/// The text report: a header, one block per check (value, allows, note, fix), then the
/// binding limit and the verdict.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let ips = report.source_ips;
    let spread = format!("{ips} source address{} per destination", if ips == 1 { "" } else { "es" });
    let _ = match report.connections {
        Some(n) => writeln!(out, "herd doctor: can this host hold {n} client connections? ({spread})"),
        None => writeln!(out, "herd doctor: how many client connections can this host hold? ({spread})"),
    };
    let _ = writeln!(out);
    let _ = writeln!(out, "{:<8} {:<32} {:<28} allows", "status", "limit", "current");
    for c in &report.checks {
        let _ = writeln!(out, "{:<8} {:<32} {:<28} {}", c.status.label(), c.name, c.value, c.allows);
        if !c.note.is_empty() {
            let _ = writeln!(out, "{:9}{}", "", c.note);
        }
        let _ = writeln!(out, "{:9}fix: {}", "", c.fix);
    }
    let _ = writeln!(out);
    let binds: Vec<&str> = report.checks.iter().filter(|c| c.status == Status::Binds).map(|c| c.name).collect();
    if !binds.is_empty() {
        let _ = writeln!(out, "below target: {}", binds.join(", "));
    }
    if let Some(name) = &report.binding {
        let _ = writeln!(out, "first limit to bind: {name} (allows {})", report.ceiling);
    }
    let _ = writeln!(out, "all fixes at once (values for 1M+ connections): tuning/apply.sh --dry-run, then tuning/apply.sh as root; see tuning/README.md");
    let _ = writeln!(out, "verdict: {}", report.verdict);
    out
}
