//! Control-plane routes over real HTTPS on loopback against the real engine and SQLite store: roles and
//! tokens (401/403), bad JSON (400 naming the field), body limits (413), rate limits (429), inventory import
//! and device lookup, device states, exceptions and baselines with their audit trail, alerts with evidence,
//! acknowledgement and closure surviving a restart.

mod common;

use common::{control_fixture, problem, TestApi};
use serde_json::{json, Value};

const AIKO: &str = "00008120-001A2C3E0E38801E";

#[tokio::test]
async fn writes_need_a_token_and_the_right_role() {
    let api = TestApi::start().await;
    let body = control_fixture("jamf_mobile_devices_detail.json");
    let r = api
        .client
        .post(api.at("/api/v1/inventory"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
    for token in [&api.viewer, &api.analyst] {
        let r = api
            .client
            .post(api.at("/api/v1/inventory"))
            .bearer_auth(token)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let p = problem(r, 403).await;
        assert!(p["detail"].as_str().unwrap().contains("admin"), "{p}");
    }
    // An analyst may change alerts: the route is reached (404: no such alert), a viewer may not.
    let note = json!({"note": "looked at it"});
    let r = api
        .client
        .post(api.at("/api/v1/alerts/99/ack"))
        .bearer_auth(&api.analyst)
        .json(&note)
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
    let r = api
        .client
        .post(api.at("/api/v1/alerts/99/ack"))
        .bearer_auth(&api.viewer)
        .json(&note)
        .send()
        .await
        .unwrap();
    problem(r, 403).await;
    // Reads are open to viewers.
    let (status, _) = api
        .call(api.client.get(api.at("/api/v1/devices")), &api.viewer)
        .await;
    assert_eq!(status, 200);
    api.stop().await;
}

#[tokio::test]
async fn bad_json_is_a_400_naming_the_field() {
    let api = TestApi::start().await;
    let exc = api.at("/api/v1/exceptions");
    // Wrong type: the JSON path of the field is named.
    let r = api
        .client
        .post(&exc)
        .bearer_auth(&api.admin)
        .json(
            &json!({"id": "x", "kind": "proxy", "ports": ["http"], "reason": "r", "owner": "o",
                      "expires": "2030-01-01T00:00:00Z"}),
        )
        .send()
        .await
        .unwrap();
    let p = problem(r, 400).await;
    assert_eq!(p["field"], "ports[0]", "{p}");
    // Malformed JSON: line and column.
    let r = api
        .client
        .post(&exc)
        .bearer_auth(&api.admin)
        .header("content-type", "application/json")
        .body("{\n  \"id\": \"x\",\n  \"kind\": }")
        .send()
        .await
        .unwrap();
    let p = problem(r, 400).await;
    assert!(p["detail"].as_str().unwrap().contains("line 3"), "{p}");
    // Missing required field, unknown field, bad enum value.
    let r = api
        .client
        .post(&exc)
        .bearer_auth(&api.admin)
        .json(&json!({"id": "x"}))
        .send()
        .await
        .unwrap();
    let p = problem(r, 400).await;
    assert!(p["detail"].as_str().unwrap().contains("kind"), "{p}");
    let r = api
        .client
        .post(&exc)
        .bearer_auth(&api.admin)
        .json(
            &json!({"id": "x", "kind": "tunnel", "ports": [8080], "reason": "r", "owner": "o",
                      "expires": "2030-01-01T00:00:00Z"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 400).await["field"], "kind");
    // Semantics checked by the control plane still name the field.
    let r = api
        .client
        .post(&exc)
        .bearer_auth(&api.admin)
        .json(
            &json!({"id": "x", "kind": "proxy", "reason": "r", "owner": "o",
                      "expires": "2030-01-01T00:00:00Z"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 400).await["field"], "destinations");
    let r = api
        .client
        .post(&exc)
        .bearer_auth(&api.admin)
        .json(
            &json!({"id": "x", "kind": "proxy", "ports": [8080], "reason": "r", "owner": "o",
                      "expires": "next week"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 400).await["field"], "expires");
    // Query parameters too.
    let r = api
        .client
        .get(api.at("/api/v1/alerts?port=99999"))
        .bearer_auth(&api.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 400).await["field"], "port");
    let r = api
        .client
        .get(api.at("/api/v1/alerts?severity=huge"))
        .bearer_auth(&api.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 400).await["field"], "severity");
    api.stop().await;
}

#[tokio::test]
async fn bodies_over_the_route_limit_are_413() {
    let api = TestApi::start_with(|c| {
        c.body_limit_bytes = 4096;
        c.inventory_body_limit_bytes = 64 * 1024;
    })
    .await;
    let big_note = json!({"note": "x".repeat(8192)});
    let r = api
        .client
        .post(api.at("/api/v1/alerts/1/ack"))
        .bearer_auth(&api.admin)
        .json(&big_note)
        .send()
        .await
        .unwrap();
    problem(r, 413).await;
    // The same size is fine on the inventory route (its own limit); the content is then judged (422).
    let r = api
        .client
        .post(api.at("/api/v1/inventory"))
        .bearer_auth(&api.admin)
        .json(&json!({"something": "x".repeat(8192)}))
        .send()
        .await
        .unwrap();
    problem(r, 422).await;
    // Chunked bodies (no Content-Length) are cut at the limit too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..32).map(|_| Ok(vec![b' '; 4096])).collect();
    let stream = futures_stream(chunks);
    let r = api
        .client
        .post(api.at("/api/v1/inventory"))
        .bearer_auth(&api.admin)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    problem(r, 413).await;
    api.stop().await;
}

fn futures_stream(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    struct Chunks(std::vec::IntoIter<Result<Vec<u8>, std::io::Error>>);
    impl futures_core::Stream for Chunks {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Chunks(chunks.into_iter())
}

#[tokio::test]
async fn writes_are_rate_limited_per_token_with_retry_after() {
    let api = TestApi::start_with(|c| {
        c.rate_limit.writes_per_second = 0.2;
        c.rate_limit.write_burst = 2;
    })
    .await;
    let reload = api.at("/api/v1/reload");
    for _ in 0..2 {
        let (status, body) = api.call(api.client.post(&reload), &api.admin).await;
        assert_eq!(status, 200, "{body}");
    }
    let r = api
        .client
        .post(&reload)
        .bearer_auth(&api.admin)
        .send()
        .await
        .unwrap();
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry), "{retry}");
    problem(r, 429).await;
    // Reads are not limited; another token has its own budget.
    let (status, _) = api
        .call(api.client.get(api.at("/api/v1/roles")), &api.admin)
        .await;
    assert_eq!(status, 200);
    let other = api
        .state
        .tokens
        .create(portolan_api::Role::Admin, "second")
        .unwrap();
    let (status, _) = api.call(api.client.post(&reload), &other.secret).await;
    assert_eq!(status, 200);
    api.stop().await;
}

#[tokio::test]
async fn inventory_import_then_device_lookup_round_trips_through_the_store() {
    let api = TestApi::start().await;
    let first = api.import_jamf().await;
    assert_eq!(first["added"], 3, "{first}");
    let (status, list) = api
        .call(api.client.get(api.at("/api/v1/devices")), &api.viewer)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["total"], 3);
    let aiko = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["udid"] == AIKO)
        .unwrap();
    assert_eq!(aiko["serial_number"], "F4KX91QHN7");
    assert_eq!(aiko["supervised"], true);
    assert_eq!(aiko["ip_address"], "10.10.0.21");
    assert!(aiko["apps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["bundle_id"] == "com.apple.mobilemail"));
    // Paging and filters.
    let (_, page) = api
        .call(
            api.client.get(api.at("/api/v1/devices?limit=1&offset=1")),
            &api.viewer,
        )
        .await;
    assert_eq!(page["devices"].as_array().unwrap().len(), 1);
    assert_eq!(page["total"], 3);
    // By UDID or serial; a re-import keeps the replaced record as history.
    let second = api.import_jamf().await;
    assert_eq!(second["replaced"], 3, "{second}");
    let (status, one) = api
        .call(
            api.client.get(api.at("/api/v1/devices/F4KX91QHN7")),
            &api.viewer,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(one["device"]["udid"], AIKO);
    assert_eq!(one["history"].as_array().unwrap().len(), 1);
    let r = api
        .client
        .get(api.at("/api/v1/devices/nope"))
        .bearer_auth(&api.viewer)
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
    // The import is audited under the caller's token; the document is kept beside the store.
    let (_, audit) = api
        .call(
            api.client
                .get(api.at("/api/v1/audit?action=inventory_imported")),
            &api.viewer,
        )
        .await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert!(
        entries[0]["actor"].as_str().unwrap().contains("test-admin"),
        "{audit}"
    );
    let kept = entries[0]["reason"]
        .as_str()
        .unwrap()
        .rsplit_once(" kept as ")
        .map(|(_, p)| p.to_string())
        .expect("the reason names the kept document");
    // Viewers read the audit log: it names the kept file relative to the store, no server path.
    assert!(kept.starts_with("api-uploads/"), "{kept}");
    assert!(api.dir.path().join(&kept).exists(), "{kept}");
    assert_eq!(entries[0]["target"], "request body");
    // Plist and Apple MDM shapes are accepted too; garbage is refused with a reason.
    let r = api
        .client
        .post(api.at("/api/v1/inventory"))
        .bearer_auth(&api.admin)
        .body(control_fixture("apple_mdm_responses.plist"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = api
        .client
        .post(api.at("/api/v1/inventory"))
        .bearer_auth(&api.admin)
        .body(control_fixture("malformed_unknown_shape.json"))
        .send()
        .await
        .unwrap();
    let p = problem(r, 422).await;
    assert!(
        !p["detail"].as_str().unwrap().contains("api-uploads"),
        "{p}"
    );
    let r = api
        .client
        .post(api.at("/api/v1/inventory"))
        .bearer_auth(&api.admin)
        .body("{\"results\": [")
        .send()
        .await
        .unwrap();
    problem(r, 400).await;
    api.stop().await;
}

#[tokio::test]
async fn device_states_accept_one_an_array_or_json_lines_and_name_bad_fields() {
    let api = TestApi::start().await;
    api.import_jamf().await;
    let url = api.at("/api/v1/device-states");
    let one = json!({"timestamp": "2024-05-01T08:00:00Z", "udid": AIKO, "lock_state": "locked"});
    let (status, body) = api.call(api.client.post(&url).json(&one), &api.admin).await;
    assert_eq!((status, body["accepted"].clone()), (200, json!(1)));
    let (status, body) = api
        .call(api.client.post(&url).json(&json!([one, one])), &api.admin)
        .await;
    assert_eq!((status, body["accepted"].clone()), (200, json!(2)));
    let lines = format!(
        "{one}\n{}\n",
        json!({"timestamp": "2024-05-01T08:05:00Z", "serial_number": "F4KX91QHN7", "app_state": "background", "bundle_id": "com.apple.mobilemail"})
    );
    let (status, body) = api
        .call(api.client.post(&url).body(lines), &api.admin)
        .await;
    assert_eq!((status, body["accepted"].clone()), (200, json!(2)));
    let bad = format!(
        "{one}\n{}\n",
        json!({"timestamp": "2024-05-01T08:05:00Z", "udid": AIKO, "lock_state": "sideways"})
    );
    let r = api
        .client
        .post(&url)
        .bearer_auth(&api.admin)
        .body(bad)
        .send()
        .await
        .unwrap();
    let p = problem(r, 400).await;
    assert_eq!(p["field"], "[1].lock_state", "{p}");
    assert!(p["detail"].as_str().unwrap().contains("line 2"), "{p}");
    // The device's detail lists the accepted reports, by UDID and by serial number, oldest first;
    // the refused document added none.
    let (status, detail) = api
        .call(
            api.client.get(api.at("/api/v1/devices/F4KX91QHN7")),
            &api.viewer,
        )
        .await;
    assert_eq!(status, 200);
    let states = detail["states"].as_array().expect("states");
    assert_eq!(states.len(), 5, "{detail}");
    assert_eq!(states[0]["time"], "2024-05-01T08:00:00.000000Z");
    assert_eq!(states[0]["lock_state"], "locked");
    let last = &states[4];
    assert_eq!(
        (&last["app_state"], &last["bundle_id"], &last["time"]),
        (
            &json!("background"),
            &json!("com.apple.mobilemail"),
            &json!("2024-05-01T08:05:00.000000Z")
        ),
        "{detail}"
    );
    assert!(last.get("lock_state").is_none(), "{last}");
    api.stop().await;
}

#[tokio::test]
async fn exceptions_and_baselines_change_with_reasons_in_the_audit_log() {
    let api = TestApi::start().await;
    let exc = json!({"id": "lab-proxy", "kind": "proxy", "destinations": ["10.20.0.5/32"], "ports": [8080],
                     "reason": "lab forward proxy", "owner": "netops@example.com",
                     "expires": "2030-01-01T00:00:00Z"});
    let (status, body) = api
        .call(
            api.client.post(api.at("/api/v1/exceptions")).json(&exc),
            &api.admin,
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["origin"], "api");
    let (status, _) = api
        .call(
            api.client.post(api.at("/api/v1/exceptions")).json(&exc),
            &api.admin,
        )
        .await;
    assert_eq!(status, 409);
    let (_, list) = api
        .call(api.client.get(api.at("/api/v1/exceptions")), &api.viewer)
        .await;
    assert!(list["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["id"] == "lab-proxy"));
    // Revocation needs a reason.
    let r = api
        .client
        .delete(api.at("/api/v1/exceptions/lab-proxy"))
        .bearer_auth(&api.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 400).await["field"], "reason");
    let (status, _) = api
        .call(
            api.client
                .delete(api.at("/api/v1/exceptions/lab-proxy?reason=lab%20closed")),
            &api.admin,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = api
        .call(
            api.client
                .delete(api.at("/api/v1/exceptions/lab-proxy?reason=again")),
            &api.admin,
        )
        .await;
    assert_eq!(status, 404);
    // The id of a revoked exception is not reused (the store keeps the record): a conflict, not a failure.
    let (status, body) = api
        .call(
            api.client.post(api.at("/api/v1/exceptions")).json(&exc),
            &api.admin,
        )
        .await;
    assert_eq!(status, 409, "{body}");

    // A baseline change shows in the role and the audit log, and changes the next verdict.
    api.import_jamf().await;
    assert_eq!(api.mail_session(8443, "2024-05-01T09:00:00.000000+0000"), 1);
    let change = json!({"reason": "mail relay moved to 8443", "pairings": [{"app_proto": "tls", "port": 8443}]});
    let r = api
        .client
        .post(api.at("/api/v1/roles/mail/baseline"))
        .bearer_auth(&api.admin)
        .json(&json!({"pairings": [{"app_proto": "tls", "port": 8443}], "reason": " "}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 400).await["field"], "reason");
    let (status, body) = api
        .call(
            api.client
                .post(api.at("/api/v1/roles/mail/baseline"))
                .json(&change),
            &api.admin,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, role) = api
        .call(api.client.get(api.at("/api/v1/roles/mail")), &api.viewer)
        .await;
    assert!(
        role["allow"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["app_proto"] == "tls"
                && r["ports"].as_array().unwrap().contains(&json!(8443))),
        "{role}"
    );
    assert_eq!(
        api.mail_session(8443, "2024-05-01T09:15:00.000000+0000"),
        0,
        "approved now"
    );
    let (status, _) = api
        .call(
            api.client
                .post(api.at("/api/v1/roles/nope/baseline"))
                .json(&change),
            &api.admin,
        )
        .await;
    assert_eq!(status, 404);

    let (_, audit) = api
        .call(api.client.get(api.at("/api/v1/audit")), &api.viewer)
        .await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in ["exception_added", "exception_revoked", "baseline_approved"] {
        assert!(actions.contains(&a), "{actions:?}");
    }
    let approved = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "baseline_approved")
        .unwrap();
    assert_eq!(approved["reason"], "mail relay moved to 8443");
    assert!(
        approved["actor"].as_str().unwrap().starts_with("token:"),
        "{approved}"
    );
    // The approval survives a reload (it is in the store, not only in memory).
    let (status, summary) = api
        .call(api.client.post(api.at("/api/v1/reload")), &api.admin)
        .await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(api.mail_session(8443, "2024-05-01T09:30:00.000000+0000"), 0);
    // The reload itself is audited under the caller's token.
    let (_, audit) = api
        .call(
            api.client
                .get(api.at("/api/v1/audit?action=roles_replaced")),
            &api.viewer,
        )
        .await;
    let reloads = audit["entries"].as_array().unwrap();
    assert_eq!(reloads.len(), 1, "{audit}");
    assert!(reloads[0]["actor"].as_str().unwrap().starts_with("token:"));
    api.stop().await;
}

#[tokio::test]
async fn alerts_are_listed_with_evidence_acknowledged_and_closed_across_a_restart() {
    let api = TestApi::start().await;
    api.import_jamf().await;
    assert_eq!(api.mail_session(8443, "2024-05-01T09:00:00.000000+0000"), 1);
    let (status, list) = api
        .call(api.client.get(api.at("/api/v1/alerts")), &api.viewer)
        .await;
    assert_eq!(status, 200);
    let alerts = list["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{list}");
    let a = &alerts[0];
    assert_eq!(a["device_udid"], AIKO);
    assert_eq!(a["app_proto"], "tls");
    assert_eq!(a["dest_port"], 8443);
    assert_eq!(a["status"], "open");
    assert_eq!(a["evidence"]["app"]["bundle_id"], "com.apple.mobilemail");
    assert!(!a["reasons"].as_array().unwrap().is_empty());
    let id = a["id"].as_i64().unwrap();

    // Filters.
    for (q, n) in [
        (format!("device={AIKO}"), 1),
        ("device=F4KX91QHN7".to_string(), 1),
        ("device=other".to_string(), 0),
        ("port=8443&app_proto=tls".to_string(), 1),
        ("port=443".to_string(), 0),
        ("role=mail".to_string(), 1),
        (
            "severity=critical".to_string(),
            usize::from(a["severity"] == "critical"),
        ),
        ("severity=informational".to_string(), 1),
        ("since=2024-05-01T10:00:00Z".to_string(), 0),
        ("until=2024-05-01T10:00:00Z".to_string(), 1),
        ("status=acknowledged".to_string(), 0),
    ] {
        let (status, body) = api
            .call(
                api.client.get(api.at(&format!("/api/v1/alerts?{q}"))),
                &api.viewer,
            )
            .await;
        assert_eq!(status, 200, "{q}: {body}");
        assert_eq!(body["alerts"].as_array().unwrap().len(), n, "{q}");
    }

    // Acknowledge (needs a note), then close.
    let ack = api.at(&format!("/api/v1/alerts/{id}/ack"));
    let r = api
        .client
        .post(&ack)
        .bearer_auth(&api.analyst)
        .json(&json!({"note": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 400).await["field"], "note");
    let (status, body) = api
        .call(
            api.client
                .post(&ack)
                .json(&json!({"note": "checking with the mail team"})),
            &api.analyst,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "acknowledged");
    assert!(body["acknowledged"]["by"]
        .as_str()
        .unwrap()
        .contains("test-analyst"));
    let (status, _) = api
        .call(
            api.client.post(&ack).json(&json!({"note": "again"})),
            &api.analyst,
        )
        .await;
    assert_eq!(status, 409);
    let close = api.at(&format!("/api/v1/alerts/{id}/close"));
    let (status, body) = api
        .call(
            api.client
                .post(&close)
                .json(&json!({"note": "relay is sanctioned"})),
            &api.analyst,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "closed");
    let (status, _) = api
        .call(
            api.client.post(&close).json(&json!({"note": "again"})),
            &api.analyst,
        )
        .await;
    assert_eq!(status, 409);
    let (_, audit) = api
        .call(
            api.client
                .get(api.at("/api/v1/audit?action=alert_acknowledged")),
            &api.viewer,
        )
        .await;
    let notes: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(notes, ["checking with the mail team"]);
    let (_, audit) = api
        .call(
            api.client.get(api.at("/api/v1/audit?action=alert_closed")),
            &api.viewer,
        )
        .await;
    let closed = audit["entries"].as_array().unwrap();
    assert_eq!(closed.len(), 1, "{audit}");
    assert_eq!(closed[0]["reason"], "relay is sanctioned");
    assert_eq!(closed[0]["target"], id.to_string());

    // Restart over the same store: state persists.
    let dir = api.stop().await;
    let api = TestApi::start_in(dir, |_| {}).await;
    let (status, body) = api
        .call(
            api.client.get(api.at(&format!("/api/v1/alerts/{id}"))),
            &api.viewer,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "closed");
    assert_eq!(body["acknowledged"]["note"], "checking with the mail team");
    assert_eq!(body["closed"]["note"], "relay is sanctioned");
    // The alert's finding, as stored.
    let (status, finding) = api
        .call(
            api.client
                .get(api.at(&format!("/api/v1/findings/{}", body["finding_id"]))),
            &api.viewer,
        )
        .await;
    assert_eq!(status, 200, "{finding}");
    assert_eq!(finding["id"], body["finding_id"]);
    assert_eq!(finding["sessions"], 1, "{finding}");
    assert_eq!(finding["severity"], body["severity"], "{finding}");
    assert!(finding["longest_session_s"].as_f64().is_some(), "{finding}");
    let r = api
        .client
        .get(api.at("/api/v1/findings/123456"))
        .bearer_auth(&api.viewer)
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
    let r = api
        .client
        .get(api.at("/api/v1/alerts/123456"))
        .bearer_auth(&api.viewer)
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
    let r = api
        .client
        .get(api.at("/api/v1/alerts/abc"))
        .bearer_auth(&api.viewer)
        .send()
        .await
        .unwrap();
    problem(r, 400).await;
    api.stop().await;
}

#[tokio::test]
async fn alert_and_audit_paging_follow_the_cursor() {
    let api = TestApi::start().await;
    api.import_jamf().await;
    // Sessions to distinct ports make distinct findings and alerts.
    let mut raised = 0;
    for (i, port) in [8443u16, 8444, 8445].iter().enumerate() {
        let record = json!({
            "event_type": "flow", "src_ip": "10.10.0.21", "src_port": 50000 + i, "dest_ip": "203.0.113.50",
            "dest_port": port, "proto": "TCP", "app_proto": "tls", "port_mismatch": true,
            "tls": {"sni": "imap.mail.example.com"},
            "flow": {"start": "2024-05-01T09:00:00.000000+0000", "end": "2024-05-01T09:00:01.000000+0000"}
        });
        raised += api
            .ingest
            .lock()
            .unwrap()
            .ingest_eve(&record)
            .unwrap()
            .len();
    }
    assert_eq!(raised, 3);
    let mut seen = Vec::new();
    let mut url = api.at("/api/v1/alerts?limit=2");
    loop {
        let (status, page) = api.call(api.client.get(&url), &api.viewer).await;
        assert_eq!(status, 200);
        seen.extend(
            page["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["dest_port"].as_u64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => url = api.at(&format!("/api/v1/alerts?limit=2&cursor={c}")),
            None => break,
        }
    }
    assert_eq!(seen, [8443, 8444, 8445]);
    let r = api
        .client
        .get(api.at("/api/v1/alerts?cursor=zz"))
        .bearer_auth(&api.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 400).await["field"], "cursor");
    let r = api
        .client
        .get(api.at("/api/v1/alerts?limit=0"))
        .bearer_auth(&api.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 400).await["field"], "limit");
    api.stop().await;
}

#[tokio::test]
async fn roles_are_defined_and_deleted_with_reasons_and_survive_a_reload() {
    let api = TestApi::start().await;
    api.import_jamf().await;
    let (_, mail) = api
        .call(api.client.get(api.at("/api/v1/roles/mail")), &api.viewer)
        .await;
    // Mail as it stands, plus tls/8443: the next mail session on 8443 is approved.
    let mut allow: Vec<Value> = mail["allow"].as_array().unwrap().clone();
    allow.push(json!({"app_proto": "tls", "transport": "TCP", "ports": [8443]}));
    let definition = json!({
        "reason": "mail relay moved to 8443",
        "description": mail["description"],
        "bundle_ids": mail["bundle_ids"],
        "domains": mail["domains"],
        "allow": allow,
    });
    let put = api.client.put(api.at("/api/v1/roles/mail"));
    let (status, _) = api.call(put.json(&definition), &api.viewer).await;
    assert_eq!(status, 403);
    let (status, _) = api
        .call(
            api.client
                .put(api.at("/api/v1/roles/mail"))
                .json(&definition),
            &api.analyst,
        )
        .await;
    assert_eq!(status, 403);
    let mut bad = definition.clone();
    bad["domains"] = json!(["mail example"]);
    let (status, body) = api
        .call(
            api.client.put(api.at("/api/v1/roles/mail")).json(&bad),
            &api.admin,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "domains[0]", "{body}");
    let mut no_reason = definition.clone();
    no_reason["reason"] = json!(" ");
    let (status, body) = api
        .call(
            api.client
                .put(api.at("/api/v1/roles/mail"))
                .json(&no_reason),
            &api.admin,
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("reason")));
    let (status, body) = api
        .call(
            api.client
                .put(api.at("/api/v1/roles/bad%20name"))
                .json(&definition),
            &api.admin,
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("name")));
    let (status, _) = api
        .call(
            api.client
                .put(api.at("/api/v1/roles/device-default"))
                .json(&definition),
            &api.admin,
        )
        .await;
    assert_eq!(status, 409);

    assert_eq!(
        api.mail_session(8443, "2024-05-01T09:00:00.000000+0000"),
        1,
        "before: tls/8443 breaks the mail baseline"
    );
    let (status, body) = api
        .call(
            api.client
                .put(api.at("/api/v1/roles/mail"))
                .json(&definition),
            &api.admin,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "mail");
    assert!(body["allow"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["ports"] == json!([8443])));
    let before = api.state.control.core().lock().unwrap().stats().violations;
    api.mail_session(8443, "2024-05-01T09:15:00.000000+0000");
    assert_eq!(
        api.state.control.core().lock().unwrap().stats().violations,
        before,
        "approved by the redefined role"
    );

    // A new role, then deleted.
    let (status, body) = api
        .call(
            api.client.put(api.at("/api/v1/roles/lab")).json(&json!({
                "reason": "lab devices",
                "bundle_ids": ["com.example.lab*"],
                "domains": ["*.Lab.Example.com"],
                "allow": [{"app_proto": "http", "ports": [8080]}],
                "unlisted_protocols": "deny"
            })),
            &api.admin,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["domains"], json!(["lab.example.com"]));
    assert_eq!(body["unlisted_protocols"], "deny");
    let delete = |name: &str, reason: &str| {
        api.client.delete(api.at(&format!(
            "/api/v1/roles/{name}?reason={}",
            reason.replace(' ', "%20")
        )))
    };
    let (status, _) = api.call(delete("lab", "lab closed"), &api.admin).await;
    assert_eq!(status, 204);
    let (status, _) = api.call(delete("lab", "again"), &api.admin).await;
    assert_eq!(status, 404);
    let (status, body) = api
        .call(api.client.delete(api.at("/api/v1/roles/mail")), &api.admin)
        .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("reason")));

    // Audited, and still in force after a reload of the roles.
    let (_, audit) = api
        .call(api.client.get(api.at("/api/v1/audit")), &api.viewer)
        .await;
    let entries = audit["entries"].as_array().unwrap();
    let defined: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "role_defined")
        .collect();
    assert_eq!(defined.len(), 2, "{audit}");
    assert_eq!(defined[0]["target"], "mail");
    assert_eq!(defined[0]["reason"], "mail relay moved to 8443");
    assert!(defined[0]["actor"].as_str().unwrap().contains("test-admin"));
    assert!(entries
        .iter()
        .any(|e| e["action"] == "role_deleted" && e["reason"] == "lab closed"));
    let (status, _) = api
        .call(api.client.post(api.at("/api/v1/reload")), &api.admin)
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .call(api.client.get(api.at("/api/v1/roles/lab")), &api.viewer)
        .await;
    assert_eq!(status, 404, "the deletion holds");
    let (_, mail) = api
        .call(api.client.get(api.at("/api/v1/roles/mail")), &api.viewer)
        .await;
    assert!(mail["allow"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["ports"] == json!([8443])));
    api.stop().await;
}

#[tokio::test]
async fn http1_answers_given_before_the_body_is_read_close_the_connection() {
    let api = TestApi::start().await;
    let pem = std::fs::read(api.dir.path().join("tls/cert.pem")).unwrap();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .http1_only()
        .build()
        .unwrap();
    let note = json!({"note": "x".repeat(2000)});
    // No token: 401 before the body is read, so the connection is not reusable and says so.
    let r = client
        .post(api.at("/api/v1/alerts/1/ack"))
        .json(&note)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.headers()["connection"], "close");
    // The body was read (and judged): the connection stays open.
    let r = client
        .post(api.at("/api/v1/alerts/1/ack"))
        .bearer_auth(&api.analyst)
        .json(&note)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().get("connection").is_none(), "{:?}", r.headers());
    // Reads without a body keep it open too.
    let r = client
        .get(api.at("/api/v1/roles"))
        .bearer_auth(&api.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("connection").is_none());
    api.stop().await;
}

