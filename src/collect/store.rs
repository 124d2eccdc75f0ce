//! What `herd collect` knows about each shard of one run: whether its worker said it started,
//! the results it posted (kept as a file per shard, for `herd merge` by hand too), the failure
//! it reported; and the merge of what arrived, which says for every missing shard why.
//!
//! No sockets here: the HTTP side (`serve.rs`) hands bodies in and serves what comes out.

use crate::error::{Error, Result};
use serde::Serialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A request the store refuses: the HTTP status and why.
#[derive(Debug, PartialEq)]
pub struct Refusal(pub u16, pub String);

/// One shard as the collector saw it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Slot {
    /// When its worker said it started (unix seconds), and who it was (the pod's name).
    pub started_at_unix_s: Option<f64>,
    pub worker: Option<String>,
    /// The file its results are in (under `--dir`).
    pub results: Option<String>,
    /// The outcome its results say (`completed`, `interrupted`, ...).
    pub outcome: Option<String>,
    /// What its worker reported when it ended with an error.
    pub failure: Option<String>,
}

impl Slot {
    /// Nothing more will come: results arrived, or the worker reported a failure without any.
    pub fn settled(&self) -> bool {
        self.results.is_some() || self.failure.is_some()
    }

    /// Why there are no results for this shard (for the merge and `/v1/status`).
    pub fn why_missing(&self) -> String {
        match (&self.failure, self.started_at_unix_s) {
            (Some(f), _) => format!("its worker failed: {f}"),
            (None, Some(t)) => format!(
                "its worker{} started (unix {t:.0}) but posted no results: it was killed or crashed mid-run, or \
                 could not reach the collector",
                self.worker.as_deref().map(|w| format!(" {w}")).unwrap_or_default()
            ),
            (None, None) => "never heard from: its worker did not start (a pod left Pending, an image that could not \
                             be pulled) or could not reach the collector"
                .into(),
        }
    }
}

/// The shards of one run.
pub struct Store {
    pub count: u32,
    pub run: Option<String>,
    dir: PathBuf,
    pub slots: Vec<Slot>,
}

/// The file shard `i` of `n` is kept in.
pub fn shard_file(i: u32, n: u32) -> String {
    format!("shard-{i}-of-{n}.json")
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".herd-")
        .suffix(".tmp")
        // As `File::create` would: the umask decides, not a private 0600.
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map(|_| ()).map_err(|e| e.error)
}

