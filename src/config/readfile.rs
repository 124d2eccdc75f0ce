//! Reading the files herd is given (`--tokens`, `--scenario`) with a size limit, and in a way a
//! stop signal can interrupt: `/dev/zero` is refused once it passes the limit instead of filling
//! memory, and a FIFO whose writer never writes does not keep herd alive after Ctrl-C.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::Duration;

/// Largest `--scenario` file.
pub const SCENARIO_LIMIT: u64 = 1 << 20;
/// Largest `--tokens` file (a million users with 256-byte tokens).
pub const TOKENS_LIMIT: u64 = 256 << 20;

/// How often a read that waits (a FIFO) looks for a stop signal.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The file (or what it produced so far) is larger than the limit.
    TooLarge(u64),
    /// A stop signal came while the file was read.
    Interrupted,
    NotUtf8,
    Io(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::TooLarge(limit) => write!(f, "larger than the limit of {limit} bytes"),
            ReadError::Interrupted => f.write_str("interrupted while reading"),
            ReadError::NotUtf8 => f.write_str("not UTF-8 text"),
            ReadError::Io(e) => write!(f, "cannot read: {e}"),
        }
    }
}

/// Reads `path` as UTF-8 text of at most `limit` bytes; `stop` is asked between reads and while
/// a read waits for data.
pub fn read_text(path: &Path, limit: u64, stop: &dyn Fn() -> bool) -> Result<String, ReadError> {
    // Non-blocking, so that waiting on a FIFO or a terminal happens in `poll`, where a stop can
    // be seen; regular files read as usual.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| ReadError::Io(e.to_string()))?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        if stop() {
            return Err(ReadError::Interrupted);
        }
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if (out.len() + n) as u64 > limit {
                    return Err(ReadError::TooLarge(limit));
                }
                out.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => wait_readable(&f),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadError::Io(e.to_string())),
        }
    }
    String::from_utf8(out).map_err(|_| ReadError::NotUtf8)
}

fn wait_readable(f: &std::fs::File) {
    let mut p = libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut p, 1, POLL.as_millis() as libc::c_int) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_file_is_refused_at_the_limit() {
        assert_eq!(read_text(Path::new("/dev/zero"), 1 << 20, &|| false), Err(ReadError::TooLarge(1 << 20)));
    }

    #[test]
    fn a_file_within_the_limit_reads_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "a\nb\n").unwrap();
        assert_eq!(read_text(&p, 4, &|| false).unwrap(), "a\nb\n");
        assert_eq!(read_text(&p, 3, &|| false), Err(ReadError::TooLarge(3)));
        std::fs::write(&p, b"\xff").unwrap();
        assert_eq!(read_text(&p, 3, &|| false), Err(ReadError::NotUtf8));
    }

    #[test]
    fn a_fifo_that_never_writes_is_left_on_a_stop() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // A writer that holds the FIFO open and never writes (a reader first, so that it opens).
        let open = |write: bool| {
            std::fs::OpenOptions::new().read(!write).write(write).custom_flags(libc::O_NONBLOCK).open(&p).unwrap()
        };
        let (_reader, _writer) = (open(false), open(true));
        let asked = std::cell::Cell::new(0);
        let stop = || {
            asked.set(asked.get() + 1);
            asked.get() > 3
        };
        assert_eq!(read_text(&p, 1 << 20, &stop), Err(ReadError::Interrupted));
    }
}