/// A 10,000-deep `<array>` plist (and a JSON twin, and a 100,000-deep plist with a trailing
/// value) is refused with a 400 naming the depth limit, a binary plist that repeats references
/// with a 400 naming the value limit, and the server answers the next request: parsing an upload
/// cannot take the process down.
#[tokio::test]
async fn deeply_nested_inventory_is_refused_naming_the_limit_and_the_server_keeps_answering() {
    let api = TestApi::start().await;
    let depth = 10_000;
    let plist = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">{}{}</plist>\n",
        "<array>".repeat(depth),
        "</array>".repeat(depth)
    );
    let json = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    // 100,000 closed levels and then a second value (1.5 MB): the plist crate's own builder held
    // the whole value when it met the trailing element and dropping it overflowed the stack.
    let trailing = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">{}{}<string>x</string></plist>\n",
        "<array>".repeat(100_000),
        "</array>".repeat(100_000)
    );
    for (body, named) in [
        (plist.into_bytes(), "limit of 64 levels"),
        (json.into_bytes(), "limit of 64 levels"),
        (trailing.into_bytes(), "limit of 64 levels"),
        (repeated_references_bplist(20), "values per byte"),
    ] {
        let r = api
            .client
            .post(api.at("/api/v1/inventory"))
            .bearer_auth(&api.admin)
            .body(body)
            .send()
            .await
            .unwrap();
        let p = problem(r, 400).await;
        let detail = p["detail"].as_str().unwrap();
        assert!(detail.contains(named), "{p}");
    }
    // Every other JSON body stops at serde_json's limit, named too.
    let r = api
        .client
        .post(api.at("/api/v1/device-states"))
        .bearer_auth(&api.admin)
        .header("content-type", "application/json")
        .body(format!("{}{}", "[".repeat(depth), "]".repeat(depth)))
        .send()
        .await
        .unwrap();
    let p = problem(r, 400).await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("limit of 128 levels"),
        "{p}"
    );
    let r = api.client.get(api.at("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (status, _) = api
        .call(api.client.get(api.at("/api/v1/devices")), &api.viewer)
        .await;
    assert_eq!(status, 200);
}

/// A binary plist of `levels` arrays, each holding the one before it 16 times: a few hundred
/// bytes that describe 16^levels values (6 levels took 11 s to build before the value count was
/// bounded).
fn repeated_references_bplist(levels: u8) -> Vec<u8> {
    let mut doc = b"bplist00".to_vec();
    let mut offsets = vec![doc.len()];
    doc.extend([0x10, 0x00]); // object 0: the integer 0
    for level in 1..=levels {
        offsets.push(doc.len());
        doc.extend([0xAF, 0x10, 16]); // an array of 16 references
        doc.extend(std::iter::repeat_n(level - 1, 16));
    }
    let table = doc.len();
    doc.extend(
        offsets
            .iter()
            .flat_map(|o| u16::try_from(*o).unwrap().to_be_bytes()),
    );
    doc.extend([0u8; 6]);
    doc.extend([2, 1]); // offset size, reference size
    doc.extend(u64::from(levels + 1).to_be_bytes());
    doc.extend(u64::from(levels).to_be_bytes());
    doc.extend((table as u64).to_be_bytes());
    doc
}

/// Viewers and analysts read the audit log without the server's paths; admins see them.
#[tokio::test]
async fn the_audit_log_shows_server_paths_to_admins_only() {
    let api = TestApi::start().await;
    let file = api.dir.path().join("inputs").join("jamf-start.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, control_fixture("jamf_mobile_devices_detail.json")).unwrap();
    api.state
        .control
        .operator()
        .import_inventory(std::slice::from_ref(&file), "start-up")
        .expect("import");
    let full = file.display().to_string();
    for (token, expect_full) in [
        (&api.viewer, false),
        (&api.analyst, false),
        (&api.admin, true),
    ] {
        let (status, audit) = api
            .call(
                api.client
                    .get(api.at("/api/v1/audit?action=inventory_imported")),
                token,
            )
            .await;
        assert_eq!(status, 200);
        let text = audit.to_string();
        assert_eq!(text.contains(&full), expect_full, "{text}");
        assert!(text.contains("jamf-start.json"), "{text}");
    }
    api.stop().await;
}
