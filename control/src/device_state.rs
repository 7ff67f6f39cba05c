//! Device state over time (lock state, foreground/background app, last user interaction) from a
//! mobile threat defence / EDR feed, looked up at each session's time.
//!
//! Owns: the JSON-lines event format, its parser (errors name `file:line` and the field), and
//! [`DeviceStateTimeline`], which answers "what was the state at or before time t".
//! Must not: infer a state no event reported (an unlock is not taken as an interaction).
//!
//! # Format (one object per line; blank lines ignored)
//!
//! ```json
//! {"timestamp": "2024-05-01T10:00:00Z", "udid": "00008110-...", "lock_state": "locked"}
//! {"timestamp": "2024-05-01T10:02:00Z", "serial_number": "F2LX...", "app_state": "foreground",
//!  "bundle_id": "com.apple.mobilesafari", "last_user_interaction": "2024-05-01T10:01:58Z"}
//! ```
//!
//! `timestamp` (RFC 3339) and `udid` and/or `serial_number` are required, plus at least one of
//! `lock_state` (`locked`/`unlocked`), `app_state` (`foreground`/`background`, optional
//! `bundle_id`), `last_user_interaction` (RFC 3339). Unknown fields are ignored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::timestamp::parse_timestamp;

/// Locked or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockState {
    /// Screen locked.
    Locked,
    /// Unlocked.
    Unlocked,
}

/// Whether an app is on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppState {
    /// On screen.
    Foreground,
    /// Not on screen (background refresh, push, ...).
    Background,
}

/// One device state report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceStateEvent {
    /// When, µs since the epoch.
    pub ts_us: i64,
    /// Device UDID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udid: Option<String>,
    /// Device serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// Lock state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_state: Option<LockState>,
    /// App state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_state: Option<AppState>,
    /// The app `app_state` is about (none: the device's front-most app in general).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_id: Option<String>,
    /// Last user interaction, µs since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_user_interaction_us: Option<i64>,
}

/// A state line that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceStateError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is malformed.
    #[error("{path}:{line}: {message}")]
    Line {
        /// The file (or `(api)`).
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The field and the problem.
        message: String,
    },
}

fn field_str<'a>(
    obj: &'a serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim())),
        Some(other) => Err(format!("field `{key}`: expected a string, found {other}")),
    }
}

impl DeviceStateEvent {
    /// Parses one JSON object (one line of the file, or an API body). The error names the field.
    pub fn from_json(value: &Value) -> Result<DeviceStateEvent, String> {
        let obj = value.as_object().ok_or("expected a JSON object")?;
        let ts = field_str(obj, "timestamp")?.ok_or("field `timestamp`: missing")?;
        let ts_us = parse_timestamp(ts).map_err(|e| format!("field `timestamp`: {e}"))?;
        let udid = field_str(obj, "udid")?.map(str::to_string);
        let serial_number = field_str(obj, "serial_number")?.map(str::to_string);
        if udid.is_none() && serial_number.is_none() {
            return Err("field `udid`: missing (give `udid` and/or `serial_number`)".to_string());
        }
        let lock_state = match field_str(obj, "lock_state")? {
            None => None,
            Some("locked") => Some(LockState::Locked),
            Some("unlocked") => Some(LockState::Unlocked),
            Some(other) => {
                return Err(format!(
                    "field `lock_state`: expected \"locked\" or \"unlocked\", found {other:?}"
                ))
            }
        };
        let app_state = match field_str(obj, "app_state")? {
            None => None,
            Some("foreground") => Some(AppState::Foreground),
            Some("background") => Some(AppState::Background),
            Some(other) => {
                return Err(format!(
                    "field `app_state`: expected \"foreground\" or \"background\", found {other:?}"
                ))
            }
        };
        let last_user_interaction_us = match field_str(obj, "last_user_interaction")? {
            None => None,
            Some(s) => Some(
                parse_timestamp(s).map_err(|e| format!("field `last_user_interaction`: {e}"))?,
            ),
        };
        if lock_state.is_none() && app_state.is_none() && last_user_interaction_us.is_none() {
            return Err(
                "no state: give `lock_state`, `app_state` or `last_user_interaction`".to_string(),
            );
        }
        Ok(DeviceStateEvent {
            ts_us,
            udid,
            serial_number,
            lock_state,
            app_state,
            bundle_id: field_str(obj, "bundle_id")?.map(str::to_string),
            last_user_interaction_us,
        })
    }
}

