//! The console's API over real HTTPS on loopback against the real engine and SQLite store: escalate,
//! comment and undo (each audited, each refused to a viewer, a second undo a 409), alert groups, the
//! retro-impact of an exception before it is saved, and console sessions (cookie flags, CSRF and origin
//! refusals, sign-out, revocation, security headers), and the rejection of a learning proposal (stored,
//! audited, shown, admin only).

mod common;

use common::TestApi;
use serde_json::{json, Value};

async fn post(api: &TestApi, path: &str, token: &str, body: Value) -> (u16, Value) {
    api.call(api.client.post(api.at(path)).json(&body), token)
        .await
}

#[tokio::test]
async fn escalate_comment_and_undo_are_audited_and_role_checked() {
    let api = TestApi::start().await;
    api.import_jamf().await;
    assert_eq!(api.mail_session(8443, "2024-05-01T09:00:00.000000+0000"), 1);
    let (_, list) = api
        .call(api.client.get(api.at("/api/v1/alerts")), &api.viewer)
        .await;
    let id = list["alerts"][0]["id"].as_i64().unwrap();
    let at = |what: &str| format!("/api/v1/alerts/{id}/{what}");

    // A viewer may not triage.
    let (s, _) = post(&api, &at("escalate"), &api.viewer, json!({"note": "x"})).await;
    assert_eq!(s, 403);
    let (s, a) = post(
        &api,
        &at("escalate"),
        &api.analyst,
        json!({"note": "to mobile team"}),
    )
    .await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["escalated"]["note"], "to mobile team");
    let (s, p) = post(
        &api,
        &at("escalate"),
        &api.analyst,
        json!({"note": "again"}),
    )
    .await;
    assert_eq!(s, 409, "{p}");
    let (s, a) = post(
        &api,
        &at("comments"),
        &api.analyst,
        json!({"text": "<b>not markup</b>"}),
    )
    .await;
    assert_eq!(s, 201, "{a}");
    let comment = a["comments"][0]["id"].as_i64().unwrap();
    assert_eq!(a["comments"][0]["text"], "<b>not markup</b>");
    let (s, a) = post(&api, &at("ack"), &api.analyst, json!({"note": "seen"})).await;
    assert_eq!(s, 200, "{a}");
    let (s, a) = post(&api, &at("close"), &api.analyst, json!({"note": "done"})).await;
    assert_eq!(s, 200, "{a}");

    // Undo: the acknowledgement of a closed alert needs a reopen first.
    let undo = |action: &str, comment: Option<i64>| {
        let mut b = json!({"action": action, "note": "undone in a test"});
        if let Some(c) = comment {
            b["comment_id"] = json!(c);
        }
        b
    };
    let (s, p) = post(&api, &at("undo"), &api.analyst, undo("acknowledge", None)).await;
    assert_eq!(s, 409, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("reopen"), "{p}");
    let (s, a) = post(&api, &at("undo"), &api.analyst, undo("close", None)).await;
    assert_eq!(
        (s, a["status"].as_str()),
        (200, Some("acknowledged")),
        "{a}"
    );
    let (s, a) = post(&api, &at("undo"), &api.analyst, undo("acknowledge", None)).await;
    assert_eq!((s, a["status"].as_str()), (200, Some("open")), "{a}");
    let (s, a) = post(&api, &at("undo"), &api.analyst, undo("escalate", None)).await;
    assert_eq!(s, 200, "{a}");
    assert!(a["escalated"].is_null(), "{a}");
    let (s, a) = post(
        &api,
        &at("undo"),
        &api.analyst,
        undo("comment", Some(comment)),
    )
    .await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["comments"], json!([]));
    for (action, c) in [
        ("escalate", None),
        ("close", None),
        ("comment", Some(comment)),
    ] {
        let (s, p) = post(&api, &at("undo"), &api.analyst, undo(action, c)).await;
        assert_eq!(s, 409, "{action}: {p}");
    }
    let (s, p) = post(&api, &at("undo"), &api.analyst, undo("comment", None)).await;
    assert_eq!(problem_field(s, &p), (400, Some("comment_id")));
    let (s, _) = post(
        &api,
        "/api/v1/alerts/999/escalate",
        &api.analyst,
        json!({"note": "x"}),
    )
    .await;
    assert_eq!(s, 404);

    let (_, audit) = api
        .call(
            api.client
                .get(api.at(&format!("/api/v1/audit?target={id}"))),
            &api.viewer,
        )
        .await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "alert_escalated",
            "alert_commented",
            "alert_acknowledged",
            "alert_closed",
            "alert_reopened",
            "alert_unacknowledged",
            "alert_deescalated",
            "alert_comment_retracted"
        ]
    );
    assert!(audit["entries"][0]["actor"]
        .as_str()
        .unwrap()
        .ends_with("(test-analyst)"));

    // Triage survives a restart.
    post(&api, &at("escalate"), &api.analyst, json!({"note": "kept"})).await;
    let dir = api.stop().await;
    let api = TestApi::start_in(dir, |_| {}).await;
    let (_, a) = api
        .call(
            api.client.get(api.at(&format!("/api/v1/alerts/{id}"))),
            &api.admin,
        )
        .await;
    assert_eq!(a["escalated"]["note"], "kept", "{a}");
}

