//! `herd compare BASE.json NEW.json`: every headline figure of two runs side by side with the
//! change, and `--max-regression p99=10%,missed=0` to fail (exit 99) when a figure got worse by
//! more than its limit. Runs of different scenarios are refused (exit 65) unless `--force`.
//!
//! Noise: with several runs per side (`BASE1 BASE2 -- NEW1 NEW2`), each side's figure is the
//! median of its runs and its spread is max − min. A change counts only when it exceeds the
//! larger of the two spreads: a change the same code shows between two of its own runs is not
//! evidence of a regression. With one run per side there is no spread to judge by, and every
//! change counts.

use crate::config::units;
use crate::error::{Error, Result};
use crate::outcome::headline::{self, Better, Figure, Unit};
use clap::{Args, ValueEnum};
use serde_json::Value;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Baseline results, then new results (`--out` JSON). With `--`, every file before it is a
    /// baseline run and every file after it a new run
    #[arg(required = true, value_name = "BASE.json")]
    pub files: Vec<PathBuf>,
    /// New results, after `--` (several runs per side)
    #[arg(last = true, value_name = "NEW.json")]
    pub new: Vec<PathBuf>,
    /// Largest accepted worsening per figure, relative (%) or in the figure's unit, e.g.
    /// p99=10%,missed=0,rss_per_conn=5%; a larger one exits 99
    #[arg(long, value_name = "FIGURE=LIMIT,...")]
    pub max_regression: Option<String>,
    /// Compare runs of different scenarios anyway (the differences are listed)
    #[arg(long)]
    pub force: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Markdown,
}

/// A `--max-regression` entry.
#[derive(Clone, Debug, PartialEq)]
pub enum Limit {
    Percent(f64),
    Absolute(f64),
}

/// Scenario keys that do not change what is measured.
const IGNORED_KEYS: &[&str] = &["out", "hdr_log", "seed", "quiet"];

/// Parses `p99=10%,missed=0,connect_p99=5ms`.
pub fn parse_limits(spec: &str) -> std::result::Result<Vec<(Figure, Limit)>, String> {
    let mut out = vec![];
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, limit) = part.split_once('=').ok_or_else(|| format!("'{part}': expected FIGURE=LIMIT"))?;
        let fig = headline::lookup(name.trim()).ok_or_else(|| {
            format!("'{part}': unknown figure '{}' (known: {})", name.trim(), headline::names().join(", "))
        })?;
        let limit = limit.trim();
        let bad = |e: String| format!("'{part}': {e}");
        let l = if let Some(p) = limit.strip_suffix('%') {
            Limit::Percent(p.trim().parse().map_err(|_| bad(format!("'{limit}' is not a percentage")))?)
        } else if let Ok(v) = limit.parse::<f64>() {
            Limit::Absolute(v)
        } else if fig.unit == Unit::Ms {
            Limit::Absolute(units::parse_duration(limit).map_err(bad)?.as_secs_f64() * 1000.0)
        } else {
            Limit::Absolute(units::parse_rate(limit).map_err(bad)?)
        };
        if matches!(l, Limit::Percent(v) | Limit::Absolute(v) if !(v >= 0.0 && v.is_finite())) {
            return Err(bad("the limit must be a number of at least 0".into()));
        }
        out.push((fig, l));
    }
    if out.is_empty() {
        return Err("no FIGURE=LIMIT given".into());
    }
    Ok(out)
}

/// The scenario keys on which two results differ, as `key: a → b`.
pub fn scenario_differences(a: &Value, b: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let sa = a.get("scenario").and_then(Value::as_object).unwrap_or(&empty);
    let sb = b.get("scenario").and_then(Value::as_object).unwrap_or(&empty);
    let mut keys: Vec<&String> = sa.keys().chain(sb.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !IGNORED_KEYS.contains(&k.as_str()))
        .filter(|k| sa.get(*k) != sb.get(*k))
        .map(|k| {
            let show = |v: Option<&Value>| v.map(|v| v.to_string()).unwrap_or_else(|| "absent".into());
            format!("{k}: {} → {}", show(sa.get(k)), show(sb.get(k)))
        })
        .collect()
}

/// One side's view of a figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Side {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Side {
    fn of(values: &[f64]) -> Option<Side> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(Side { median, min: v[0], max: v[n - 1], runs: n })
    }

    pub fn spread(&self) -> f64 {
        self.max - self.min
    }
}

/// One figure compared.
#[derive(Clone, Debug)]
pub struct Row {
    pub figure: Figure,
    pub base: Side,
    pub new: Side,
    /// new − base (medians).
    pub change: f64,
    /// Relative change in percent; `None` when the base is 0.
    pub change_pct: Option<f64>,
    /// The change exceeds the larger run-to-run spread.
    pub beyond_noise: bool,
    /// The change is a worsening beyond this figure's `--max-regression` limit.
    pub regression: Option<Limit>,
}

