//! The central's consumer: reads the fleet's stream with a durable pull consumer and applies each
//! message to the central's store (`Store::apply_fleet_message`: idempotent, one transaction),
//! acknowledging it only after the commit.
//!
//! Messages are applied one at a time in stream order, which is each appliance's outbox order. A
//! message the store cannot take now is retried in place (the consumer tells JetStream the work
//! is in progress, so it is not redelivered meanwhile) rather than skipped, so no later message of
//! the same appliance overtakes it. A crash before the acknowledgement redelivers the message
//! after the restart, where it is recognised as applied and acknowledged again. Several centrals
//! each use their own durable name and store; each gets every message.
//!
//! Owns: the connection, the stream and consumer creation when missing, the counters. Must not:
//! decide how findings merge (the store does) or reorder messages.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, message::AckKind};
use futures_util::StreamExt;
use portolan_control::fleet;
use portolan_control::store::Applied;
use portolan_control::ControlCore;

use crate::config::CentralSection;
use crate::publisher::stream_config;

/// The consumer's counters.
#[derive(Debug, Default)]
pub struct ConsumerCounters {
    /// Messages applied.
    pub applied: AtomicU64,
    /// Messages recognised as applied already (redeliveries, late copies).
    pub duplicates: AtomicU64,
    /// Messages that could not be decoded (terminated, never redelivered; logged).
    pub malformed: AtomicU64,
    /// Store commits that failed (each retried).
    pub store_errors: AtomicU64,
    /// Connection, stream or consumer errors (each retried).
    pub errors: AtomicU64,
    /// True while the consumer is attached to the stream.
    pub attached: AtomicBool,
}

/// Consumes until `stop` turns true.
pub async fn run(
    cfg: CentralSection,
    core: Arc<ControlCore>,
    counters: Arc<ConsumerCounters>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let options = async_nats::ConnectOptions::new()
        .name(format!("portolan central {}", cfg.consumer))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|attempt| {
            Duration::from_millis(100 * 2u64.saturating_pow(attempt.min(5) as u32))
                .min(Duration::from_secs(2))
        });
    let client = match options.connect(cfg.servers.as_slice()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "central: cannot connect");
            return;
        }
    };
    let js = jetstream::new(client);
    loop {
        if *stop.borrow() {
            return;
        }
        match attach(&js, &cfg).await {
            Ok(mut messages) => {
                counters.attached.store(true, Ordering::Relaxed);
                tracing::info!(stream = %cfg.stream, consumer = %cfg.consumer, "central: consuming");
                loop {
                    let next = tokio::select! {
                        m = messages.next() => m,
                        _ = stop.changed() => return,
                    };
                    match next {
                        Some(Ok(msg)) => {
                            if handle(&core, &counters, &msg, &mut stop).await {
                                return;
                            }
                        }
                        Some(Err(e)) => {
                            counters.errors.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(error = %e, "central: consumer error; reattaching");
                            break;
                        }
                        None => break,
                    }
                }
                counters.attached.store(false, Ordering::Relaxed);
            }
            Err(e) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "central: cannot attach to the stream; retrying");
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), stop.changed()).await;
    }
}

async fn attach(
    js: &jetstream::Context,
    cfg: &CentralSection,
) -> Result<consumer::pull::Stream, String> {
    let stream = js
        .get_or_create_stream(stream_config(
            &cfg.stream,
            cfg.replicas,
            cfg.duplicate_window_s,
        ))
        .await
        .map_err(|e| e.to_string())?;
    let consumer = stream
        .get_or_create_consumer(
            &cfg.consumer,
            consumer::pull::Config {
                durable_name: Some(cfg.consumer.clone()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                max_ack_pending: 1_000,
                num_replicas: cfg.replicas,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    consumer.messages().await.map_err(|e| e.to_string())
}

/// Applies one message (retrying the store until it takes it) and acknowledges it; true when
/// told to stop meanwhile (the message is then redelivered later).
async fn handle(
    core: &Arc<ControlCore>,
    counters: &ConsumerCounters,
    msg: &jetstream::Message,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    let decoded = match fleet::decode(&msg.payload) {
        Ok(m) => m,
        Err(e) => {
            counters.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(subject = %msg.subject, error = %e, "central: message not applied");
            let _ = msg.ack_with(AckKind::Term).await;
            return false;
        }
    };
    let decoded = Arc::new(decoded);
    loop {
        let (c, m) = (Arc::clone(core), Arc::clone(&decoded));
        let result = tokio::task::spawn_blocking(move || {
            let now = portolan_control::timestamp::now_us();
            c.lock()
                .map_err(|e| e.to_string())?
                .apply_fleet_message(&m, now)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        match result {
            Ok(applied) => {
                match applied {
                    Applied::New => counters.applied.fetch_add(1, Ordering::Relaxed),
                    Applied::Duplicate => counters.duplicates.fetch_add(1, Ordering::Relaxed),
                };
                // An ack lost here redelivers the message, which is then a duplicate.
                if let Err(e) = msg.ack().await {
                    tracing::warn!(error = %e, "central: acknowledgement failed; the message comes again");
                }
                return false;
            }
            Err(e) => {
                counters.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    appliance = %decoded.appliance,
                    seq = decoded.seq,
                    error = %e,
                    "central: store refused a message; retrying it"
                );
                let _ = msg.ack_with(AckKind::Progress).await;
                if tokio::time::timeout(Duration::from_secs(1), stop.changed())
                    .await
                    .is_ok()
                {
                    return true;
                }
            }
        }
    }
}
