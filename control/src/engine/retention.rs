//! A retention pass as the ingest side runs it: the store's rows, the device state timeline and
//! the findings held in memory, and the uploaded documents kept beside the store, all by the
//! windows of `[control.retention]`.
//!
//! Owns: [`Ingest::enforce_retention`]. Must not: choose windows ([`crate::retention`]), build
//! SQL (the store does), or read the clock (the caller passes the time).

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use super::{ControlError, Ingest};
use crate::retention::PruneReport;
use crate::store::UPLOADS_DIR;

impl Ingest {
    /// Removes what outlived the retention windows at `now_us`, in the store (one transaction,
    /// audited when anything went) and in memory (device state reports, findings), then the
    /// uploaded documents older than their window. Returns what went; an error leaves the
    /// store as it was. Runs on the thread that owns this ingest side (the daemon's drain
    /// thread), between batches.
    pub fn enforce_retention(&mut self, now_us: i64) -> Result<PruneReport, ControlError> {
        let cutoffs = self.core().config().retention.cutoffs(now_us);
        let core = std::sync::Arc::clone(self.core());
        let (mut report, forgotten, store_path) = {
            let mut st = core.lock()?;
            // Counts still in memory go to the store first, so their buckets are judged with
            // the rest.
            st.flush()?;
            let (report, forgotten) = st.store.prune(&cutoffs)?;
            st.inventory.states.prune_before(cutoffs.device_states_us);
            if report.bindings > 0 || report.leases > 0 || report.radius_bindings > 0 {
                st.reload_inventory()?;
            }
            (report, forgotten, st.store.path().to_path_buf())
        };
        self.forget_findings(&forgotten);
        if let Some(dir) = store_path
            .parent()
            .filter(|_| store_path != Path::new(":memory:"))
        {
            report.uploads = prune_uploads(&dir.join(UPLOADS_DIR), cutoffs.uploads_us);
        }
        Ok(report)
    }
}

/// Removes the regular files of `dir` last modified before `cutoff_us`; returns how many went.
/// A missing directory has nothing to prune; a file that cannot be read or removed is left (and
/// logged by the caller's next pass finding it again).
fn prune_uploads(dir: &Path, cutoff_us: i64) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let cutoff = UNIX_EPOCH + Duration::from_micros(u64::try_from(cutoff_us).unwrap_or(0));
    let mut removed = 0;
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        let old = meta.modified().is_ok_and(|m| m < cutoff);
        if meta.is_file() && old && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}