/// Parses a JSON-lines state file's text; `path` names errors.
pub fn parse_device_states(
    text: &str,
    path: &Path,
) -> Result<Vec<DeviceStateEvent>, DeviceStateError> {
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |message: String| DeviceStateError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let value: Value = serde_json::from_str(line)
            .map_err(|e| err(format!("not JSON (column {}): {e}", e.column())))?;
        events.push(DeviceStateEvent::from_json(&value).map_err(err)?);
    }
    Ok(events)
}

/// Reads a JSON-lines state file.
pub fn load_device_states(path: &Path) -> Result<Vec<DeviceStateEvent>, DeviceStateError> {
    let text =
        crate::input_file::read_to_string_bounded(path, crate::input_file::MAX_INPUT_FILE_BYTES)
            .map_err(|source| DeviceStateError::Io {
                path: path.to_path_buf(),
                source,
            })?;
    parse_device_states(&text, path)
}

/// The state of a device (and app) at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceStateSnapshot {
    /// Latest lock state at or before the moment.
    pub lock_state: Option<LockState>,
    /// The app's state (or the device's front-most app state when no app is given).
    pub app_state: Option<AppState>,
    /// The bundle the app state is about.
    pub app_state_bundle_id: Option<String>,
    /// The app in the foreground at that moment, if reported.
    pub foreground_bundle_id: Option<String>,
    /// Seconds between the last user interaction and the moment.
    pub seconds_since_user_interaction: Option<i64>,
    /// True when any event for the device was at or before the moment.
    pub observed: bool,
}

/// Events per device key, sorted by time.
#[derive(Debug, Clone, Default)]
pub struct DeviceStateTimeline {
    by_key: HashMap<String, Vec<DeviceStateEvent>>,
}

/// Which of one device key's reports older than a retention cutoff (`events`, oldest first) still
/// decide a state read at or after it: the latest of each kind — lock state, last user
/// interaction, any app state, each app's own state, the foreground app — and the latest report
/// of all (it says the device was observed). The others can go without changing any
/// [`DeviceStateTimeline::state_at`] from the cutoff on.
pub fn still_needed(events: &[&DeviceStateEvent]) -> Vec<bool> {
    let mut keep = vec![false; events.len()];
    let (mut lock, mut interaction, mut any_app, mut foreground) = (false, false, false, false);
    let mut apps: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (i, e) in events.iter().enumerate().rev() {
        let mut needed = i + 1 == events.len();
        if e.lock_state.is_some() && !lock {
            lock = true;
            needed = true;
        }
        if e.last_user_interaction_us.is_some() && !interaction {
            interaction = true;
            needed = true;
        }
        if e.app_state.is_some() {
            if !any_app {
                any_app = true;
                needed = true;
            }
            if let Some(b) = e.bundle_id.as_deref() {
                if apps.insert(b) {
                    needed = true;
                }
                if e.app_state == Some(AppState::Foreground) && !foreground {
                    foreground = true;
                    needed = true;
                }
            }
        }
        if let Some(k) = keep.get_mut(i) {
            *k = needed;
        }
    }
    keep
}

impl DeviceStateTimeline {
    /// Adds an event under `key` (a UDID, or `serial:<serial>` when the UDID is unknown).
    pub fn insert(&mut self, key: &str, event: DeviceStateEvent) {
        let events = self.by_key.entry(key.to_string()).or_default();
        let pos = events.partition_point(|e| e.ts_us <= event.ts_us);
        events.insert(pos, event);
    }