impl Store {
    /// A store for `count` shards in `dir`, taking in the shard files already there (a collector
    /// that restarted on a persistent volume carries on where it was).
    pub fn open(dir: &Path, count: u32, run: Option<String>) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(format!("--dir {}: {e}", dir.display())))?;
        let mut s = Store { count, run, dir: dir.to_path_buf(), slots: vec![Slot::default(); count as usize] };
        for i in 0..count {
            let p = dir.join(shard_file(i, count));
            if let Ok(text) = std::fs::read_to_string(&p) {
                let input = crate::merge::parse(&p.display().to_string(), &text)
                    .map_err(|e| Error::Data(format!("{}: {e}", p.display())))?;
                s.slots[i as usize].results = Some(shard_file(i, count));
                s.slots[i as usize].outcome = Some(input.doc.outcome);
            }
        }
        Ok(s)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn check_run(&self, run: Option<&str>) -> std::result::Result<(), Refusal> {
        match (&self.run, run) {
            (Some(mine), Some(theirs)) if mine != theirs => Err(Refusal(
                409,
                format!("run {theirs:?} is not this collector's run {mine:?} (a worker of another run)"),
            )),
            (Some(mine), None) => Err(Refusal(409, format!("no run id given; this collector takes run {mine:?}"))),
            _ => Ok(()),
        }
    }

    fn slot(&mut self, shard: u32) -> std::result::Result<&mut Slot, Refusal> {
        let n = self.count;
        self.slots.get_mut(shard as usize).ok_or_else(|| Refusal(400, format!("shard {shard} is not below {n}")))
    }

    /// A worker's results. The same results again (a retry whose answer was lost) are taken
    /// once; different results for a shard that has some are refused.
    pub fn results(&mut self, body: &str, run: Option<&str>) -> std::result::Result<String, Refusal> {
        self.check_run(run)?;
        let input = crate::merge::parse("the posted results", body).map_err(|e| Refusal(400, e))?;
        let (i, n) = (input.shard.index, input.shard.count);
        if n != self.count {
            return Err(Refusal(
                409,
                format!("shard {}: this collector takes {} shards (--shards), not {n}", input.shard, self.count),
            ));
        }
        let name = shard_file(i, n);
        let path = self.dir.join(&name);
        if self.slots[i as usize].results.is_some() {
            let old = std::fs::read_to_string(&path).unwrap_or_default();
            if old == body {
                return Ok(name);
            }
            return Err(Refusal(
                409,
                format!("shard {}: results already taken ({name}), and these differ", input.shard),
            ));
        }
        write_atomic(&path, body.as_bytes()).map_err(|e| Refusal(500, format!("{}: {e}", path.display())))?;
        let slot = &mut self.slots[i as usize];
        slot.results = Some(name.clone());
        slot.outcome = Some(input.doc.outcome);
        Ok(name)
    }

    /// A worker says it started (connected or about to).
    pub fn started(
        &mut self,
        shard: u32,
        worker: &str,
        run: Option<&str>,
        now: f64,
    ) -> std::result::Result<(), Refusal> {
        self.check_run(run)?;
        let slot = self.slot(shard)?;
        slot.started_at_unix_s.get_or_insert(now);
        slot.worker = Some(worker.chars().take(253).collect());
        Ok(())
    }

    /// A worker ended with an error (its message).
    pub fn failed(&mut self, shard: u32, why: &str, run: Option<&str>) -> std::result::Result<(), Refusal> {
        self.check_run(run)?;
        let slot = self.slot(shard)?;
        slot.failure = Some(why.chars().take(4000).collect());
        Ok(())
    }

    /// Every shard settled: nothing more will come.
    pub fn settled(&self) -> bool {
        self.slots.iter().all(Slot::settled)
    }

    /// The state of every shard, for `/v1/status`.
    pub fn status(&self) -> Value {
        let shards: Vec<Value> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
                v["shard"] = json!(format!("{i}/{}", self.count));
                if s.results.is_none() {
                    v["why_missing"] = json!(s.why_missing());
                }
                v
            })
            .collect();
        let received = self.slots.iter().filter(|s| s.results.is_some()).count();
        json!({"run": self.run, "shards": self.count, "received": received, "settled": self.settled(), "shard_states": shards})
    }

    /// Merges the results that arrived (exactly, with `herd merge`'s code), and says for each
    /// missing shard why. `Err` when none arrived.
    pub fn merge(&self, why_now: &str) -> Result<(Value, String)> {
        let files: Vec<PathBuf> =
            self.slots.iter().filter_map(|s| s.results.as_ref()).map(|f| self.dir.join(f)).collect();
        let missing: Vec<String> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.results.is_none())
            .map(|(i, s)| format!("shard {i}/{} missing: {}", self.count, s.why_missing()))
            .collect();
        if files.is_empty() {
            return Err(Error::Unavailable(format!("no shard posted results ({why_now}): {}", missing.join("; "))));
        }
        let (mut doc, mut summary) = crate::merge::merge_files(&files, true)?;
        if let Some(notes) = doc["notes"].as_array_mut() {
            notes.extend(missing.iter().map(|m| json!(m)));
        }
        // Failures reported beside results (the results were written, then the worker exited with
        // an error: a crossed threshold, nothing established) are kept too.
        for (i, s) in self.slots.iter().enumerate() {
            if let (Some(f), Some(_)) = (&s.failure, &s.results) {
                if let Some(notes) = doc["notes"].as_array_mut() {
                    notes.push(json!(format!("shard {i}/{}: its worker ended with an error: {f}", self.count)));
                }
            }
        }
        doc["collect"] = json!({"run": self.run, "merged_because": why_now, "shards": self.status()["shard_states"]});
        for m in &missing {
            summary.push_str(&format!("{m}\n"));
        }
        Ok((doc, summary))
    }

    /// Writes the merged results and their HTML report under the store's directory.
    pub fn write_merged(&self, doc: &Value) -> Result<()> {
        let text = serde_json::to_string_pretty(doc).map_err(|e| Error::Software(e.to_string()))? + "\n";
        let io = |p: &Path, e: std::io::Error| Error::Io(format!("{}: {e}", p.display()));
        let json_path = self.dir.join("merged.json");
        write_atomic(&json_path, text.as_bytes()).map_err(|e| io(&json_path, e))?;
        let html_path = self.dir.join("report.html");
        let html = crate::report::render(doc);
        write_atomic(&html_path, html.as_bytes()).map_err(|e| io(&html_path, e))
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