/// The proposals over May 2024 (the sessions below), as the console asks for them.
async fn proposals(api: &TestApi) -> Value {
    let (s, p) = api
        .call(
            api.client.get(api.at(
                "/api/v1/learning/proposals?since=2024-05-01T00:00:00Z&until=2024-06-01T00:00:00Z",
            )),
            &api.viewer,
        )
        .await;
    assert_eq!(s, 200, "{p}");
    p
}

/// The pairing on `port` in the proposal that has one, with its role.
fn pairing_on(list: &Value, port: u64) -> (String, Value) {
    for p in list["proposals"].as_array().unwrap() {
        for x in p["pairings"].as_array().unwrap() {
            if x["port"].as_u64() == Some(port) {
                return (p["id"].as_str().unwrap().to_string(), x.clone());
            }
        }
    }
    panic!("no pairing on {port}: {list}");
}

#[tokio::test]
async fn rejecting_a_proposal_is_stored_audited_shown_and_admin_only() {
    let api = TestApi::start().await;
    api.import_jamf().await;
    for start in [
        "2024-05-01T09:00:00.000000+0000",
        "2024-05-02T09:00:00.000000+0000",
        "2024-05-03T09:00:00.000000+0000",
    ] {
        api.mail_session(8443, start);
    }
    let (role, pairing) = pairing_on(&proposals(&api).await, 8443);
    assert_eq!(pairing["proposed"], true, "{pairing}");
    assert!(pairing["rejected"].is_null(), "{pairing}");
    let path = format!("/api/v1/learning/proposals/{role}/reject");
    let window = json!({"since": "2024-05-01T00:00:00Z", "until": "2024-06-01T00:00:00Z"});
    let body = |reason: &str| {
        let mut b = window.clone();
        b["reason"] = json!(reason);
        b
    };

    // Only an admin may reject, with a reason, and only pairings of the proposal.
    for token in [&api.viewer, &api.analyst] {
        let (s, _) = post(&api, &path, token, body("not ours")).await;
        assert_eq!(s, 403);
    }
    let (s, p) = post(&api, &path, &api.admin, body(" ")).await;
    assert_eq!(problem_field(s, &p), (400, Some("reason")), "{p}");
    let mut other = body("not ours");
    other["pairings"] = json!([{"app_proto": "tls", "transport": "TCP", "port": 9999}]);
    let (s, p) = post(&api, &path, &api.admin, other).await;
    assert_eq!(problem_field(s, &p), (400, Some("pairings[0]")), "{p}");
    assert_eq!(pairing_on(&proposals(&api).await, 8443).1["proposed"], true);

    let (s, r) = post(
        &api,
        &path,
        &api.admin,
        body("a test relay, not a baseline"),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["role"], role.as_str());
    assert_eq!(r["rejected"][0]["ports"], json!([8443]), "{r}");

    // Shown: no longer proposed, with who, when and why.
    let (_, shown) = pairing_on(&proposals(&api).await, 8443);
    assert_eq!(shown["proposed"], false, "{shown}");
    assert_eq!(shown["already_approved"], false, "{shown}");
    assert_eq!(shown["rejected"]["note"], "a test relay, not a baseline");
    assert!(
        shown["rejected"]["by"]
            .as_str()
            .unwrap()
            .starts_with("token:"),
        "{shown}"
    );
    // Nothing left to reject; audited once under the admin's token.
    let (s, _) = post(&api, &path, &api.admin, body("again")).await;
    assert_eq!(s, 409);
    let (_, audit) = api
        .call(
            api.client
                .get(api.at("/api/v1/audit?action=proposal_rejected")),
            &api.viewer,
        )
        .await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["target"], role.as_str());
    assert_eq!(entries[0]["reason"], "a test relay, not a baseline");

    // Stored: it survives a reload, and the pairing still alerts (a rejection changes no verdict).
    let (s, _) = api
        .call(api.client.post(api.at("/api/v1/reload")), &api.admin)
        .await;
    assert_eq!(s, 200);
    let (_, kept) = pairing_on(&proposals(&api).await, 8443);
    assert_eq!(kept["rejected"]["note"], "a test relay, not a baseline");
    let (_, r) = api
        .call(
            api.client.get(api.at(&format!("/api/v1/roles/{role}"))),
            &api.viewer,
        )
        .await;
    assert!(!r.to_string().contains("8443"), "{r}");

    // An explicit approval later still works and takes precedence.
    let mut approve = body("reviewed again: approved");
    approve["pairings"] = json!([{"app_proto": "tls", "transport": "TCP", "port": 8443}]);
    let (s, a) = post(
        &api,
        &format!("/api/v1/learning/proposals/{role}/approve"),
        &api.admin,
        approve,
    )
    .await;
    assert_eq!(s, 200, "{a}");
    let (_, now) = pairing_on(&proposals(&api).await, 8443);
    assert_eq!(now["already_approved"], true, "{now}");
    assert!(now["rejected"].is_null(), "{now}");
    api.stop().await;
}

