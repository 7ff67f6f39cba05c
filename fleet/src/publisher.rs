//! The appliance's publisher: sends the store's outbox to JetStream, in order, one message at a
//! time, and removes rows only after JetStream acknowledged them.
//!
//! Each row becomes one message (`portolan_control::fleet::encode`) on
//! `portolan.<site>.<appliance>.<kind>` with `Nats-Msg-Id` = `<appliance>:<outbox seq>`. The
//! next row is sent only after the previous one's acknowledgement, so the stream holds an
//! appliance's messages in outbox order. Acknowledged rows are removed in one statement per
//! batch; a crash between the acknowledgement and the removal sends those rows again after the
//! restart, and JetStream's de-duplication (within the stream's window) drops the copies: the ack
//! then says `duplicate`, counted apart. While the cluster is unreachable the publisher retries
//! (backing off to 2 s) and the outbox grows up to its bound; the engine keeps judging and never
//! waits for the publisher.
//!
//! Runs on its own thread with a current-thread runtime: the outbox reads and removals are
//! blocking SQLite calls on the publisher's own connection ([`OutboxReader`]).
//!
//! Owns: the connection, the stream's creation when missing, the retry policy, the counters.
//! Must not: touch findings or the engine's connection, or reorder rows.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::runtime_thread::RuntimeThread;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage, stream};
use portolan_control::fleet::{self, Origin};
use portolan_control::store::{OutboxReader, OutboxRow};

use crate::config::FleetConfig;

/// Rows read from the outbox per pass.
const BATCH: usize = 256;
/// How often an idle publisher looks for new rows.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// Longest wait between retries while the cluster is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The publisher's counters, shared with the statistics.
#[derive(Debug, Default)]
pub struct PublisherCounters {
    /// Messages JetStream acknowledged as stored (duplicates excluded).
    pub published: AtomicU64,
    /// Messages JetStream acknowledged as duplicates of one it already had.
    pub duplicates: AtomicU64,
    /// Failed publishes and connection or stream errors (each retried).
    pub errors: AtomicU64,
    /// Outbox rows that could not be encoded (removed and logged, never sent).
    pub malformed: AtomicU64,
    /// Rows waiting in the outbox (read after each pass).
    pub backlog: AtomicU64,
    /// Rows the full outbox did not take.
    pub dropped: AtomicU64,
    /// The newest outbox sequence number acknowledged.
    pub acked_seq: AtomicU64,
    /// True once the last publish was acknowledged, false after a failure.
    pub healthy: AtomicBool,
}

/// A running publisher.
#[derive(Debug)]
pub struct Publisher {
    counters: Arc<PublisherCounters>,
    thread: RuntimeThread,
    capacity: u64,
    servers: String,
}

