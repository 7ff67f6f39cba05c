//! A named thread running one async task on its own current-thread tokio runtime, stopped
//! through a watch channel and joined on stop or drop: how the publisher and the configuration
//! watcher run beside the daemon's threads.
//!
//! Owns: [`RuntimeThread`]. Must not: know what the task does.

use std::future::Future;
use std::thread::JoinHandle;

use tokio::sync::watch;

/// The running thread; stopping it sends `true` to the task's stop receiver and joins.
#[derive(Debug)]
pub(crate) struct RuntimeThread {
    stop: Option<watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl RuntimeThread {
    /// Spawns thread `name`: runs `on_start`, then `task(stop receiver)` to its end on a new
    /// runtime (a runtime that cannot be built is logged naming `what`).
    pub(crate) fn spawn<F>(
        name: &str,
        what: &'static str,
        on_start: impl FnOnce() + Send + 'static,
        task: impl FnOnce(watch::Receiver<bool>) -> F + Send + 'static,
    ) -> std::io::Result<RuntimeThread>
    where
        F: Future<Output = ()>,
    {
        let (stop_tx, stop_rx) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                on_start();
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(task(stop_rx)),
                    Err(e) => tracing::error!(error = %e, "{what}: cannot start its runtime"),
                }
            })?;
        Ok(RuntimeThread {
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Asks the task to stop and joins the thread (once).
    pub(crate) fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RuntimeThread {
    fn drop(&mut self) {
        self.shutdown();
    }
}
