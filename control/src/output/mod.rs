//! Alert writers: Suricata EVE JSON ([`eve`]) and OCSF Detection Finding ([`ocsf`]), and the
//! network outputs that forward them ([`forward`]: syslog, Redis).
//!
//! Owns: rendering an [`Alert`](crate::alert::Alert) as one JSON object per line,
//! [`JsonLinesWriter`], which appends those lines to a file, flushes them and reopens the file
//! on request (log rotation), and [`OutputCounters`], the counters every output keeps (files and
//! network outputs alike) for the statistics and metrics.
//! Must not: decide what to alert on or change an alert.

pub mod eve;
pub mod forward;
pub mod ocsf;

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;

/// ATT&CK technique id.
pub const TECHNIQUE_ID: &str = "T1509";
/// ATT&CK technique name.
pub const TECHNIQUE_NAME: &str = "Non-Standard Port";
/// ATT&CK Mobile tactic id (Command and Control).
pub const TACTIC_ID: &str = "TA0037";
/// ATT&CK Mobile tactic name.
pub const TACTIC_NAME: &str = "Command and Control";
/// ATT&CK detection strategy id.
pub const DETECTION_STRATEGY_ID: &str = "DET0706";
/// ATT&CK analytic id (iOS).
pub const ANALYTIC_ID: &str = "AN1828";
/// ATT&CK analytic name used in output.
pub const ANALYTIC_NAME: &str = "Detection of Non-Standard Port (iOS)";

/// What an output did so far (a snapshot of its [`OutputCounters`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputCounts {
    /// Events the receiver took (network outputs) or lines written (files).
    pub sent: u64,
    /// Events lost: the queue was full (network outputs) or the write failed (files).
    pub dropped: u64,
    /// Connection, write or reopen failures (a network output reconnects after a back-off).
    pub errors: u64,
    /// Events waiting in the queue now (always 0 for files, which have no queue of their own).
    pub queued: u64,
    /// Times a file was reopened (SIGHUP, log rotation); 0 for network outputs.
    pub reopened: u64,
}

/// The live counters of one output, shared between the thread that writes or sends and the
/// readers (statistics, metrics). Lock-free; cheap to read at any time.
#[derive(Debug, Default)]
pub struct OutputCounters {
    pub(crate) sent: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) queued: AtomicU64,
    pub(crate) reopened: AtomicU64,
}

impl OutputCounters {
    /// The counters now.
    pub fn counts(&self) -> OutputCounts {
        OutputCounts {
            sent: self.sent.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
            reopened: self.reopened.load(Ordering::Relaxed),
        }
    }
}

/// Appends JSON objects, one per line, to a file; counts what it wrote and reopens the file
/// (same path) on request, so a rotated file is let go.
#[derive(Debug)]
pub struct JsonLinesWriter {
    out: BufWriter<File>,
    path: PathBuf,
    counters: Arc<OutputCounters>,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

impl JsonLinesWriter {
    /// Opens `path` for appending (creating it), readable by its owner only (mode 0600 whatever
    /// the umask; an existing file is tightened to 0600).
    pub fn append(path: &Path) -> std::io::Result<JsonLinesWriter> {
        Ok(JsonLinesWriter {
            out: BufWriter::new(open_append(path)?),
            path: path.to_path_buf(),
            counters: Arc::new(OutputCounters::default()),
        })
    }

    /// Writes one object as a line (counted as sent, or as dropped and an error).
    pub fn write(&mut self, value: &Value) -> std::io::Result<()> {
        let result = serde_json::to_writer(&mut self.out, value)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"));
        let c = &self.counters;
        match &result {
            Ok(()) => c.sent.fetch_add(1, Ordering::Relaxed),
            Err(_) => {
                c.errors.fetch_add(1, Ordering::Relaxed);
                c.dropped.fetch_add(1, Ordering::Relaxed)
            }
        };
        result
    }

    /// Flushes to the file (a failure is counted as an error).
    pub fn flush(&mut self) -> std::io::Result<()> {
        let r = self.out.flush();
        if r.is_err() {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    /// Flushes, then opens the path again (creating it, mode 0600) and writes there from now on:
    /// after a rotation (`mv`, logrotate) the renamed file is closed and a new one started. When
    /// the path cannot be opened, the error is counted and returned and the writer keeps the file
    /// it had, so nothing is lost.
    pub fn reopen(&mut self) -> std::io::Result<()> {
        let _ = self.flush();
        match open_append(&self.path) {
            Ok(file) => {
                // The old writer was flushed above; dropping it closes the old file.
                self.out = BufWriter::new(file);
                self.counters.reopened.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer's live counters (shared; read them from any thread).
    pub fn counters(&self) -> Arc<OutputCounters> {
        Arc::clone(&self.counters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopen_after_a_rename_starts_a_new_file_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.json");
        let mut w = JsonLinesWriter::append(&path).unwrap();
        w.write(&serde_json::json!({"n": 1})).unwrap();
        w.flush().unwrap();
        let rotated = dir.path().join("alerts.json.1");
        std::fs::rename(&path, &rotated).unwrap();
        w.reopen().unwrap();
        w.write(&serde_json::json!({"n": 2})).unwrap();
        w.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&rotated).unwrap(), "{\"n\":1}\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"n\":2}\n");
        let c = w.counters().counts();
        assert_eq!((c.sent, c.dropped, c.errors, c.reopened), (2, 0, 0, 1));
        // A path that can no longer be opened: the error is counted, the old file kept.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(w.reopen().is_err());
        w.write(&serde_json::json!({"n": 3})).unwrap();
        w.flush().unwrap();
        assert_eq!(w.counters().counts().errors, 1);
    }
}