impl Publisher {
    /// Starts the publisher thread over the store file `db` (already opened once by the engine,
    /// so its schema has the outbox). `on_start` runs first on the new thread (the daemon pins it
    /// to the control cores).
    pub fn spawn(
        config: &FleetConfig,
        version: &str,
        db: PathBuf,
        on_start: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<Publisher> {
        let counters = Arc::new(PublisherCounters::default());
        let task_config = config.clone();
        let origin = Origin {
            site: config.site.clone(),
            appliance: config.appliance.clone(),
            version: version.to_string(),
        };
        let task_counters = Arc::clone(&counters);
        let thread =
            RuntimeThread::spawn("portolan-fleet", "fleet publisher", on_start, move |stop| {
                Task {
                    config: task_config,
                    origin,
                    db,
                    counters: task_counters,
                    stop,
                }
                .run()
            })?;
        Ok(Publisher {
            counters,
            thread,
            capacity: config.outbox_capacity,
            servers: config.servers.join(","),
        })
    }

    /// The counters.
    pub fn counters(&self) -> Arc<PublisherCounters> {
        Arc::clone(&self.counters)
    }

    /// The outbox's bound.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The servers, comma-separated.
    pub fn servers(&self) -> &str {
        &self.servers
    }

    /// Stops after the message in flight (rows not yet sent stay in the outbox for the next
    /// start) and joins the thread.
    pub fn stop(mut self) {
        self.thread.shutdown();
    }
}

/// The fleet's stream as the publisher and the central create it when missing: every
/// `portolan.>` subject, on disk, `replicas` copies, de-duplication over `duplicate_window_s`.
pub(crate) fn stream_config(
    name: &str,
    replicas: usize,
    duplicate_window_s: u64,
) -> stream::Config {
    stream::Config {
        name: name.to_string(),
        subjects: vec![format!("{}.>", fleet::SUBJECT_ROOT)],
        storage: stream::StorageType::File,
        num_replicas: replicas,
        duplicate_window: Duration::from_secs(duplicate_window_s),
        ..Default::default()
    }
}

struct Task {
    config: FleetConfig,
    origin: Origin,
    db: PathBuf,
    counters: Arc<PublisherCounters>,
    stop: tokio::sync::watch::Receiver<bool>,
}

/// Why one pass stopped early.
enum PassEnd {
    /// Told to stop.
    Stop,
    /// A publish failed; retry after a pause.
    Failed,
    /// A publish waited its whole acknowledgement timeout (e.g. the stream's leader died and
    /// the cluster is electing another): retry at once, the wait was the pause.
    TimedOut,
}

impl Task {
    async fn run(mut self) {
        let reader = loop {
            match OutboxReader::open(&self.db) {
                Ok(r) => break r,
                Err(e) => {
                    tracing::error!(error = %e, "fleet publisher: cannot open the outbox; retrying");
                    if self.pause(MAX_BACKOFF).await {
                        return;
                    }
                }
            }
        };
        self.refresh(&reader);
        let options = async_nats::ConnectOptions::new()
            .name(format!("portolan {}", self.origin.appliance))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .reconnect_delay_callback(|attempt| {
                Duration::from_millis(100 * 2u64.saturating_pow(attempt.min(5) as u32))
                    .min(MAX_BACKOFF)
            });
        let servers: Vec<String> = self.config.servers.clone();
        let client = match options.connect(servers.as_slice()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "fleet publisher: cannot connect");
                return;
            }
        };
        let js = jetstream::ContextBuilder::new()
            .timeout(self.config.ack_timeout())
            .build(client);
        let mut backoff = Duration::from_millis(100);
        let mut stream_ready = false;
        let mut last_error_log: Option<Instant> = None;
        loop {
            if *self.stop.borrow() {
                return;
            }
            if !stream_ready {
                match self.ensure_stream(&js).await {
                    Ok(()) => stream_ready = true,
                    Err(e) => {
                        self.refresh(&reader);
                        self.failed(&mut last_error_log, &format!("stream: {e}"));
                        if self.pause(backoff).await {
                            return;
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
            match self.pass(&reader, &js, &mut last_error_log).await {
                Ok(0) => {
                    backoff = Duration::from_millis(100);
                    if self.pause(IDLE_POLL).await {
                        return;
                    }
                }
                Ok(_) => backoff = Duration::from_millis(100),
                Err(PassEnd::Stop) => return,
                Err(PassEnd::TimedOut) => backoff = Duration::from_millis(100),
                Err(PassEnd::Failed) => {
                    if self.pause(backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Sleeps `d`; true when told to stop meanwhile.
    async fn pause(&mut self, d: Duration) -> bool {
        let _ = tokio::time::timeout(d, self.stop.changed()).await;
        *self.stop.borrow()
    }

    fn failed(&self, last_log: &mut Option<Instant>, what: &str) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        self.counters.healthy.store(false, Ordering::Relaxed);
        // One line per 10 s while the cluster stays away.
        if last_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
            *last_log = Some(Instant::now());
            tracing::warn!(
                backlog = self.counters.backlog.load(Ordering::Relaxed),
                "fleet publisher: {what}; the outbox keeps the messages and the publisher retries"
            );
        }
    }

    async fn ensure_stream(&self, js: &jetstream::Context) -> Result<(), String> {
        let cfg = stream_config(
            &self.config.stream,
            self.config.replicas,
            self.config.duplicate_window_s,
        );
        js.get_or_create_stream(cfg)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn refresh(&self, reader: &OutboxReader) {
        match reader.stats() {
            Ok(s) => {
                self.counters.backlog.store(s.rows, Ordering::Relaxed);
                self.counters.dropped.store(s.dropped, Ordering::Relaxed);
            }
            Err(e) => tracing::error!(error = %e, "fleet publisher: cannot read the outbox"),
        }
    }

    /// Sends one batch in order; the number of rows done (acknowledged or removed as malformed).
    async fn pass(
        &mut self,
        reader: &OutboxReader,
        js: &jetstream::Context,
        last_log: &mut Option<Instant>,
    ) -> Result<usize, PassEnd> {
        let rows = match reader.batch(0, BATCH) {
            Ok(r) => r,
            Err(e) => {
                self.failed(last_log, &format!("outbox: {e}"));
                return Err(PassEnd::Failed);
            }
        };
        let mut done_through: Option<i64> = None;
        let mut outcome = Ok(rows.len());
        for row in &rows {
            if *self.stop.borrow() {
                outcome = Err(PassEnd::Stop);
                break;
            }
            let sent = Instant::now();
            match self.publish(js, row).await {
                Ok(()) => done_through = Some(row.seq),
                Err(e) => {
                    self.failed(last_log, &e);
                    outcome = Err(if sent.elapsed() >= self.config.ack_timeout() {
                        PassEnd::TimedOut
                    } else {
                        PassEnd::Failed
                    });
                    break;
                }
            }
        }
        if let Some(seq) = done_through {
            if let Err(e) = reader.remove_through(seq) {
                // Sent again after the next start; de-duplicated by the message id.
                tracing::error!(error = %e, "fleet publisher: cannot remove acknowledged rows");
            }
            self.counters
                .acked_seq
                .store(u64::try_from(seq).unwrap_or(0), Ordering::Relaxed);
        }
        self.refresh(reader);
        outcome
    }

    async fn publish(&self, js: &jetstream::Context, row: &OutboxRow) -> Result<(), String> {
        let backlog = self.counters.backlog.load(Ordering::Relaxed);
        let payload = match fleet::encode(&self.origin, row, backlog) {
            Ok(p) => p,
            Err(e) => {
                self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(seq = row.seq, error = %e, "fleet publisher: outbox row not sent");
                return Ok(());
            }
        };
        let subject = fleet::subject(&self.origin.site, &self.origin.appliance, row.kind);
        let msg = PublishMessage::build()
            .payload(payload.into())
            .message_id(fleet::message_id(&self.origin.appliance, row.seq));
        let ack = js
            .send_publish(subject, msg)
            .await
            .map_err(|e| format!("publish: {e}"))?
            .await
            .map_err(|e| format!("acknowledgement: {e}"))?;
        if ack.duplicate {
            self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters.published.fetch_add(1, Ordering::Relaxed);
        }
        self.counters.healthy.store(true, Ordering::Relaxed);
        Ok(())
    }
}
