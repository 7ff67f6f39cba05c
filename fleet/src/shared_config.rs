//! The fleet's shared configuration in JetStream KV (the buckets and values are
//! `portolan_control::shared_config`): the central's writes with compare-and-swap on the
//! revision ([`SharedConfig`]), and every appliance's watcher ([`ConfigWatcher`]) that reads the
//! buckets' current values at start (before the dataplane judges anything) and then applies each
//! change live through the operator (audited with the bucket revision).
//!
//! Buckets are created when missing (`history` 16, file storage, `replicas` copies). A write
//! names the revision it was based on (0: the key must not exist); a stale one is refused with
//! [`SharedConfigError::Conflict`] naming the key, the revision given and the current one, and
//! nothing is written.
//!
//! Owns: the KV connection, bucket creation, the watch and its catch-up. Must not: decide what a
//! change means for the roles in force (`Operator::apply_shared_change` does).

use crate::runtime_thread::RuntimeThread;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use portolan_control::engine::Operator;
use portolan_control::shared_config::{
    check_data, ConfigBucket, SharedChange, SharedOutcome, SharedValue,
};
pub use portolan_control::shared_config::{SharedConfigError, SharedEntry};

/// Revisions kept per key.
const HISTORY: i64 = 16;
/// Longest wait between retries while the cluster is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Connection options shared by the central's client and the watcher.
fn connect_options(name: String) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|attempt| {
            Duration::from_millis(100 * 2u64.saturating_pow(attempt.min(5) as u32)).min(MAX_BACKOFF)
        })
}

/// Opens a bucket, creating it when missing.
async fn open_bucket(
    js: &jetstream::Context,
    bucket: ConfigBucket,
    replicas: usize,
) -> Result<kv::Store, String> {
    if let Ok(s) = js.get_key_value(bucket.bucket()).await {
        return Ok(s);
    }
    let created = js
        .create_key_value(kv::Config {
            bucket: bucket.bucket().to_string(),
            description: format!("Portolan shared configuration: {}", bucket.name()),
            history: HISTORY,
            num_replicas: replicas,
            ..Default::default()
        })
        .await;
    match created {
        Ok(s) => Ok(s),
        // Created meanwhile by another process.
        Err(e) => js
            .get_key_value(bucket.bucket())
            .await
            .map_err(|_| format!("bucket {}: {e}", bucket.bucket())),
    }
}

/// The central's client of the shared configuration.
#[derive(Debug, Clone)]
pub struct SharedConfig {
    js: jetstream::Context,
    replicas: usize,
}