impl Row {
    /// How much worse (positive) or better (negative) the new runs are.
    pub fn worsening(&self) -> f64 {
        match self.figure.better {
            Better::Lower => self.change,
            Better::Higher => -self.change,
        }
    }
}

/// Every headline figure (and every error category that is non-zero somewhere) measured on
/// both sides.
pub fn compare(base: &[Value], new: &[Value], limits: &[(Figure, Limit)]) -> Vec<Row> {
    let mut figures: Vec<Figure> = headline::names().into_iter().filter_map(headline::lookup).collect();
    let mut cats: Vec<String> = base
        .iter()
        .chain(new)
        .filter_map(|d| d.get("errors")?.as_object().cloned())
        .flat_map(|m| m.into_iter().filter(|(_, v)| v.as_f64().unwrap_or(0.0) > 0.0).map(|(k, _)| k))
        .collect();
    cats.sort();
    cats.dedup();
    figures.extend(cats.iter().filter_map(|c| headline::lookup(&format!("errors.{c}"))));
    let mut rows = vec![];
    for f in figures {
        let vals = |docs: &[Value]| docs.iter().filter_map(|d| f.value(d)).collect::<Vec<f64>>();
        let (Some(b), Some(n)) = (Side::of(&vals(base)), Side::of(&vals(new))) else { continue };
        let change = n.median - b.median;
        let change_pct = (b.median != 0.0).then(|| 100.0 * change / b.median.abs());
        let beyond_noise = change.abs() > b.spread().max(n.spread());
        let mut row = Row { figure: f, base: b, new: n, change, change_pct, beyond_noise, regression: None };
        if let Some((_, l)) = limits.iter().find(|(lf, _)| lf.name == row.figure.name) {
            let worse = row.worsening();
            let crossed = worse > 0.0
                && beyond_noise
                && match l {
                    Limit::Absolute(a) => worse > *a,
                    Limit::Percent(p) => row.base.median == 0.0 || 100.0 * worse / row.base.median.abs() > *p,
                };
            if crossed {
                row.regression = Some(l.clone());
            }
        }
        rows.push(row);
    }
    rows
}

fn show_side(unit: Unit, s: &Side) -> String {
    let m = headline::show(unit, s.median);
    if s.runs > 1 {
        let num = |v: f64| headline::show(unit, v).split(' ').next().unwrap_or_default().to_string();
        format!("{m} [{}–{}]", num(s.min), num(s.max))
    } else {
        m
    }
}

fn show_change(r: &Row) -> String {
    let abs = headline::show(r.figure.unit, r.change);
    let abs = if r.change > 0.0 { format!("+{abs}") } else { abs };
    match r.change_pct {
        Some(p) if r.change != 0.0 => format!("{abs} ({p:+.1}%)"),
        _ => abs,
    }
}

fn note(r: &Row) -> String {
    if let Some(l) = &r.regression {
        let l = match l {
            Limit::Percent(p) => format!("{p}%"),
            Limit::Absolute(a) => headline::show(r.figure.unit, *a),
        };
        return format!("REGRESSION (limit {l})");
    }
    if r.change == 0.0 {
        String::new()
    } else if !r.beyond_noise {
        "within noise".into()
    } else if r.worsening() > 0.0 {
        "worse".into()
    } else {
        "better".into()
    }
}

/// The comparison as text or Markdown.
pub fn render(rows: &[Row], heading: &str, warnings: &[String], format: Format) -> String {
    let regressions: Vec<&str> =
        rows.iter().filter(|r| r.regression.is_some()).map(|r| r.figure.name.as_str()).collect();
    let verdict = if regressions.is_empty() {
        "no regression beyond --max-regression".to_string()
    } else {
        format!("{} regression(s) beyond --max-regression: {}", regressions.len(), regressions.join(", "))
    };
    let mut s = String::new();
    match format {
        Format::Text => {
            s.push_str(&format!("{heading}\n"));
            for w in warnings {
                s.push_str(&format!("warning: {w}\n"));
            }
            s.push_str(&format!("{:<20} {:>26} {:>26} {:>24}  note\n", "figure", "base", "new", "change"));
            for r in rows {
                s.push_str(&format!(
                    "{:<20} {:>26} {:>26} {:>24}  {}\n",
                    r.figure.name,
                    show_side(r.figure.unit, &r.base),
                    show_side(r.figure.unit, &r.new),
                    show_change(r),
                    note(r)
                ));
            }
            s.push_str(&format!("verdict: {verdict}\n"));
        }
        Format::Markdown => {
            s.push_str(&format!("**{heading}**\n\n"));
            for w in warnings {
                s.push_str(&format!("> warning: {w}\n\n"));
            }
            s.push_str("| figure | base | new | change | note |\n| --- | ---: | ---: | ---: | --- |\n");
            for r in rows {
                let n = note(r);
                let n = if r.regression.is_some() { format!("**{n}**") } else { n };
                s.push_str(&format!(
                    "| {} | {} | {} | {} | {n} |\n",
                    r.figure.name,
                    show_side(r.figure.unit, &r.base),
                    show_side(r.figure.unit, &r.new),
                    show_change(r)
                ));
            }
            s.push_str(&format!("\n**verdict:** {verdict}\n"));
        }
    }
    s
}

