//! Validates EVE records against Suricata's own schema (`etc/schema.json`, vendored with its
//! source and commit in `tests/fixtures/schemas/suricata/`).
//!
//! Portolan's own fields live under the one key `portolan`; the schema's top level allows no
//! unknown keys, so that key is set aside before validating — every other field must have
//! Suricata's shape and type. Reads records only; must not judge anything but the schema.

use serde_json::Value;
use std::path::Path;

/// Suricata's EVE schema, compiled once per test.
pub struct EveSchema {
    validator: jsonschema::Validator,
}

impl EveSchema {
    /// Loads the vendored schema.
    pub fn load() -> EveSchema {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/schemas/suricata/schema.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let schema: Value = serde_json::from_str(&text).expect("schema.json is JSON");
        let validator = jsonschema::draft202012::new(&schema).expect("Suricata's schema compiles");
        EveSchema { validator }
    }

    /// The schema errors of one record (empty: valid), each as `path: message`, with the
    /// `portolan` key set aside.
    pub fn errors(&self, record: &Value) -> Vec<String> {
        let mut record = record.clone();
        if let Some(obj) = record.as_object_mut() {
            obj.remove("portolan");
        }
        self.validator
            .iter_errors(&record)
            .map(|e| format!("{}: {e}", e.instance_path))
            .collect()
    }

    /// Validates every record; returns `(records, failures)` where each failure names the
    /// source, the record's line and its errors.
    pub fn check_all<'a>(
        &self,
        source: &str,
        records: impl IntoIterator<Item = &'a Value>,
    ) -> (usize, Vec<String>) {
        let mut n = 0;
        let mut failures = Vec::new();
        for (i, r) in records.into_iter().enumerate() {
            n += 1;
            let errs = self.errors(r);
            if !errs.is_empty() {
                failures.push(format!("{source} record {}: {}", i + 1, errs.join("; ")));
            }
        }
        (n, failures)
    }
}