impl SharedConfig {
    /// Connects (retrying in the background when the cluster is away; calls then fail with
    /// [`SharedConfigError::Unavailable`] until it answers).
    pub async fn connect(
        servers: &[String],
        replicas: usize,
        name: &str,
    ) -> Result<SharedConfig, SharedConfigError> {
        let client = connect_options(name.to_string())
            .connect(servers)
            .await
            .map_err(|e| SharedConfigError::Unavailable(e.to_string()))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(5))
            .build(client);
        Ok(SharedConfig { js, replicas })
    }

    async fn bucket(&self, bucket: ConfigBucket) -> Result<kv::Store, SharedConfigError> {
        open_bucket(&self.js, bucket, self.replicas)
            .await
            .map_err(SharedConfigError::Unavailable)
    }

    /// Every live key of `bucket` with its latest revision and value.
    pub async fn list(&self, bucket: ConfigBucket) -> Result<Vec<SharedEntry>, SharedConfigError> {
        let unavailable = |e: &dyn std::fmt::Display| SharedConfigError::Unavailable(e.to_string());
        let store = self.bucket(bucket).await?;
        let mut keys: Vec<String> = Vec::new();
        let mut stream = store.keys().await.map_err(|e| unavailable(&e))?;
        while let Some(k) = stream.next().await {
            keys.push(k.map_err(|e| unavailable(&e))?);
        }
        keys.sort();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(entry) = store
                .entry(key.clone())
                .await
                .map_err(|e| unavailable(&e))?
            else {
                continue;
            };
            if entry.operation != kv::Operation::Put {
                continue;
            }
            match SharedValue::decode(&entry.value) {
                Ok(value) => out.push(SharedEntry {
                    key,
                    revision: entry.revision,
                    value,
                }),
                Err(e) => {
                    tracing::warn!(bucket = bucket.bucket(), key, error = %e, "shared configuration: value not readable");
                }
            }
        }
        Ok(out)
    }

    /// The key's latest revision (0: absent or deleted).
    async fn current_revision(&self, store: &kv::Store, key: &str) -> u64 {
        match store.entry(key.to_string()).await {
            Ok(Some(e)) => e.revision,
            _ => 0,
        }
    }

    /// Writes `value` under `key` if the key's latest revision is `expected` (0: the key must
    /// not exist); the new revision.
    pub async fn put(
        &self,
        bucket: ConfigBucket,
        key: &str,
        value: &SharedValue,
        expected: u64,
    ) -> Result<u64, SharedConfigError> {
        check_data(bucket, key, &value.data).map_err(|e| SharedConfigError::Invalid {
            field: e.field,
            reason: e.reason,
        })?;
        let store = self.bucket(bucket).await?;
        let payload = bytes::Bytes::from(value.encode());
        let result = if expected == 0 {
            store.create(key, payload).await.map_err(|e| {
                (
                    e.kind() == kv::CreateErrorKind::AlreadyExists,
                    e.to_string(),
                )
            })
        } else {
            store.update(key, payload, expected).await.map_err(|e| {
                (
                    e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                    e.to_string(),
                )
            })
        };
        match result {
            Ok(rev) => Ok(rev),
            Err((stale, e)) => {
                let current = self.current_revision(&store, key).await;
                if stale || current != expected {
                    Err(SharedConfigError::Conflict {
                        bucket: bucket.name(),
                        key: key.to_string(),
                        expected,
                        current,
                    })
                } else {
                    Err(SharedConfigError::Unavailable(e))
                }
            }
        }
    }

    /// Deletes `key` if its latest revision is `expected`.
    pub async fn delete(
        &self,
        bucket: ConfigBucket,
        key: &str,
        expected: u64,
    ) -> Result<(), SharedConfigError> {
        portolan_control::shared_config::check_key(key).map_err(|e| {
            SharedConfigError::Invalid {
                field: e.field,
                reason: e.reason,
            }
        })?;
        let store = self.bucket(bucket).await?;
        match store.delete_expect_revision(key, Some(expected)).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let current = self.current_revision(&store, key).await;
                if current != expected {
                    Err(SharedConfigError::Conflict {
                        bucket: bucket.name(),
                        key: key.to_string(),
                        expected,
                        current,
                    })
                } else {
                    Err(SharedConfigError::Unavailable(e.to_string()))
                }
            }
        }
    }
}

/// The watcher's counters.
#[derive(Debug, Default)]
pub struct WatcherCounters {
    /// Changes that changed the roles in force.
    pub applied: AtomicU64,
    /// Changes the roles in force already reflected.
    pub unchanged: AtomicU64,
    /// Changes that could not be decoded or applied (logged).
    pub failed: AtomicU64,
    /// Watch or connection errors (each retried).
    pub errors: AtomicU64,
    /// True once the current values of every bucket were applied.
    pub caught_up: AtomicBool,
}

/// A running watcher (its own thread and runtime, as the publisher).
#[derive(Debug)]
pub struct ConfigWatcher {
    counters: Arc<WatcherCounters>,
    thread: RuntimeThread,
    caught_up: Option<mpsc::Receiver<()>>,
}

