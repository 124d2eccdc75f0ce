//! Results files (`--out` of `herd run` and `herd ceiling`): created next to their final path
//! when the run starts, so a bad path fails before any load is made, written at the end and
//! renamed into place. A run killed before its end (SIGKILL, a crash) leaves any earlier file at
//! that path untouched instead of truncating it.

use crate::error::{Error, Result};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct OutFile {
    flag: &'static str,
    path: PathBuf,
    tmp: tempfile::NamedTempFile,
}

impl OutFile {
    /// A temporary file in `path`'s directory; `flag` names the option in errors.
    pub fn create(flag: &'static str, path: &Path) -> Result<OutFile> {
        let err = |e: std::io::Error| Error::Io(format!("{flag} {}: {e}", path.display()));
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if path.is_dir() {
            return Err(err(std::io::Error::other("is a directory")));
        }
        let tmp = tempfile::Builder::new()
            .prefix(".herd-")
            .suffix(".tmp")
            // As `File::create` would: the umask decides, not a private 0600.
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .tempfile_in(dir)
            .map_err(err)?;
        Ok(OutFile { flag, path: path.to_path_buf(), tmp })
    }

    /// Writes `value` as pretty JSON and a newline, then renames the file into place.
    pub fn write_json<T: Serialize>(mut self, value: &T) -> Result<()> {
        let err = |e: &dyn std::fmt::Display| Error::Io(format!("{} {}: {e}", self.flag, self.path.display()));
        let mut w = std::io::BufWriter::new(self.tmp.as_file_mut());
        serde_json::to_writer_pretty(&mut w, value).map_err(|e| err(&e))?;
        w.write_all(b"\n").and_then(|_| w.flush()).map_err(|e| err(&e))?;
        drop(w);
        self.tmp.as_file().sync_all().map_err(|e| err(&e))?;
        let (flag, path) = (self.flag, self.path);
        self.tmp.persist(&path).map_err(|e| Error::Io(format!("{flag} {}: {}", path.display(), e.error)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_earlier_file_survives_until_the_new_one_is_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(&path, "{\"old\":1}\n").unwrap();
        let out = OutFile::create("--out", &path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"old\":1}\n", "not truncated at the start");
        // A run that dies before writing leaves the earlier file and no temporary file.
        drop(out);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"old\":1}\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        OutFile::create("--out", &path).unwrap().write_json(&serde_json::json!({"new": 2})).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\n  \"new\": 2\n}\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_bad_path_fails_at_once_naming_the_flag() {
        let e = OutFile::create("--out", Path::new("/nonexistent-dir/r.json")).err().unwrap().to_string();
        assert!(e.contains("--out /nonexistent-dir/r.json"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = OutFile::create("--out", dir.path()).err().unwrap().to_string();
        assert!(e.contains("is a directory"), "{e}");
    }
}