/// Why a run's figures need a second look: its outcome, verdict and notes, when it did not
/// complete cleanly.
pub fn unclean(doc: &Value) -> Option<String> {
    let outcome = doc.get("outcome").and_then(Value::as_str).unwrap_or("completed");
    let verdict = doc.get("verdict").and_then(Value::as_str).unwrap_or("clean");
    if outcome == "completed" && verdict != "attention" {
        return None;
    }
    let notes: Vec<&str> = doc
        .get("notes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    Some(format!(
        "outcome {outcome}, verdict {verdict}{}",
        if notes.is_empty() { String::new() } else { format!(": {}", notes.join("; ")) }
    ))
}

fn load(path: &PathBuf) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io(format!("{}: cannot read: {e}", path.display())))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Error::Data(format!("{}: not a herd results file (JSON): {e}", path.display())))?;
    if v.get("scenario").is_none() || v.get("messages").is_none() {
        return Err(Error::Data(format!("{}: not a herd results file (no scenario or messages)", path.display())));
    }
    Ok(v)
}

/// The two sides: `A B`, or `A1 A2 -- B1 B2`.
fn sides(a: &CompareArgs) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    if !a.new.is_empty() {
        return Ok((a.files.clone(), a.new.clone()));
    }
    match a.files.as_slice() {
        [b, n] => Ok((vec![b.clone()], vec![n.clone()])),
        _ => Err(Error::Usage(format!(
            "herd compare: give BASE.json NEW.json, or several runs per side as BASE1.json BASE2.json -- NEW1.json \
             NEW2.json (got {} file(s) and no --)",
            a.files.len()
        ))),
    }
}

/// `herd compare`: prints the comparison; `Err(Crossed)` when a regression is beyond its limit.
pub fn main(a: &CompareArgs) -> Result<()> {
    let limits = match &a.max_regression {
        Some(spec) => parse_limits(spec).map_err(|e| Error::Usage(format!("--max-regression: {e}")))?,
        None => vec![],
    };
    let (bp, np) = sides(a)?;
    let base = bp.iter().map(load).collect::<Result<Vec<_>>>()?;
    let new = np.iter().map(load).collect::<Result<Vec<_>>>()?;
    let mut warnings = vec![];
    for (path, doc) in bp.iter().chain(&np).zip(base.iter().chain(&new)).skip(1) {
        let diffs = scenario_differences(&base[0], doc);
        if diffs.is_empty() {
            continue;
        }
        let what =
            format!("{} ran a different scenario than {}: {}", path.display(), bp[0].display(), diffs.join("; "));
        if !a.force {
            return Err(Error::Data(format!("{what} (--force compares them anyway)")));
        }
        warnings.push(what);
    }
    // A run that did not end cleanly is compared, but the reader is told why it may mislead.
    for (path, doc) in bp.iter().chain(&np).zip(base.iter().chain(&new)) {
        if let Some(w) = unclean(doc) {
            warnings.push(format!("{}: {w}", path.display()));
        }
    }
    let rows = compare(&base, &new, &limits);
    // A limit that cannot be judged must not pass silently.
    if let Some((f, _)) = limits.iter().find(|(f, _)| !rows.iter().any(|r| r.figure.name == f.name)) {
        return Err(Error::Data(format!(
            "--max-regression: {} was not measured in every side's runs (rss_per_conn and cpu_per_delivery need              --url)",
            f.name
        )));
    }
    let noise = if base.len() > 1 || new.len() > 1 {
        "a change counts when it exceeds the larger run-to-run spread [min–max]"
    } else {
        "one run per side: no spread to judge noise by, every change counts"
    };
    let heading = format!("herd compare: {} base run(s), {} new run(s); medians; {noise}", base.len(), new.len());
    let text = render(&rows, &heading, &warnings, a.format);
    crate::out!("{text}");
    let crossed: Vec<&str> = rows.iter().filter(|r| r.regression.is_some()).map(|r| r.figure.name.as_str()).collect();
    if !crossed.is_empty() {
        return Err(Error::Crossed(format!("regression beyond --max-regression: {}", crossed.join(", "))));
    }
    Ok(())
}

#[cfg(test)]
#[path = "compare_tests.rs"]
mod tests;