impl ConfigWatcher {
    /// Starts watching the buckets on `servers` and applying each change through `operator`.
    /// `on_start` runs first on the new thread.
    pub fn spawn(
        servers: &[String],
        replicas: usize,
        name: &str,
        operator: Operator,
        on_start: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<ConfigWatcher> {
        let counters = Arc::new(WatcherCounters::default());
        let (ready_tx, ready_rx) = mpsc::channel();
        let (servers, name) = (servers.to_vec(), name.to_string());
        let task_counters = Arc::clone(&counters);
        let thread = RuntimeThread::spawn(
            "portolan-config",
            "shared configuration",
            on_start,
            move |stop| {
                Watch {
                    servers,
                    replicas,
                    name,
                    operator,
                    counters: task_counters,
                    stop,
                    ready: Some(ready_tx),
                }
                .run()
            },
        )?;
        Ok(ConfigWatcher {
            counters,
            thread,
            caught_up: Some(ready_rx),
        })
    }

    /// Waits until the current values of every bucket are applied, `timeout` at most; true when
    /// they are.
    pub fn wait_caught_up(&mut self, timeout: Duration) -> bool {
        match self.caught_up.take() {
            Some(rx) => rx.recv_timeout(timeout).is_ok(),
            None => self.counters.caught_up.load(Ordering::Acquire),
        }
    }

    /// The counters.
    pub fn counters(&self) -> Arc<WatcherCounters> {
        Arc::clone(&self.counters)
    }

    /// Stops and joins the thread.
    pub fn stop(mut self) {
        self.thread.shutdown();
    }
}

struct Watch {
    servers: Vec<String>,
    replicas: usize,
    name: String,
    operator: Operator,
    counters: Arc<WatcherCounters>,
    stop: tokio::sync::watch::Receiver<bool>,
    ready: Option<mpsc::Sender<()>>,
}

impl Watch {
    async fn run(mut self) {
        let client = match connect_options(format!("portolan config {}", self.name))
            .connect(self.servers.as_slice())
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "shared configuration: cannot connect");
                return;
            }
        };
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(5))
            .build(client);
        let mut backoff = Duration::from_millis(100);
        loop {
            if *self.stop.borrow() {
                return;
            }
            match self.session(&js).await {
                Ok(()) => return,
                Err(e) => {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "shared configuration: watch interrupted; reading the buckets again");
                }
            }
            let _ = tokio::time::timeout(backoff, self.stop.changed()).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Reads every bucket's current values in order (roles, baselines, exceptions), then applies
    /// changes as they come. Ok when told to stop.
    async fn session(&mut self, js: &jetstream::Context) -> Result<(), String> {
        let mut watches = Vec::with_capacity(ConfigBucket::ALL.len());
        for bucket in ConfigBucket::ALL {
            let store = open_bucket(js, bucket, self.replicas).await?;
            let values = store.status().await.map_err(|e| e.to_string())?.values();
            let mut watch = store
                .watch_with_history(">")
                .await
                .map_err(|e| e.to_string())?;
            let mut pending = values > 0;
            while pending {
                let entry = tokio::select! {
                    e = watch.next() => e,
                    _ = self.stop.changed() => return Ok(()),
                };
                let entry = entry.ok_or("watch ended")?.map_err(|e| e.to_string())?;
                pending = entry.delta > 0;
                self.apply(bucket, entry).await;
            }
            watches.push((bucket, watch));
        }
        if let Some(ready) = self.ready.take() {
            self.counters.caught_up.store(true, Ordering::Release);
            let _ = ready.send(());
            tracing::info!("shared configuration: current values applied; watching");
        }
        let mut merged = futures_util::stream::select_all(
            watches
                .into_iter()
                .map(|(b, w)| w.map(move |e| (b, e)).boxed()),
        );
        // The watch's ordered consumer reports a missed idle heartbeat (a busy machine, a
        // server restart) and recreates itself; only a run of errors reads the buckets again.
        let mut errors_in_a_row = 0u32;
        loop {
            let next = tokio::select! {
                e = merged.next() => e,
                _ = self.stop.changed() => return Ok(()),
            };
            let (bucket, entry) = next.ok_or("watch ended")?;
            match entry {
                Ok(entry) => {
                    errors_in_a_row = 0;
                    self.apply(bucket, entry).await;
                }
                Err(e) => {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    errors_in_a_row += 1;
                    if errors_in_a_row >= 5 {
                        return Err(e.to_string());
                    }
                    tracing::debug!(bucket = bucket.bucket(), error = %e, "shared configuration: watch error; the watch goes on");
                }
            }
        }
    }

    async fn apply(&self, bucket: ConfigBucket, entry: kv::Entry) {
        let value = match entry.operation {
            kv::Operation::Put => {
                let decoded = SharedValue::decode(&entry.value)
                    .and_then(|v| check_data(bucket, &entry.key, &v.data).map(|d| (v, d)));
                match decoded {
                    Ok(v) => Some(v),
                    Err(e) => {
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(bucket = bucket.bucket(), key = %entry.key, revision = entry.revision, error = %e, "shared configuration: value not applied");
                        return;
                    }
                }
            }
            kv::Operation::Delete | kv::Operation::Purge => None,
        };
        let change = SharedChange {
            bucket,
            key: entry.key.clone(),
            revision: entry.revision,
            value,
        };
        let op = self.operator.clone();
        let result = tokio::task::spawn_blocking(move || op.apply_shared_change(&change))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match result {
            Ok(SharedOutcome::Applied) => {
                self.counters.applied.fetch_add(1, Ordering::Relaxed);
                tracing::info!(bucket = bucket.bucket(), key = %entry.key, revision = entry.revision, "shared configuration: change applied");
            }
            Ok(SharedOutcome::Unchanged) => {
                self.counters.unchanged.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(bucket = bucket.bucket(), key = %entry.key, revision = entry.revision, error = %e, "shared configuration: change not applied");
            }
        }
    }
}