    /// Drops the reports older than `cutoff_us` that no state read at or after it needs
    /// ([`still_needed`]); returns how many went. The store prunes its rows by the same rule.
    pub fn prune_before(&mut self, cutoff_us: i64) -> usize {
        let mut removed = 0;
        for events in self.by_key.values_mut() {
            let old = events.partition_point(|e| e.ts_us < cutoff_us);
            let keep = {
                let refs: Vec<&DeviceStateEvent> = events.iter().take(old).collect();
                still_needed(&refs)
            };
            let mut i = 0;
            events.retain(|_| {
                let k = keep.get(i).copied().unwrap_or(true);
                i += 1;
                k
            });
            removed += keep.iter().filter(|k| !**k).count();
        }
        removed
    }

    /// Number of events held.
    pub fn len(&self) -> usize {
        self.by_key.values().map(Vec::len).sum()
    }

    /// True when no event is held.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The state at `at_us` for the device known under any of `keys`, from the latest event at
    /// or before `at_us` for each field. With `bundle_id`, `app_state` is that app's: its own
    /// latest report, turned to background when another app came to the foreground after it.
    pub fn state_at(
        &self,
        keys: &[&str],
        at_us: i64,
        bundle_id: Option<&str>,
    ) -> DeviceStateSnapshot {
        let mut events: Vec<&DeviceStateEvent> = keys
            .iter()
            .filter_map(|k| self.by_key.get(*k))
            .flat_map(|v| {
                let end = v.partition_point(|e| e.ts_us <= at_us);
                v.iter().take(end)
            })
            .collect();
        events.sort_by_key(|e| e.ts_us);
        let mut snap = DeviceStateSnapshot {
            observed: !events.is_empty(),
            ..Default::default()
        };
        let latest =
            |f: &dyn Fn(&DeviceStateEvent) -> bool| events.iter().rev().find(|e| f(e)).copied();
        snap.lock_state = latest(&|e| e.lock_state.is_some()).and_then(|e| e.lock_state);
        if let Some(e) = latest(&|e| e.last_user_interaction_us.is_some()) {
            if let Some(t) = e.last_user_interaction_us {
                snap.seconds_since_user_interaction =
                    Some((at_us.saturating_sub(t) / 1_000_000).max(0));
            }
        }
        let fg = latest(&|e| e.app_state == Some(AppState::Foreground) && e.bundle_id.is_some());
        snap.foreground_bundle_id = fg.and_then(|e| e.bundle_id.clone());
        match bundle_id {
            Some(b) => {
                let own = latest(&|e| e.app_state.is_some() && e.bundle_id.as_deref() == Some(b));
                snap.app_state = match (own, fg) {
                    (Some(o), Some(f))
                        if f.ts_us > o.ts_us && f.bundle_id.as_deref() != Some(b) =>
                    {
                        Some(AppState::Background)
                    }
                    (Some(o), _) => o.app_state,
                    (None, Some(f)) if f.bundle_id.as_deref() != Some(b) => {
                        Some(AppState::Background)
                    }
                    (None, _) => None,
                };
                if snap.app_state.is_some() {
                    snap.app_state_bundle_id = Some(b.to_string());
                }
            }
            None => {
                if let Some(e) = latest(&|e| e.app_state.is_some()) {
                    snap.app_state = e.app_state;
                    snap.app_state_bundle_id = e.bundle_id.clone();
                }
            }
        }
        if snap.lock_state == Some(LockState::Locked)
            && snap.app_state == Some(AppState::Foreground)
        {
            // A locked screen shows no app: whatever runs is in the background.
            snap.app_state = Some(AppState::Background);
        }
        snap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(line: &str) -> DeviceStateEvent {
        DeviceStateEvent::from_json(&serde_json::from_str(line).unwrap()).unwrap()
    }

    #[test]
    fn latest_at_or_before_per_field() {
        let mut t = DeviceStateTimeline::default();
        t.insert("U", ev(r#"{"timestamp":"2024-05-01T10:00:00Z","udid":"U","lock_state":"unlocked","last_user_interaction":"2024-05-01T10:00:00Z"}"#));
        t.insert("U", ev(r#"{"timestamp":"2024-05-01T10:00:10Z","udid":"U","app_state":"foreground","bundle_id":"com.apple.mobilesafari"}"#));
        t.insert(
            "U",
            ev(r#"{"timestamp":"2024-05-01T10:05:00Z","udid":"U","lock_state":"locked"}"#),
        );
        let at = |s: &str| parse_timestamp(s).unwrap();
        let before = t.state_at(&["U"], at("2024-05-01T09:59:59Z"), None);
        assert!(!before.observed);
        let s = t.state_at(
            &["U"],
            at("2024-05-01T10:01:00Z"),
            Some("com.apple.mobilesafari"),
        );
        assert_eq!(s.lock_state, Some(LockState::Unlocked));
        assert_eq!(s.app_state, Some(AppState::Foreground));
        assert_eq!(s.seconds_since_user_interaction, Some(60));
        let mail = t.state_at(
            &["U"],
            at("2024-05-01T10:01:00Z"),
            Some("com.apple.mobilemail"),
        );
        assert_eq!(mail.app_state, Some(AppState::Background));
        let later = t.state_at(
            &["U"],
            at("2024-05-01T10:30:00Z"),
            Some("com.apple.mobilesafari"),
        );
        assert_eq!(later.lock_state, Some(LockState::Locked));
        assert_eq!(later.app_state, Some(AppState::Background));
        assert_eq!(later.seconds_since_user_interaction, Some(1800));
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let text = "{\"timestamp\":\"2024-05-01T10:00:00Z\",\"udid\":\"U\",\"lock_state\":\"locked\"}\n\n\
                    {\"timestamp\":\"2024-05-01T10:00:00Z\",\"udid\":\"U\",\"lock_state\":\"asleep\"}\n";
        let e = parse_device_states(text, Path::new("s.jsonl")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("s.jsonl:3: field `lock_state`"), "{msg}");
        let e = parse_device_states(
            "{\"udid\":\"U\",\"lock_state\":\"locked\"}",
            Path::new("s.jsonl"),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("s.jsonl:1: field `timestamp`"),
            "{e}"
        );
        let e = parse_device_states("{not json", Path::new("s.jsonl")).unwrap_err();
        assert!(e.to_string().starts_with("s.jsonl:1: not JSON"), "{e}");
    }

    proptest::proptest! {
        /// Pruning before a cutoff changes no state read at or after it, for any reports (two
        /// device keys, any mix of fields, equal times included) and any cutoff.
        #[test]
        fn pruning_keeps_every_read_from_the_cutoff_on(
            reports in proptest::collection::vec(
                (0usize..2, 0i64..50, 0u8..3, 0u8..3, proptest::option::of(0u8..3), proptest::bool::ANY),
                0..60,
            ),
            cutoff in 0i64..60,
        ) {
            let mut t = DeviceStateTimeline::default();
            for &(key, ts, lock, app, bundle, touched) in &reports {
                let e = DeviceStateEvent {
                    ts_us: ts,
                    udid: None,
                    serial_number: None,
                    lock_state: [None, Some(LockState::Locked), Some(LockState::Unlocked)][usize::from(lock)],
                    app_state: [None, Some(AppState::Foreground), Some(AppState::Background)][usize::from(app)],
                    bundle_id: bundle.map(|b| format!("app{b}")),
                    last_user_interaction_us: touched.then_some(ts - 1),
                };
                t.insert(["U", "serial:S"][key], e);
            }
            let reads = |t: &DeviceStateTimeline| -> Vec<String> {
                let mut out = Vec::new();
                for at in cutoff..62 {
                    for app in [None, Some("app0"), Some("app1"), Some("app2")] {
                        out.push(format!("{:?}", t.state_at(&["U", "serial:S"], at, app)));
                    }
                }
                out
            };
            let before = reads(&t);
            let held = t.len();
            let removed = t.prune_before(cutoff);
            proptest::prop_assert_eq!(t.len() + removed, held);
            proptest::prop_assert_eq!(reads(&t), before);
        }
    }
}
