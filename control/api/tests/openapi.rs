//! The OpenAPI document and the router stay in step: every route of the table is documented with its
//! security, body and error responses, every documented operation is served by the router (probed over real
//! HTTPS), and the document served at /api/v1/openapi.json is the generated one.

mod common;

use std::collections::BTreeSet;

use common::TestApi;
use portolan_api::routes::{route_specs, BodyKind};
use portolan_api::Access;
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

fn doc() -> Value {
    serde_json::from_str(&portolan_api::openapi::document_json().unwrap()).unwrap()
}

#[test]
fn every_route_is_documented_and_every_documented_operation_is_routed() {
    let doc = doc();
    let table: BTreeSet<(String, String)> = route_specs()
        .iter()
        .map(|s| (s.method.to_string(), s.path.to_string()))
        .collect();
    assert_eq!(
        table.len(),
        route_specs().len(),
        "duplicate route in the table"
    );
    let docs = documented(&doc);
    let undocumented: Vec<_> = table.difference(&docs).collect();
    let unrouted: Vec<_> = docs.difference(&table).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the OpenAPI document: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented operations the router does not serve: {unrouted:?}"
    );
}

#[test]
fn security_bodies_and_errors_are_described_per_route() {
    let doc = doc();
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(
        doc["security"][0].get("bearer").is_some(),
        "bearer is the default requirement"
    );
    for spec in route_specs() {
        let op = &doc["paths"][spec.path][spec.method.as_str().to_lowercase()];
        let responses = op["responses"].as_object().unwrap();
        let name = format!("{} {}", spec.method, spec.path);
        if spec.access == Access::Public {
            assert_eq!(
                op["security"],
                serde_json::json!([{}]),
                "{name} must need no token"
            );
            assert!(!responses.contains_key("401"), "{name}");
        } else {
            assert!(
                op.get("security").is_none(),
                "{name} inherits the bearer requirement"
            );
            for s in ["401", "403"] {
                assert!(responses.contains_key(s), "{name} lacks {s}");
                assert!(
                    responses[s]["content"]["application/problem+json"]["schema"]["$ref"]
                        .as_str()
                        .is_some_and(|r| r.ends_with("/Problem")),
                    "{name} {s} is not a problem document"
                );
            }
        }
        assert_eq!(
            responses.contains_key("429"),
            spec.access.is_write(),
            "{name} 429"
        );
        if spec.body != BodyKind::None {
            assert!(
                op["requestBody"]["content"]
                    .as_object()
                    .is_some_and(|c| !c.is_empty()),
                "{name} body"
            );
            for s in ["400", "413"] {
                assert!(responses.contains_key(s), "{name} lacks {s}");
            }
        } else {
            assert!(
                op.get("requestBody").is_none(),
                "{name} documents a body it does not read"
            );
        }
        if spec.path.contains('{') {
            assert!(responses.contains_key("404"), "{name} lacks 404");
            let params = op["parameters"].as_array().expect("path parameters");
            for seg in spec
                .path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            {
                assert!(
                    params
                        .iter()
                        .any(|p| p["name"] == seg && p["in"] == "path" && p["required"] == true),
                    "{name} does not document path parameter {seg}"
                );
            }
        }
        assert!(
            responses.keys().any(|k| k.starts_with('2')),
            "{name} lacks a success response"
        );
    }
}

fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| if seg.starts_with('{') { "1" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_documented_operation_is_served_and_the_served_document_is_the_generated_one() {
    let api = TestApi::start_with(|c| c.rate_limit.write_burst = 1000).await;
    let doc = doc();
    for (method, path) in documented(&doc) {
        let url = api.at(&concrete(&path));
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = api
            .client
            .request(m, &url)
            .bearer_auth(&api.admin)
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_ne!(status, 405, "{method} {path} not routed");
        assert!(
            !(status == 404
                && body["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("no such route"))),
            "{method} {path} not routed"
        );
        assert!(status < 500, "{method} {path} answered {status}: {body}");
    }
    let (status, served) = api
        .call(api.client.get(api.at("/api/v1/openapi.json")), &api.viewer)
        .await;
    assert_eq!(status, 200);
    assert_eq!(served, doc);
    assert!(served["openapi"].as_str().unwrap().starts_with("3."));
    api.stop().await;
}
