//! Builds a JSON Schema for OCSF Detection Finding (class 2004) from the vendored OCSF 1.5.0
//! schema files (`tests/fixtures/schemas/ocsf-1.5.0/`: dictionary, objects, profiles and the
//! class chain base_event → finding → detection_finding) and validates records against it.
//!
//! What the generated schema checks: every attribute the class or an object defines (merged down
//! `extends` chains and `$include`d profiles — profile attributes only when the record lists the
//! profile in `metadata.profiles`), nothing else (except in `unmapped`, an open object), each
//! attribute's JSON type from the dictionary's type chain (`timestamp_t` → `long_t` → integer,
//! `ip_t` → `string_t` with its regex and `max_len`, `port_t` with its range), `is_array`,
//! closed enumerations (dictionary values united with the class's or object's), and required
//! attributes at every level. Reads the files only; must not judge anything beyond the schema.

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The vendored OCSF schema files.
pub struct OcsfSchema {
    dir: PathBuf,
    dictionary: Map<String, Value>,
    types: Map<String, Value>,
    objects: BTreeMap<String, Value>,
}

fn read(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn object_of(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// Overlays `over` onto `base`: keys of `over` win, `enum` maps are united.
fn overlay(base: &mut Map<String, Value>, over: &Map<String, Value>) {
    for (k, v) in over {
        match (k.as_str(), base.get_mut(k), v) {
            ("enum", Some(Value::Object(b)), Value::Object(o)) => {
                for (ek, ev) in o {
                    b.insert(ek.clone(), ev.clone());
                }
            }
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

impl OcsfSchema {
    /// Loads the vendored files.
    pub fn load() -> OcsfSchema {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schemas/ocsf-1.5.0");
        let dict = read(&dir.join("dictionary.json"));
        let dictionary = object_of(&dict["attributes"]);
        let types = object_of(&dict["types"]["attributes"]);
        let mut objects = BTreeMap::new();
        for entry in std::fs::read_dir(dir.join("objects")).expect("objects/") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                let v = read(&path);
                let name = v["name"].as_str().expect("object name").to_string();
                objects.insert(name, v);
            }
        }
        OcsfSchema {
            dir,
            dictionary,
            types,
            objects,
        }
    }

    /// The version the files declare (`version.json`).
    pub fn version(&self) -> String {
        read(&self.dir.join("version.json"))["version"]
            .as_str()
            .expect("version")
            .to_string()
    }

    /// The attributes one schema file defines itself: its `$include`d files' attributes (tagged
    /// with the profile's name), then its own entries over them.
    fn own_attributes(&self, file: &Value) -> Map<String, Value> {
        let mut out = Map::new();
        let attrs = object_of(&file["attributes"]);
        if let Some(includes) = attrs.get("$include") {
            let list: Vec<&str> = match includes {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            for inc in list {
                let inc_file = read(&self.dir.join(inc));
                let profile = (inc_file["meta"] == "profile").then(|| inc_file["name"].clone());
                for (name, entry) in object_of(&inc_file["attributes"]) {
                    let mut e = object_of(&entry);
                    if let Some(p) = &profile {
                        e.insert("profile".into(), p.clone());
                    }
                    out.insert(name, Value::Object(e));
                }
            }
        }
        for (name, entry) in attrs {
            if name == "$include" {
                continue;
            }
            let mut merged = out.get(&name).map(object_of).unwrap_or_default();
            overlay(&mut merged, &object_of(&entry));
            out.insert(name, Value::Object(merged));
        }
        out
    }

    /// Attributes of a chain of files, root first, each later file's entries over the earlier.
    fn chain_attributes(&self, chain: &[Value]) -> Map<String, Value> {
        let mut out: Map<String, Value> = Map::new();
        for file in chain {
            for (name, entry) in self.own_attributes(file) {
                let mut merged = out.get(&name).map(object_of).unwrap_or_default();
                overlay(&mut merged, &object_of(&entry));
                out.insert(name, Value::Object(merged));
            }
        }
        // Each attribute: the dictionary's definition with the class's or object's entry over it.
        out.into_iter()
            .map(|(name, entry)| {
                let mut full = self
                    .dictionary
                    .get(&name)
                    .map(object_of)
                    .unwrap_or_else(|| panic!("attribute {name} is not in the dictionary"));
                overlay(&mut full, &object_of(&entry));
                (name, Value::Object(full))
            })
            .collect()
    }

    fn object_chain(&self, name: &str) -> Vec<Value> {
        let mut chain = Vec::new();
        let mut next = Some(name.to_string());
        while let Some(n) = next {
            let obj = self
                .objects
                .get(&n)
                .unwrap_or_else(|| panic!("object {n} is not in objects/"))
                .clone();
            next = obj["extends"].as_str().map(str::to_string);
            chain.push(obj);
        }
        chain.reverse();
        chain
    }

    fn class_chain(&self) -> Vec<Value> {
        [
            "base_event.json",
            "findings/finding.json",
            "findings/detection_finding.json",
        ]
        .iter()
        .map(|f| read(&self.dir.join("events").join(f)))
        .collect()
    }

    /// `observable.type_id`: the file lists only 0 and 99; the schema's other values are the
    /// `observable` numbers of the dictionary's types and attributes and of the objects, as the
    /// OCSF server assembles them.
    fn add_observable_types(&self, attrs: &mut Map<String, Value>) {
        let mut ids: Vec<String> = Vec::new();
        let numbers = self
            .types
            .values()
            .chain(self.dictionary.values())
            .chain(self.objects.values())
            .filter_map(|v| v.get("observable").and_then(Value::as_i64));
        ids.extend(numbers.map(|n| n.to_string()));
        if let Some(Value::Object(type_id)) = attrs.get_mut("type_id") {
            if let Some(Value::Object(e)) = type_id.get_mut("enum") {
                for id in ids {
                    e.entry(id).or_insert(json!({}));
                }
            }
        }
    }

    /// The JSON Schema of one scalar type (`*_t`), following the dictionary's type chain.
    fn scalar_schema(&self, ty: &str) -> Map<String, Value> {
        let mut s = Map::new();
        let mut t = ty.to_string();
        loop {
            let def = self
                .types
                .get(&t)
                .unwrap_or_else(|| panic!("type {t} is not in the dictionary"));
            if let Some(re) = def.get("regex").and_then(Value::as_str) {
                s.entry("pattern").or_insert(json!(re));
            }
            if let Some(n) = def.get("max_len") {
                s.entry("maxLength").or_insert(n.clone());
            }
            if let Some(Value::Array(r)) = def.get("range") {
                if let [lo, hi] = r.as_slice() {
                    s.entry("minimum").or_insert(lo.clone());
                    s.entry("maximum").or_insert(hi.clone());
                }
            }
            match def.get("type").and_then(Value::as_str) {
                Some(parent) => t = parent.to_string(),
                None => break,
            }
        }
        let json_type = match t.as_str() {
            "boolean_t" => Some("boolean"),
            "integer_t" | "long_t" => Some("integer"),
            "float_t" => Some("number"),
            "string_t" => Some("string"),
            _ => None, // json_t: any JSON value
        };
        if let Some(j) = json_type {
            s.insert("type".into(), json!(j));
        }
        s
    }

    fn attribute_schema(
        &self,
        attr: &Map<String, Value>,
        defs: &mut BTreeMap<String, Value>,
        profiles: &BTreeSet<String>,
    ) -> Value {
        let ty = attr
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("string_t");
        let mut item = if ty.ends_with("_t") {
            let mut s = self.scalar_schema(ty);
            if let Some(Value::Object(e)) = attr.get("enum") {
                let values: Vec<Value> = e
                    .keys()
                    .map(|k| match s.get("type").and_then(Value::as_str) {
                        Some("integer") => k.parse::<i64>().map(Value::from).unwrap_or(json!(k)),
                        _ => json!(k),
                    })
                    .collect();
                s.insert("enum".into(), Value::Array(values));
            }
            Value::Object(s)
        } else if ty == "object" {
            json!({"type": "object"})
        } else {
            self.define_object(ty, defs, profiles);
            json!({ "$ref": format!("#/$defs/{ty}") })
        };
        if attr.get("is_array") == Some(&Value::Bool(true)) {
            item = json!({"type": "array", "items": item});
        }
        item
    }

    fn object_schema(
        &self,
        attrs: &Map<String, Value>,
        defs: &mut BTreeMap<String, Value>,
        profiles: &BTreeSet<String>,
    ) -> Map<String, Value> {
        let mut props = Map::new();
        let mut required = Vec::new();
        for (name, a) in attrs {
            let a = object_of(a);
            if let Some(p) = a.get("profile").and_then(Value::as_str) {
                if !profiles.contains(p) {
                    continue;
                }
            }
            if a.get("requirement").and_then(Value::as_str) == Some("required") {
                required.push(json!(name));
            }
            props.insert(name.clone(), self.attribute_schema(&a, defs, profiles));
        }
        let mut s = Map::new();
        s.insert("type".into(), json!("object"));
        s.insert("properties".into(), Value::Object(props));
        s.insert("required".into(), Value::Array(required));
        s.insert("additionalProperties".into(), json!(false));
        s
    }

    fn define_object(
        &self,
        name: &str,
        defs: &mut BTreeMap<String, Value>,
        profiles: &BTreeSet<String>,
    ) {
        if defs.contains_key(name) {
            return;
        }
        defs.insert(name.to_string(), Value::Null); // placeholder: breaks recursion
        let chain = self.object_chain(name);
        let mut attrs = self.chain_attributes(&chain);
        if name == "observable" {
            self.add_observable_types(&mut attrs);
        }
        let mut schema = self.object_schema(&attrs, defs, profiles);
        // `constraints` (the nearest in the chain): `at_least_one` / `just_one` of the listed
        // attributes.
        if let Some(c) = chain.iter().rev().find_map(|o| o.get("constraints")) {
            let of = |key: &str| -> Option<Vec<Value>> {
                c.get(key)
                    .and_then(Value::as_array)
                    .map(|names| names.iter().map(|n| json!({ "required": [n] })).collect())
            };
            if let Some(any) = of("at_least_one") {
                schema.insert("anyOf".into(), Value::Array(any));
            }
            if let Some(one) = of("just_one") {
                schema.insert("oneOf".into(), Value::Array(one));
            }
        }
        defs.insert(name.to_string(), Value::Object(schema));
    }

    /// The JSON Schema of Detection Finding with these profiles applied.
    pub fn detection_finding_schema(&self, profiles: &BTreeSet<String>) -> Value {
        let mut defs = BTreeMap::new();
        let attrs = self.chain_attributes(&self.class_chain());
        let mut root = self.object_schema(&attrs, &mut defs, profiles);
        // The class's identity: Findings (2) / Detection Finding (2004).
        if let Some(Value::Object(props)) = root.get_mut("properties") {
            props.insert(
                "class_uid".into(),
                json!({"type": "integer", "const": 2004}),
            );
            props.insert(
                "category_uid".into(),
                json!({"type": "integer", "const": 2}),
            );
        }
        root.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        root.insert("$defs".into(), Value::Object(defs.into_iter().collect()));
        Value::Object(root)
    }

    /// A validator of Detection Finding with these profiles applied.
    pub fn validator(&self, profiles: &BTreeSet<String>) -> jsonschema::Validator {
        jsonschema::draft202012::new(&self.detection_finding_schema(profiles))
            .expect("the generated OCSF schema compiles")
    }
}

/// Validates records, compiling one validator per set of declared profiles; returns
/// `(records, failures)`, each failure naming the record and its errors.
pub fn check_all<'a>(
    schema: &OcsfSchema,
    source: &str,
    records: impl IntoIterator<Item = &'a Value>,
) -> (usize, Vec<String>) {
    let mut validators: BTreeMap<BTreeSet<String>, jsonschema::Validator> = BTreeMap::new();
    let (mut n, mut failures) = (0, Vec::new());
    for (i, r) in records.into_iter().enumerate() {
        n += 1;
        let profiles: BTreeSet<String> = r["metadata"]["profiles"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let v = validators
            .entry(profiles.clone())
            .or_insert_with(|| schema.validator(&profiles));
        let mut errs: Vec<String> = v
            .iter_errors(r)
            .map(|e| format!("{}: {e}", e.instance_path))
            .collect();
        let expected_type =
            r["class_uid"].as_i64().unwrap_or(0) * 100 + r["activity_id"].as_i64().unwrap_or(0);
        if r["type_uid"].as_i64() != Some(expected_type) {
            errs.push(format!(
                "/type_uid: not class_uid * 100 + activity_id ({expected_type})"
            ));
        }
        if !errs.is_empty() {
            failures.push(format!("{source} record {}: {}", i + 1, errs.join("; ")));
        }
    }
    (n, failures)
}