fn problem_field(status: u16, p: &Value) -> (u16, Option<&str>) {
    (status, p["field"].as_str())
}

#[tokio::test]
async fn groups_count_alerts_per_device_app_protocol_and_port_and_retro_impact_counts_covered_alerts(
) {
    let api = TestApi::start().await;
    api.import_jamf().await;
    let mut raised = 0;
    for (port, start) in [
        (8443, "2024-05-01T09:00:00.000000+0000"),
        (8443, "2024-05-03T09:00:00.000000+0000"),
        (8443, "2024-05-06T09:00:00.000000+0000"),
        (4443, "2024-05-02T09:00:00.000000+0000"),
    ] {
        raised += api.mail_session(port, start);
    }
    let (s, g) = api
        .call(api.client.get(api.at("/api/v1/alert-groups")), &api.viewer)
        .await;
    assert_eq!(s, 200, "{g}");
    assert_eq!(g["alerts"].as_u64(), Some(raised as u64), "{g}");
    let groups = g["groups"].as_array().unwrap();
    let ports: Vec<u64> = groups
        .iter()
        .map(|g| g["dest_port"].as_u64().unwrap())
        .collect();
    assert!(ports.contains(&8443) && ports.contains(&4443), "{g}");
    let total: u64 = groups.iter().map(|g| g["count"].as_u64().unwrap()).sum();
    assert_eq!(total, raised as u64);
    for grp in groups {
        assert_eq!(
            grp["alert_ids"].as_array().unwrap().len() as u64,
            grp["count"].as_u64().unwrap()
        );
        assert_eq!(grp["server_name"], "imap.mail.example.com");
        assert!(grp["device_name"].is_string(), "{grp}");
    }
    // Search and filters.
    let (_, none) = api
        .call(
            api.client
                .get(api.at("/api/v1/alert-groups?q=nothing-like-this")),
            &api.viewer,
        )
        .await;
    assert_eq!(none["groups"], json!([]));
    let (_, by_port) = api
        .call(
            api.client.get(api.at("/api/v1/alert-groups?q=4443")),
            &api.viewer,
        )
        .await;
    assert_eq!(by_port["groups"].as_array().unwrap().len(), 1, "{by_port}");
    let (s, p) = api
        .call(
            api.client.get(api.at("/api/v1/alert-groups?status=bogus")),
            &api.viewer,
        )
        .await;
    assert_eq!(s, 400, "{p}");

    // Retro-impact: the 8443 alerts of the last 7 days before 2024-05-07 (not the 4443 one).
    let alerts_8443 = groups
        .iter()
        .find(|g| g["dest_port"] == 8443)
        .map(|g| g["count"].as_u64().unwrap())
        .unwrap();
    let exception = json!({
        "id": "mail-8443", "kind": "relay", "ports": [8443], "app_protos": ["tls"],
        "reason": "mail relay", "owner": "it", "expires": "2030-01-01T00:00:00Z"
    });
    let (s, r) = post(
        &api,
        "/api/v1/exceptions/retro-impact?until=2024-05-07T00:00:00Z",
        &api.viewer,
        exception.clone(),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["would_suppress"].as_u64(), Some(alerts_8443), "{r}");
    assert_eq!(r["alerts_in_window"].as_u64(), Some(raised as u64), "{r}");
    let (_, r) = post(
        &api,
        "/api/v1/exceptions/retro-impact?until=2024-05-07T00:00:00Z&days=2",
        &api.viewer,
        exception.clone(),
    )
    .await;
    assert_eq!(r["would_suppress"].as_u64(), Some(1), "{r}");
    // A domain exception matches the server name; a blanket one is refused; nothing was stored.
    let mut by_domain = exception.clone();
    by_domain["ports"] = json!([]);
    by_domain["destinations"] = json!(["*.mail.example.com"]);
    let (_, r) = post(
        &api,
        "/api/v1/exceptions/retro-impact?until=2024-05-07T00:00:00Z",
        &api.viewer,
        by_domain,
    )
    .await;
    // Every session went to that server, on either port.
    assert_eq!(r["would_suppress"].as_u64(), Some(raised as u64), "{r}");
    let mut blanket = exception.clone();
    blanket["ports"] = json!([]);
    let (s, p) = post(
        &api,
        "/api/v1/exceptions/retro-impact",
        &api.viewer,
        blanket,
    )
    .await;
    assert_eq!(problem_field(s, &p), (400, Some("destinations")), "{p}");
    let (s, p) = post(
        &api,
        "/api/v1/exceptions/retro-impact?days=91",
        &api.viewer,
        exception,
    )
    .await;
    assert_eq!(problem_field(s, &p), (400, Some("days")), "{p}");
    let (_, list) = api
        .call(api.client.get(api.at("/api/v1/exceptions")), &api.viewer)
        .await;
    assert!(!list.to_string().contains("mail-8443"), "{list}");
}

