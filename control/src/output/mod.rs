//! Alert writers: Suricata EVE JSON ([`eve`]) and OCSF Detection Finding ([`ocsf`]).
//!
//! Owns: rendering an [`Alert`](crate::alert::Alert) as one JSON object per line, and
//! [`JsonLinesWriter`], which appends those lines to a file and flushes them.
//! Must not: decide what to alert on or change an alert.

pub mod eve;
pub mod ocsf;

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

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

/// Appends JSON objects, one per line, to a file.
#[derive(Debug)]
pub struct JsonLinesWriter {
    out: BufWriter<File>,
    path: PathBuf,
}

impl JsonLinesWriter {
    /// Opens `path` for appending (creating it), readable by its owner only (mode 0600 whatever
    /// the umask; an existing file is tightened to 0600).
    pub fn append(path: &Path) -> std::io::Result<JsonLinesWriter> {
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
        Ok(JsonLinesWriter {
            out: BufWriter::new(file),
            path: path.to_path_buf(),
        })
    }

    /// Writes one object as a line.
    pub fn write(&mut self, value: &Value) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        self.out.write_all(b"\n")
    }

    /// Flushes to the file.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
