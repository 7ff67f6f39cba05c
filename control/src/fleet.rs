//! The fleet's message schema: what an appliance publishes to JetStream from its outbox (a
//! finding update, an alert, or a flush of per-role learning counts), how it is named (subject,
//! message id) and how a consumer decodes it.
//!
//! A message is one JSON object, the envelope:
//!
//! ```json
//! {"schema":1,"appliance":"edge-1","site":"paris","seq":42,"ts_us":1733580000000000,
//!  "version":"0.1.0","kind":"finding","data":{ ...the Finding as the store keeps it... }}
//! ```
//!
//! `data` is the typed model: [`Finding`], [`Alert`] (which carries the
//! [`FlowObservation`](crate::FlowObservation) that raised it) or [`LearningCounts`].
//! `schema` is [`SCHEMA_VERSION`]; a decoder refuses a newer schema with a clear error
//! ([`DecodeError::NewerSchema`]) and reads every older one (the frozen messages in
//! `control/tests/fixtures/fleet/` are decoded by `control/tests/fleet_schema.rs`). Fields added
//! later must be optional (`#[serde(default)]`), so an old message still decodes.
//!
//! Names: the subject is `portolan.<site>.<appliance>.<kind>` ([`subject`]), so a consumer can
//! filter by site or appliance; the message id (`Nats-Msg-Id`) is `<appliance>:<seq>`
//! ([`message_id`]), unique for the life of the appliance's store (outbox sequence numbers are
//! never reused), so a message sent again after a crash is dropped by JetStream's
//! de-duplication. Site and appliance ids are subject tokens: 1 to 64 of `A-Z a-z 0-9 _ -`
//! ([`check_id`]).
//!
//! Owns: the envelope, the kinds, the names. Must not: talk to a server or the store.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::alert::Alert;
use crate::findings::Finding;
use crate::learning::PairCountKey;
use crate::store::OutboxRow;

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = 1;

/// The first token of every fleet subject.
pub const SUBJECT_ROOT: &str = "portolan";

/// What a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A finding as it stands after an update (one per finding per committed batch).
    Finding,
    /// An alert, as raised.
    Alert,
    /// Per-role learning counts added by one flush.
    Learning,
}

impl Kind {
    /// The name used in subjects, the outbox and the envelope.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Finding => "finding",
            Kind::Alert => "alert",
            Kind::Learning => "learning",
        }
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<Kind> {
        match name {
            "finding" => Some(Kind::Finding),
            "alert" => Some(Kind::Alert),
            "learning" => Some(Kind::Learning),
            _ => None,
        }
    }
}

/// One learning count added by a flush: `count` sessions of `app_proto` over `transport` to
/// `port` by devices of `role`, in the bucket starting at `bucket_us`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearningCount {
    /// The role, or `device-default`.
    pub role: String,
    /// Protocol.
    pub app_proto: String,
    /// `TCP` or `UDP`.
    pub transport: String,
    /// Server port.
    pub port: u16,
    /// Bucket start, µs since the epoch.
    pub bucket_us: i64,
    /// Sessions added.
    pub count: u64,
}

/// The learning counts one flush added.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearningCounts {
    /// The counts.
    pub counts: Vec<LearningCount>,
}

impl LearningCounts {
    /// The message for what [`crate::Store::add_learning_counts`] adds.
    pub fn from_pairs(pairs: &[(PairCountKey, u64)]) -> LearningCounts {
        LearningCounts {
            counts: pairs
                .iter()
                .map(|(k, n)| LearningCount {
                    role: k.role.clone(),
                    app_proto: k.app_proto.clone(),
                    transport: k.transport.clone(),
                    port: k.port,
                    bucket_us: k.bucket_us,
                    count: *n,
                })
                .collect(),
        }
    }
}

/// A decoded message's body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A finding update.
    Finding(Box<Finding>),
    /// An alert.
    Alert(Box<Alert>),
    /// Learning counts.
    Learning(LearningCounts),
}

/// A decoded fleet message.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetMessage {
    /// The schema version it was written with.
    pub schema: u32,
    /// Appliance id.
    pub appliance: String,
    /// Site id.
    pub site: String,
    /// The appliance's outbox sequence number.
    pub seq: i64,
    /// When the appliance queued it, µs since the epoch.
    pub ts_us: i64,
    /// The appliance's software version.
    pub version: String,
    /// Rows waiting in the appliance's outbox when it sent this one (0 in messages that do not
    /// say).
    pub backlog: u64,
    /// The record.
    pub body: Body,
}

impl FleetMessage {
    /// The kind of its body.
    pub fn kind(&self) -> Kind {
        match self.body {
            Body::Finding(_) => Kind::Finding,
            Body::Alert(_) => Kind::Alert,
            Body::Learning(_) => Kind::Learning,
        }
    }
}

/// Who publishes: the envelope's fixed fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Site id (a subject token).
    pub site: String,
    /// Appliance id (a subject token).
    pub appliance: String,
    /// Software version.
    pub version: String,
}

/// Why a message could not be decoded or encoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or not the envelope's shape.
    #[error("not a fleet message: {0}")]
    Malformed(String),
    /// Written by a newer build.
    #[error("fleet message schema {found} is newer than this build reads ({supported})")]
    NewerSchema {
        /// The message's schema.
        found: u32,
        /// The newest this build reads.
        supported: u32,
    },
    /// The body does not match its kind.
    #[error("fleet message {kind} (schema {schema}): {message}")]
    Body {
        /// Kind.
        kind: &'static str,
        /// Schema.
        schema: u32,
        /// serde's reason.
        message: String,
    },
}

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    schema: u32,
    appliance: &'a str,
    site: &'a str,
    seq: i64,
    ts_us: i64,
    version: &'a str,
    backlog: u64,
    kind: Kind,
    data: &'a RawValue,
}

