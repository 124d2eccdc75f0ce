//! The HTML report: one self-contained file (inline CSS, inline SVG charts drawn here, a few
//! lines of inline JS for hover read-outs; nothing fetched) from a run's results document.
//! Written by `herd run --report FILE.html` and by `herd report RESULTS.json`.
//!
//! Sources: the percentile distribution and the per-second figures come from the results'
//! `series` (recorded by every run); with `--hdr-log FILE`, latency over time and the
//! distribution come from the HdrHistogram interval log instead (full histograms per interval).

mod classes;
mod hdrlog;
mod page;
mod stages;
mod svg;

use crate::error::{Error, Result};
use clap::Args;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

pub use hdrlog::{read_hdr_log, LogSeries};

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// Results written by `herd run --out`
    #[arg(value_name = "RESULTS.json")]
    pub results: PathBuf,
    /// The run's HdrHistogram interval log (`herd run --hdr-log`): latency over time and the
    /// percentile distribution from its full histograms
    #[arg(long, value_name = "FILE")]
    pub hdr_log: Option<PathBuf>,
    /// Where to write the report [default: RESULTS with .html]
    #[arg(long, short = 'o', value_name = "FILE.html")]
    pub out: Option<PathBuf>,
}

/// Creates (truncates) the report file; `flag` names it in the error.
pub fn create(path: &Path, flag: &str) -> Result<std::fs::File> {
    std::fs::File::create(path).map_err(|e| Error::Io(format!("{flag} {}: {e}", path.display())))
}

/// Writes the report of a results document.
pub fn write(f: std::fs::File, doc: &Value, log: Option<&LogSeries>) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(f);
    w.write_all(page::render(doc, log).as_bytes())?;
    w.flush()
}

/// The report page of a results document, as text (`herd collect` serves it).
pub fn render(doc: &Value) -> String {
    page::render(doc, None)
}

/// `herd report`: returns the path written.
pub fn main(a: &ReportArgs) -> Result<PathBuf> {
    let text = std::fs::read_to_string(&a.results)
        .map_err(|e| Error::Io(format!("{}: cannot read: {e}", a.results.display())))?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| Error::Data(format!("{}: not a herd results file (JSON): {e}", a.results.display())))?;
    if doc.get("scenario").is_none() || doc.get("messages").is_none() {
        return Err(Error::Data(format!("{}: not a herd results file (no scenario or messages)", a.results.display())));
    }
    let log = match &a.hdr_log {
        Some(p) => {
            let bytes =
                std::fs::read(p).map_err(|e| Error::Io(format!("--hdr-log {}: cannot read: {e}", p.display())))?;
            Some(read_hdr_log(&bytes).map_err(|e| Error::Data(format!("--hdr-log {}: {e}", p.display())))?)
        }
        None => None,
    };
    let out = a.out.clone().unwrap_or_else(|| a.results.with_extension("html"));
    let f = create(&out, "--out")?;
    write(f, &doc, log.as_ref()).map_err(|e| Error::Io(format!("--out {}: {e}", out.display())))?;
    Ok(out)
}
