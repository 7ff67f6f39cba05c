//! One daemon per data directory: an exclusive `flock` on `<data_dir>/portolan.lock`, which holds
//! the holder's pid, taken before the store is opened and held until the daemon exits (the kernel
//! drops it when the process dies, so a `kill -9` leaves no stale lock).
//!
//! This module must not remove the lock file (a second daemon reads the holder's pid from it).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::Failure;

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "portolan.lock";

/// The held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct DataDirLock {
    _lock: Flock<File>,
}

impl DataDirLock {
    /// Takes the data directory's lock, or fails naming the pid that holds it.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, Failure> {
        let path: PathBuf = data_dir.join(LOCK_FILE);
        let io = |e: std::io::Error| Failure::runtime(format!("{}: {e}", path.display()));
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(&path).map_err(io)?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, errno)) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Failure::runtime(format!(
                    "data_dir {} is in use by another portolan (pid {}; lock {}: {errno})",
                    data_dir.display(),
                    if holder.is_empty() { "unknown" } else { holder },
                    path.display()
                )));
            }
        };
        lock.set_len(0).map_err(io)?;
        lock.rewind().map_err(io)?;
        writeln!(lock, "{}", std::process::id()).map_err(io)?;
        lock.sync_all().map_err(io)?;
        Ok(DataDirLock { _lock: lock })
    }
}