#[derive(Deserialize)]
struct EnvelopeIn {
    schema: u32,
    appliance: String,
    site: String,
    seq: i64,
    ts_us: i64,
    #[serde(default)]
    version: String,
    #[serde(default)]
    backlog: u64,
    kind: Kind,
    data: Box<RawValue>,
}

/// The message for an outbox row whose payload is the record's JSON text, sent while `backlog`
/// rows wait in the outbox.
pub fn encode(origin: &Origin, row: &OutboxRow, backlog: u64) -> Result<Vec<u8>, DecodeError> {
    let (seq, ts_us, kind, payload) = (row.seq, row.ts_us, row.kind, row.payload.as_str());
    let data: &RawValue = serde_json::from_str(payload)
        .map_err(|e| DecodeError::Malformed(format!("outbox row {seq}: {e}")))?;
    serde_json::to_vec(&EnvelopeOut {
        schema: SCHEMA_VERSION,
        appliance: &origin.appliance,
        site: &origin.site,
        seq,
        ts_us,
        version: &origin.version,
        backlog,
        kind,
        data,
    })
    .map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// Decodes a message of this or an older schema.
pub fn decode(bytes: &[u8]) -> Result<FleetMessage, DecodeError> {
    let env: EnvelopeIn =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if env.schema > SCHEMA_VERSION {
        return Err(DecodeError::NewerSchema {
            found: env.schema,
            supported: SCHEMA_VERSION,
        });
    }
    if env.schema == 0 {
        return Err(DecodeError::Malformed("schema 0".into()));
    }
    let body_error = |e: serde_json::Error| DecodeError::Body {
        kind: env.kind.as_str(),
        schema: env.schema,
        message: e.to_string(),
    };
    let text = env.data.get();
    let body = match env.kind {
        Kind::Finding => Body::Finding(Box::new(serde_json::from_str(text).map_err(body_error)?)),
        Kind::Alert => Body::Alert(Box::new(serde_json::from_str(text).map_err(body_error)?)),
        Kind::Learning => Body::Learning(serde_json::from_str(text).map_err(body_error)?),
    };
    Ok(FleetMessage {
        schema: env.schema,
        appliance: env.appliance,
        site: env.site,
        seq: env.seq,
        ts_us: env.ts_us,
        version: env.version,
        backlog: env.backlog,
        body,
    })
}

/// `portolan.<site>.<appliance>.<kind>`.
pub fn subject(site: &str, appliance: &str, kind: Kind) -> String {
    format!("{SUBJECT_ROOT}.{site}.{appliance}.{}", kind.as_str())
}

/// The `Nats-Msg-Id` of an appliance's outbox row: `<appliance>:<seq>`.
pub fn message_id(appliance: &str, seq: i64) -> String {
    format!("{appliance}:{seq}")
}

/// Checks a site or appliance id: 1 to 64 of `A-Z a-z 0-9 _ -` (a NATS subject token with no
/// wildcard, separator or space). The error says what is wrong.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".into());
    }
    if id.len() > 64 {
        return Err(format!("is {} characters long, at most 64", id.len()));
    }
    match id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        Some(c) => Err(format!(
            "{id:?} contains {c:?}; only letters, digits, '_' and '-' are allowed"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_subject_tokens() {
        assert!(check_id("edge-1_paris").is_ok());
        for bad in ["", "a.b", "a b", "a*", "a>", &"x".repeat(65)] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn learning_counts_round_trip_and_newer_schemas_are_refused() {
        let origin = Origin {
            site: "paris".into(),
            appliance: "edge-1".into(),
            version: "0.1.0".into(),
        };
        let body = LearningCounts {
            counts: vec![LearningCount {
                role: "sales".into(),
                app_proto: "ssh".into(),
                transport: "TCP".into(),
                port: 2222,
                bucket_us: 3_600_000_000,
                count: 7,
            }],
        };
        let row = |kind, payload: String| OutboxRow {
            seq: 9,
            ts_us: 5,
            kind,
            payload,
        };
        let bytes = encode(
            &origin,
            &row(Kind::Learning, serde_json::to_string(&body).unwrap()),
            3,
        )
        .unwrap();
        let m = decode(&bytes).unwrap();
        assert_eq!(m.body, Body::Learning(body));
        assert_eq!(
            (m.seq, m.ts_us, m.site.as_str(), m.backlog),
            (9, 5, "paris", 3)
        );
        let newer = String::from_utf8(bytes)
            .unwrap()
            .replace("\"schema\":1", "\"schema\":2");
        let e = decode(newer.as_bytes()).unwrap_err();
        assert!(
            matches!(e, DecodeError::NewerSchema { found: 2, .. }),
            "{e}"
        );
        assert!(encode(&origin, &row(Kind::Alert, "{not json".into()), 0).is_err());
        assert_eq!(
            subject("paris", "edge-1", Kind::Alert),
            "portolan.paris.edge-1.alert"
        );
        assert_eq!(message_id("edge-1", 42), "edge-1:42");
    }
}
