//! Typed reads from a JSON tree that remember where they are, so every error names the field
//! (`results[2].general.udid`).
//!
//! Owns: [`JsonNode`] and [`FieldError`]. Must not: know any MDM's field names.

use serde_json::{Map, Value};

/// A missing or malformed field, named by its path from the document root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {message}")]
pub struct FieldError {
    /// Path from the root, e.g. `value[0].detectedApps[3].displayName`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// A JSON object together with its path from the document root.
#[derive(Debug, Clone)]
pub(crate) struct JsonNode<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

/// Names a JSON value for messages without dumping large objects.
fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("bool {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl<'a> JsonNode<'a> {
    /// Wraps `value` (which must be an object) found at `path`.
    pub(crate) fn new(value: &'a Value, path: impl Into<String>) -> Result<Self, FieldError> {
        let path = path.into();
        match value {
            Value::Object(map) => Ok(JsonNode { map, path }),
            other => Err(FieldError {
                field: if path.is_empty() {
                    "(root)".to_string()
                } else {
                    path
                },
                message: format!("expected an object, found {}", kind(other)),
            }),
        }
    }

    /// The path of this node.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// The raw value of `key`, `None` when absent or null.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// An error about `key` under this node.
    pub(crate) fn error(&self, key: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            field: join(&self.path, key),
            message: message.into(),
        }
    }

    /// A string; absent, null or empty gives `None`; another type is an error.
    pub(crate) fn str_opt(&self, key: &str) -> Result<Option<&'a str>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => {
                Err(self.error(key, format!("expected a string, found {}", kind(other))))
            }
        }
    }

    /// A non-empty string that must be there.
    pub(crate) fn str_req(&self, key: &str) -> Result<&'a str, FieldError> {
        self.str_opt(key)?
            .ok_or_else(|| self.error(key, "missing (a non-empty string is required)"))
    }

    /// A string or a number rendered as text (MDMs are inconsistent about versions and ids).
    pub(crate) fn text_opt(&self, key: &str) -> Result<Option<String>, FieldError> {
        match self.get(key) {
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            _ => Ok(self.str_opt(key)?.map(str::to_string)),
        }
    }

    /// A boolean (also accepts the strings `true`/`false`); absent gives `None`.
    pub(crate) fn bool_opt(&self, key: &str) -> Result<Option<bool>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(other) => {
                Err(self.error(key, format!("expected a boolean, found {}", kind(other))))
            }
        }
    }

    /// A nested object, `None` when absent.
    pub(crate) fn object_opt(&self, key: &str) -> Result<Option<JsonNode<'a>>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => JsonNode::new(v, join(&self.path, key)).map(Some),
        }
    }

    /// A nested object that must be there.
    pub(crate) fn object_req(&self, key: &str) -> Result<JsonNode<'a>, FieldError> {
        self.object_opt(key)?
            .ok_or_else(|| self.error(key, "missing (an object is required)"))
    }

    /// The objects of an array, each with its indexed path; `None` when the array is absent.
    pub(crate) fn objects_opt(&self, key: &str) -> Result<Option<Vec<JsonNode<'a>>>, FieldError> {
        let Some(items) = self.array_opt(key)? else {
            return Ok(None);
        };
        let base = join(&self.path, key);
        items
            .iter()
            .enumerate()
            .map(|(i, v)| JsonNode::new(v, format!("{base}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// An array, `None` when absent; another type is an error.
    pub(crate) fn array_opt(&self, key: &str) -> Result<Option<&'a Vec<Value>>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(other) => {
                Err(self.error(key, format!("expected an array, found {}", kind(other))))
            }
        }
    }

    /// The underlying map.
    pub(crate) fn map(&self) -> &'a Map<String, Value> {
        self.map
    }
}

/// Parses an optional timestamp field, naming it on error.
pub(crate) fn timestamp_opt(node: &JsonNode<'_>, key: &str) -> Result<Option<i64>, FieldError> {
    match node.str_opt(key)? {
        None => Ok(None),
        Some(s) => crate::timestamp::parse_timestamp(s)
            .map(Some)
            .map_err(|e| node.error(key, e.to_string())),
    }
}

/// Parses an optional IP address field, naming it on error.
pub(crate) fn ip_opt(
    node: &JsonNode<'_>,
    key: &str,
) -> Result<Option<std::net::IpAddr>, FieldError> {
    match node.str_opt(key)? {
        None => Ok(None),
        Some(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| node.error(key, format!("not an IP address: {s:?}"))),
    }
}

/// Parses an optional MAC address field, naming it on error.
pub(crate) fn mac_opt(node: &JsonNode<'_>, key: &str) -> Result<Option<String>, FieldError> {
    match node.str_opt(key)? {
        None => Ok(None),
        Some(s) => super::normalize_mac(s)
            .map(Some)
            .ok_or_else(|| node.error(key, format!("not a MAC address: {s:?}"))),
    }
}
