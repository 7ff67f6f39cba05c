//! Replay's output files, all or nothing: each is written under a temporary name in its own
//! directory and renamed over its path only once the whole run succeeded, so a refused or failed
//! run leaves neither a partial file nor a truncated earlier one. The files are created 0600.
//!
//! Owns: [`StagedOutputs`]. Must not: decide what goes in the files.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

/// The outputs of one run, each under its temporary name until [`StagedOutputs::commit`];
/// dropped without it, the temporary files are removed.
#[derive(Debug, Default)]
pub struct StagedOutputs {
    staged: Vec<(tempfile::TempPath, PathBuf)>,
}

impl StagedOutputs {
    /// Creates `path`'s temporary file beside it. A path that exists and is not a regular file
    /// (a FIFO, `/dev/stdout`) is written in place: there is nothing to rename over.
    pub fn create(&mut self, path: &Path) -> io::Result<BufWriter<File>> {
        if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
            return File::create(path).map(BufWriter::new);
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
        let (file, tmp) = tempfile::Builder::new()
            .prefix(&format!(".{}.", name.to_string_lossy()))
            .suffix(".partial")
            .tempfile_in(dir)?
            .into_parts();
        self.staged.push((tmp, path.to_path_buf()));
        Ok(BufWriter::new(file))
    }

    /// Renames every staged file over its path (the writers must have been flushed).
    pub fn commit(self) -> Result<(), (PathBuf, io::Error)> {
        for (tmp, path) in self.staged {
            tmp.persist(&path).map_err(|e| (path.clone(), e.error))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn files_appear_only_on_commit_and_a_dropped_run_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("flows.json");
        std::fs::write(&out, "earlier run\n").unwrap();
        let mut staged = StagedOutputs::default();
        let mut w = staged.create(&out).unwrap();
        w.write_all(b"partial").unwrap();
        w.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "earlier run\n");
        drop((w, staged));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "earlier run\n");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp removed"
        );

        let mut staged = StagedOutputs::default();
        let mut w = staged.create(&out).unwrap();
        w.write_all(b"new run\n").unwrap();
        w.flush().unwrap();
        drop(w);
        staged.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "new run\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