fn set_cookie_of(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn console_sessions_use_strict_cookies_csrf_tokens_and_same_origin_checks() {
    let api = TestApi::start().await;
    let page = api.client.get(api.at("/ui/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("<script>") && html.contains("src=\"/ui/assets/app.js\""),
        "{html}"
    );
    let js = api
        .client
        .get(api.at("/ui/assets/app.js"))
        .send()
        .await
        .unwrap();
    assert!(js.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(!js.text().await.unwrap().contains("innerHTML"));
    let root = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
        .get(api.at("/"))
        .send()
        .await
        .unwrap();
    assert_eq!(root.status(), 303);

    // A wrong token is refused; a good one becomes a strict cookie.
    let bad = api
        .client
        .post(api.at("/ui/session"))
        .json(&json!({"token": "ptl_nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let origin = api.url.clone();
    let cross = api
        .client
        .post(api.at("/ui/session"))
        .header("origin", "https://evil.example")
        .json(&json!({"token": api.analyst}))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    let ok = api
        .client
        .post(api.at("/ui/session"))
        .header("origin", &origin)
        .json(&json!({"token": api.analyst}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
    let set = set_cookie_of(&ok);
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(!set.contains(&api.analyst), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();
    assert!(cookie.starts_with("__Host-portolan_session="));
    let info: Value = ok.json().await.unwrap();
    let csrf = info["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(info["role"], "analyst");
    assert_eq!(info["can_administer"], false);

    // Reads with the cookie; writes need the CSRF header and the same origin.
    let get = api
        .client
        .get(api.at("/api/v1/alerts"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    let write = |csrf: Option<&str>, origin: &str| {
        let mut r = api
            .client
            .post(api.at("/api/v1/alerts/42/escalate"))
            .header("cookie", &cookie)
            .header("origin", origin)
            .json(&json!({"note": "x"}));
        if let Some(c) = csrf {
            r = r.header("x-csrf-token", c);
        }
        r
    };
    assert_eq!(write(None, &origin).send().await.unwrap().status(), 403);
    assert_eq!(
        write(Some("wrong"), &origin).send().await.unwrap().status(),
        403
    );
    assert_eq!(
        write(Some(&csrf), "https://evil.example")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    // Past the CSRF check: no such alert.
    assert_eq!(
        write(Some(&csrf), &origin).send().await.unwrap().status(),
        404
    );
    // The role still applies: an analyst session cannot change exceptions.
    let admin_only = api
        .client
        .post(api.at("/api/v1/reload"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(admin_only.status(), 403);

    // Sign-out ends the session.
    let out = api
        .client
        .delete(api.at("/ui/session"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert!(set_cookie_of(&out).contains("Max-Age=0"));
    let after = api
        .client
        .get(api.at("/api/v1/alerts"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);

    // Revoking the token ends its sessions.
    let ok = api
        .client
        .post(api.at("/ui/session"))
        .json(&json!({"token": api.viewer}))
        .send()
        .await
        .unwrap();
    let cookie = set_cookie_of(&ok).split(';').next().unwrap().to_string();
    let id = api
        .state
        .tokens
        .list()
        .unwrap()
        .into_iter()
        .find(|t| t.label == "test-viewer")
        .unwrap()
        .id;
    api.state.tokens.revoke(id).unwrap();
    let after = api
        .client
        .get(api.at("/api/v1/alerts"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
}
