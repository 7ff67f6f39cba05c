//! The connectors against local HTTPS servers that play the Jamf Pro API and Microsoft Graph,
//! answering with bodies shaped like the vendors' published examples (token responses, Jamf's
//! `{totalCount, results}` pages with sections, Graph collections with `@odata.nextLink`, a
//! managed device with `detectedApps` expanded, `mobileApps`). Certificates are generated per test:
//! the server's is signed by a test CA that the connector is told to trust (`ca_file`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{json, Value};

use portolan_connectors::{
    pull_and_import, Connector, ConnectorError, GraphConfig, HttpLimits, JamfConfig,
};
use portolan_control::{ControlConfig, ControlPlane, RoleSet, Store};

// ------------------------------------------------------------------ TLS server

struct Pki {
    dir: tempfile::TempDir,
    server: rustls::ServerConfig,
}

impl Pki {
    /// A test CA, a server certificate it signs for 127.0.0.1/localhost, and an unrelated CA.
    fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        let other_key = KeyPair::generate().unwrap();
        let mut other = CertificateParams::new(Vec::<String>::new()).unwrap();
        other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        std::fs::write(
            dir.path().join("other-ca.pem"),
            other.self_signed(&other_key).unwrap().pem(),
        )
        .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
        let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Pki { dir, server }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn other_ca(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    /// A secret file, mode 0600.
    fn secret(&self, value: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.path().join("secret");
        std::fs::write(&p, format!("{value}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }
}

/// Serves `app` over TLS on a free loopback port until the runtime ends.
async fn serve(pki: &Pki, app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(pki.server.clone()));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    addr
}

fn limits() -> HttpLimits {
    HttpLimits {
        timeout_s: 10,
        connect_timeout_s: 5,
        attempts: 3,
        backoff_ms: 10,
        ..HttpLimits::default()
    }
}

fn control() -> ControlPlane {
    ControlPlane::new(
        Store::open_in_memory().unwrap(),
        RoleSet::shipped_defaults().unwrap(),
        ControlConfig::default(),
    )
    .unwrap()
}

// ------------------------------------------------------------------ a Jamf Pro server

const JAMF_ID: &str = "portolan-test-client";
const JAMF_SECRET: &str = "jamf-secret-value";

#[derive(Default)]
struct Jamf {
    devices: Vec<Value>,
    /// `totalCount` announced (defaults to the devices served).
    claimed_total: Option<usize>,
    expires_in: u64,
    tokens: HashMap<String, Instant>,
    issued: u32,
    /// Refuse the first token after this many pages (as if it had been revoked).
    revoke_after_pages: Option<usize>,
    /// Answer this page with 500, always.
    fail_page: Option<usize>,
    pages_served: usize,
    requests: Vec<String>,
    unauthorized: usize,
}

type Shared<T> = Arc<Mutex<T>>;

/// A device record as `GET /api/v2/mobile-devices/detail` returns it with the GENERAL, HARDWARE,
/// USER_AND_LOCATION, APPLICATIONS and EXTENSION_ATTRIBUTES sections.
fn jamf_device(i: usize, app_version: &str) -> Value {
    json!({
        "mobileDeviceId": format!("{}", 100 + i),
        "deviceType": "iOS",
        "general": {
            "udid": format!("00008120-0000000000{i:06}"),
            "displayName": format!("Field iPhone {i}"),
            "assetTag": format!("IT-{i:04}"),
            "siteId": "-1",
            "lastInventoryUpdateDate": "2026-11-30T08:00:00.000Z",
            "osVersion": "18.1",
            "osBuild": "22B83",
            "ipAddress": format!("10.20.0.{}", 10 + i),
            "managed": true,
            "supervised": true,
            "deviceOwnershipType": "Institutional",
            "lastEnrolledDate": "2026-01-10T12:31:05.000Z",
            "timeZone": "Europe/Berlin",
            "extensionAttributes": []
        },
        "hardware": {
            "capacityMb": 121842,
            "serialNumber": format!("F4KX{i:06}"),
            "wifiMacAddress": format!("A4:5E:60:C2:00:{i:02X}"),
            "bluetoothMacAddress": format!("A4:5E:60:C2:01:{i:02X}"),
            "model": "iPhone 15",
            "modelIdentifier": "iPhone15,4",
            "modelNumber": "MTLW3LL"
        },
        "userAndLocation": {
            "username": format!("user{i}"),
            "realName": format!("User {i}"),
            "emailAddress": format!("user{i}@example.com"),
            "position": "Field engineer",
            "departmentId": "3",
            "buildingId": "-1",
            "room": ""
        },
        "applications": [
            {"identifier": "com.apple.mobilemail", "name": "Mail", "version": "3.0",
             "shortVersion": "3.0", "managementStatus": "Managed", "validationStatus": true,
             "bundleSize": "0", "dynamicSize": "0"},
            {"identifier": "com.microsoft.Office.Outlook", "name": "Microsoft Outlook",
             "version": app_version, "shortVersion": app_version, "managementStatus": "Managed",
             "validationStatus": true, "bundleSize": "402653184", "dynamicSize": "0"}
        ],
        "extensionAttributes": [
            {"definitionId": "7", "name": "IPv6 Address", "type": "STRING", "multiValue": false,
             "values": [format!("2001:db8:20::{:x}", 10 + i)], "extensionAttributeCollectionAllowed": false,
             "inventoryDisplayType": "GENERAL"}
        ]
    })
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_string)
}

async fn jamf_token(
    State(s): State<Shared<Jamf>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut st = s.lock().unwrap();
    st.requests.push("POST /api/oauth/token".into());
    if form.get("grant_type").map(String::as_str) != Some("client_credentials")
        || form.get("client_id").map(String::as_str) != Some(JAMF_ID)
        || form.get("client_secret").map(String::as_str) != Some(JAMF_SECRET)
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    st.issued += 1;
    let token = format!("jamf-token-{}", st.issued);
    st.tokens.insert(token.clone(), Instant::now());
    let expires_in = st.expires_in;
    Json(json!({
        "access_token": token,
        "scope": "api-role:2",
        "token_type": "Bearer",
        "expires_in": expires_in
    }))
    .into_response()
}

async fn jamf_detail(
    State(s): State<Shared<Jamf>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let mut st = s.lock().unwrap();
    let q = q.unwrap_or_default();
    st.requests
        .push(format!("GET /api/v2/mobile-devices/detail?{q}"));
    let lifetime = Duration::from_secs(st.expires_in);
    let valid = bearer(&headers)
        .and_then(|t| st.tokens.get(&t).map(|at| (t.clone(), *at)))
        .filter(|(_, at)| at.elapsed() < lifetime);
    let Some((token, _)) = valid else {
        st.unauthorized += 1;
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"httpStatus": 401, "errors": []})),
        )
            .into_response();
    };
    if st.revoke_after_pages == Some(st.pages_served) && token == "jamf-token-1" {
        st.unauthorized += 1;
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"httpStatus": 401, "errors": []})),
        )
            .into_response();
    }
    let param = |name: &str| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let (Some(page), Some(size)) = (param("page"), param("page-size")) else {
        return (StatusCode::BAD_REQUEST, "page and page-size").into_response();
    };
    if st.fail_page == Some(page) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"httpStatus": 500, "errors": [{"code": "INTERNAL", "description": "database unavailable"}]})),
        )
            .into_response();
    }
    st.pages_served += 1;
    let total = st.claimed_total.unwrap_or(st.devices.len());
    let results: Vec<Value> = st
        .devices
        .iter()
        .skip(page * size)
        .take(size)
        .cloned()
        .collect();
    Json(json!({"totalCount": total, "results": results})).into_response()
}

async fn jamf_server(pki: &Pki, state: Jamf) -> (Shared<Jamf>, String) {
    let shared = Arc::new(Mutex::new(state));
    let app = Router::new()
        .route("/api/oauth/token", post(jamf_token))
        .route("/api/v2/mobile-devices/detail", get(jamf_detail))
        .with_state(shared.clone());
    let addr = serve(pki, app).await;
    (shared, format!("https://127.0.0.1:{}", addr.port()))
}

fn jamf_state(n: usize) -> Jamf {
    Jamf {
        devices: (0..n).map(|i| jamf_device(i, "4.2411.0")).collect(),
        expires_in: 60,
        ..Jamf::default()
    }
}

fn jamf_connector(pki: &Pki, url: &str, page_size: u32) -> Connector {
    Connector::Jamf(JamfConfig {
        url: url.to_string(),
        client_id: JAMF_ID.into(),
        client_secret_file: pki.secret(JAMF_SECRET),
        interval_s: 3600,
        page_size,
        ca_file: Some(pki.ca()),
        limits: limits(),
    })
}

fn outlook_version(cp: &ControlPlane, i: usize) -> Option<String> {
    let udid = format!("00008120-0000000000{i:06}");
    let st = cp.operator.core().lock().unwrap();
    let d = st.device(&udid)?.clone();
    d.apps
        .iter()
        .find(|a| a.bundle_id == "com.microsoft.Office.Outlook")
        .and_then(|a| a.version.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jamf_pull_takes_a_token_follows_every_page_and_imports_with_an_audit_entry() {
    let pki = Pki::new();
    let (server, url) = jamf_server(&pki, jamf_state(5)).await;
    let cp = control();
    let connector = jamf_connector(&pki, &url, 2);
    let report = pull_and_import(&connector, &cp.operator).await.unwrap();
    assert_eq!((report.devices, report.pages, report.tokens), (5, 3, 1));
    let s = &report.imports[0];
    assert_eq!(s.added, 5, "{s:?}");
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    {
        let st = cp.operator.core().lock().unwrap();
        let d = st.device("00008120-0000000000000004").unwrap();
        assert_eq!(d.serial_number.as_deref(), Some("F4KX000004"));
        assert_eq!(d.apps.len(), 2);
        assert_eq!(
            d.user.as_ref().and_then(|u| u.username.as_deref()),
            Some("user4")
        );
        assert_eq!(
            d.ipv6_addresses,
            vec!["2001:db8:20::e".parse::<std::net::IpAddr>().unwrap()]
        );
    }
    let requests = server.lock().unwrap().requests.clone();
    assert_eq!(requests[0], "POST /api/oauth/token");
    let pages: Vec<&String> = requests.iter().filter(|r| r.starts_with("GET")).collect();
    assert_eq!(pages.len(), 3, "{requests:?}");
    for (i, p) in pages.iter().enumerate() {
        assert!(p.contains(&format!("page={i}&page-size=2")), "{p}");
        for section in [
            "GENERAL",
            "HARDWARE",
            "USER_AND_LOCATION",
            "APPLICATIONS",
            "EXTENSION_ATTRIBUTES",
        ] {
            assert!(
                p.contains(&format!("section={section}")),
                "{p} lacks {section}"
            );
        }
    }
    let audit = cp.operator.audit_log().unwrap();
    let entry = audit
        .iter()
        .find(|e| e.actor == "connector:jamf")
        .expect("audit entry");
    assert_eq!(
        entry.target,
        format!("jamf:{url}/api/v2/mobile-devices/detail")
    );
    assert!(entry.reason.contains("5 devices"), "{}", entry.reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jamf_export_that_stops_short_of_total_count_warns_partial() {
    let pki = Pki::new();
    let mut state = jamf_state(5);
    state.claimed_total = Some(7);
    let (_server, url) = jamf_server(&pki, state).await;
    let cp = control();
    let report = pull_and_import(&jamf_connector(&pki, &url, 2), &cp.operator)
        .await
        .unwrap();
    assert_eq!((report.devices, report.pages), (5, 3));
    let all = report.imports[0].warnings.join("\n");
    assert!(all.contains("5 of `totalCount` 7"), "{all}");
    assert_eq!(report.imports[0].added, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_replaced_and_paging_goes_on() {
    let pki = Pki::new();
    let mut state = jamf_state(5);
    state.revoke_after_pages = Some(1);
    let (server, url) = jamf_server(&pki, state).await;
    let cp = control();
    let report = pull_and_import(&jamf_connector(&pki, &url, 2), &cp.operator)
        .await
        .unwrap();
    assert_eq!((report.devices, report.tokens), (5, 2));
    let st = server.lock().unwrap();
    assert_eq!((st.issued, st.unauthorized), (2, 1));
    assert_eq!(report.imports[0].added, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_near_its_expiry_is_renewed_before_the_server_refuses_it() {
    let pki = Pki::new();
    let mut state = jamf_state(3);
    state.expires_in = 2; // renewed half a second before its end
    let (server, url) = jamf_server(&pki, state).await;
    let connector = jamf_connector(&pki, &url, 2);
    let Connector::Jamf(cfg) = &connector else {
        unreachable!()
    };
    let http =
        portolan_connectors::http::Http::new(&cfg.limits, cfg.ca_file.as_deref(), "ca").unwrap();
    let mut tokens = portolan_connectors::oauth::TokenSource::new(
        format!("{url}/api/oauth/token"),
        JAMF_ID,
        JAMF_SECRET.into(),
        None,
    );
    let first = tokens.bearer(&http).await.unwrap();
    assert_eq!(
        tokens.bearer(&http).await.unwrap(),
        first,
        "kept while fresh"
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let second = tokens.bearer(&http).await.unwrap();
    assert_ne!(first, second, "renewed within its last quarter");
    assert_eq!(server.lock().unwrap().issued, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_mid_paging_fails_the_pull_and_keeps_the_previous_inventory() {
    let pki = Pki::new();
    let (server, url) = jamf_server(&pki, jamf_state(5)).await;
    let cp = control();
    let connector = jamf_connector(&pki, &url, 2);
    pull_and_import(&connector, &cp.operator).await.unwrap();
    assert_eq!(outlook_version(&cp, 0).as_deref(), Some("4.2411.0"));
    let audit_before = cp.operator.audit_log().unwrap().len();
    {
        let mut st = server.lock().unwrap();
        st.devices = (0..5).map(|i| jamf_device(i, "9.9")).collect();
        st.fail_page = Some(1);
        st.requests.clear();
    }
    let err = pull_and_import(&connector, &cp.operator).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, ConnectorError::Status { status: 500, .. }),
        "{text}"
    );
    assert!(
        text.contains("page=1")
            && text.contains("HTTP 500")
            && text.contains("database unavailable"),
        "{text}"
    );
    let retried = server
        .lock()
        .unwrap()
        .requests
        .iter()
        .filter(|r| r.contains("page=1&"))
        .count();
    assert_eq!(retried, 3, "every attempt of limits.attempts");
    assert_eq!(
        outlook_version(&cp, 0).as_deref(),
        Some("4.2411.0"),
        "page 0 was not applied alone"
    );
    assert_eq!(cp.operator.devices().unwrap().len(), 5);
    assert_eq!(
        cp.operator.audit_log().unwrap().len(),
        audit_before,
        "nothing imported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_another_ca_is_refused() {
    let pki = Pki::new();
    let (server, url) = jamf_server(&pki, jamf_state(2)).await;
    let cp = control();
    let Connector::Jamf(mut cfg) = jamf_connector(&pki, &url, 2) else {
        unreachable!()
    };
    cfg.ca_file = Some(pki.other_ca());
    let err = pull_and_import(&Connector::Jamf(cfg), &cp.operator)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConnectorError::Transport { .. }), "{text}");
    assert!(
        text.contains("/api/oauth/token") && text.to_lowercase().contains("certificate"),
        "{text}"
    );
    assert!(
        server.lock().unwrap().requests.is_empty(),
        "no request reached the server"
    );
    assert!(cp.operator.devices().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_names_the_token_call_and_its_status() {
    let pki = Pki::new();
    let (_server, url) = jamf_server(&pki, jamf_state(2)).await;
    let cp = control();
    let Connector::Jamf(mut cfg) = jamf_connector(&pki, &url, 2) else {
        unreachable!()
    };
    cfg.client_secret_file = pki.secret("wrong");
    let err = pull_and_import(&Connector::Jamf(cfg), &cp.operator)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("POST") && text.contains("/api/oauth/token") && text.contains("HTTP 401"),
        "{text}"
    );
    assert!(!text.contains("wrong"), "the secret is never shown: {text}");
}

// ------------------------------------------------------------------ a Microsoft Graph server

const TENANT: &str = "contoso.onmicrosoft.com";
const GRAPH_ID: &str = "9f3a1c55-portolan-app";
const GRAPH_SECRET: &str = "graph-secret-value";
const IOS_ID: &str = "705c034c-034c-705c-4c03-5c704c035c70";
const IPAD_ID: &str = "9a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9";
const ANDROID_ID: &str = "1c2d3e4f-5a6b-7c8d-9e0f-a1b2c3d4e5f6";

#[derive(Default)]
struct Graph {
    base: String,
    /// Answer the second devices page with 429 and this `Retry-After` once.
    throttle_s: Option<u64>,
    throttled_at: Option<Instant>,
    retried_at: Option<Instant>,
    /// A nextLink pointing elsewhere.
    foreign_next_link: bool,
    requests: Vec<String>,
}

fn managed_device(id: &str, name: &str, os: &str, udid: &str, mac: &str) -> Value {
    json!({
        "id": id,
        "userId": "3b5f9c1e-1111-4a2b-9f00-6d2a5c1e7a10",
        "deviceName": name,
        "managedDeviceOwnerType": "company",
        "enrolledDateTime": "2026-01-08T09:12:33Z",
        "lastSyncDateTime": "2026-11-30T07:45:10Z",
        "operatingSystem": os,
        "complianceState": "compliant",
        "jailBroken": "False",
        "managementAgent": "mdm",
        "osVersion": "18.1",
        "easActivated": true,
        "easDeviceId": "",
        "azureADRegistered": true,
        "deviceEnrollmentType": "appleBulkWithUser",
        "emailAddress": "jonas.berg@example.com",
        "azureADDeviceId": "8f2d3c4b-2222-4d5e-8a9b-0c1d2e3f4a5b",
        "deviceRegistrationState": "registered",
        "isSupervised": true,
        "isEncrypted": true,
        "userPrincipalName": "jonas.berg@example.com",
        "model": "iPhone 15",
        "manufacturer": "Apple",
        "imei": "35 291811 234567 8",
        "serialNumber": format!("SN{}", &id[..8]),
        "phoneNumber": "",
        "userDisplayName": "Jonas Berg",
        "wiFiMacAddress": mac,
        "udid": udid
    })
}

fn detected_apps(id: &str) -> Value {
    if id == IOS_ID {
        json!([
            {"id": "0000a1b2c3d4e5f60718293a4b5c6d7e", "displayName": "Microsoft Outlook",
             "version": "4.2411.0", "sizeInByte": 402653184, "deviceCount": 1,
             "publisher": "Microsoft Corporation", "platform": "ios"},
            {"id": "0000c3d4e5f60718293a4b5c6d7e8f90", "displayName": "com.example.fieldapp",
             "version": "1.4", "sizeInByte": 1048576, "deviceCount": 1, "publisher": null,
             "platform": "ios"}
        ])
    } else {
        json!([
            {"id": "0000b2c3d4e5f60718293a4b5c6d7e8f", "displayName": "Microsoft Teams",
             "version": "6.6.1", "sizeInByte": 310378496, "deviceCount": 1,
             "publisher": "Microsoft Corporation", "platform": "ios"}
        ])
    }
}

fn devices_page(base: &str, page: u32) -> Value {
    let ctx = format!("{base}/$metadata#deviceManagement/managedDevices");
    match page {
        0 => json!({
            "@odata.context": ctx,
            "@odata.count": 3,
            "@odata.nextLink": format!("{base}/deviceManagement/managedDevices?$filter=operatingSystem%20eq%20%27iOS%27%20or%20operatingSystem%20eq%20%27iPadOS%27&$skiptoken=page2"),
            "value": [managed_device(IOS_ID, "Jonas iPhone", "iOS", "00008110-000C35A13A8A401E", "A45E60C10061")]
        }),
        _ => json!({
            "@odata.context": ctx,
            "value": [
                managed_device(IPAD_ID, "Sales iPad", "iPadOS", "00008103-0019A4D12E92001E", "A45E60C10071"),
                // A server that ignores the filter: the importer skips the record with its reason.
                managed_device(ANDROID_ID, "Pixel 8", "Android", "", "")
            ]
        }),
    }
}

async fn graph_token(
    State(s): State<Shared<Graph>>,
    UrlPath(tenant): UrlPath<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    s.lock()
        .unwrap()
        .requests
        .push(format!("POST /{tenant}/oauth2/v2.0/token"));
    if tenant != TENANT
        || form.get("grant_type").map(String::as_str) != Some("client_credentials")
        || form.get("client_id").map(String::as_str) != Some(GRAPH_ID)
        || form.get("client_secret").map(String::as_str) != Some(GRAPH_SECRET)
        || form.get("scope").map(String::as_str) != Some("https://graph.microsoft.com/.default")
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."})),
        )
            .into_response();
    }
    Json(json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": "eyJ0eXAiOiJKV1QiLCJub25jZSI6Imdy"}))
        .into_response()
}

fn graph_authorized(headers: &HeaderMap) -> bool {
    bearer(headers).as_deref() == Some("eyJ0eXAiOiJKV1QiLCJub25jZSI6Imdy")
}

async fn graph_devices(
    State(s): State<Shared<Graph>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let mut st = s.lock().unwrap();
    let q = q.unwrap_or_default();
    st.requests.push(format!("GET managedDevices?{q}"));
    if !graph_authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if !q.contains(
        "$filter=operatingSystem%20eq%20%27iOS%27%20or%20operatingSystem%20eq%20%27iPadOS%27",
    ) {
        return (StatusCode::BAD_REQUEST, "expected the iOS/iPadOS filter").into_response();
    }
    let page = u32::from(q.contains("$skiptoken=page2"));
    if page == 1 {
        if let Some(secs) = st.throttle_s {
            if st.throttled_at.is_none() {
                st.throttled_at = Some(Instant::now());
                let mut h = HeaderMap::new();
                h.insert("retry-after", secs.to_string().parse().unwrap());
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    h,
                    Json(json!({"error": {"code": "TooManyRequests", "message": "Too many requests."}})),
                )
                    .into_response();
            }
            st.retried_at.get_or_insert_with(Instant::now);
        }
    }
    let mut doc = devices_page(&st.base, page);
    if st.foreign_next_link && page == 0 {
        doc["@odata.nextLink"] =
            json!("https://graph.example.net/v1.0/deviceManagement/managedDevices?$skiptoken=x");
    }
    Json(doc).into_response()
}

async fn graph_device(
    State(s): State<Shared<Graph>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let st = {
        let mut st = s.lock().unwrap();
        st.requests.push(format!(
            "GET managedDevices/{id}?{}",
            q.clone().unwrap_or_default()
        ));
        st.base.clone()
    };
    if !graph_authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if q.as_deref() != Some("$expand=detectedApps") || (id != IOS_ID && id != IPAD_ID) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"code": "ResourceNotFound"}})),
        )
            .into_response();
    }
    let (name, os, udid, mac) = if id == IOS_ID {
        (
            "Jonas iPhone",
            "iOS",
            "00008110-000C35A13A8A401E",
            "A45E60C10061",
        )
    } else {
        (
            "Sales iPad",
            "iPadOS",
            "00008103-0019A4D12E92001E",
            "A45E60C10071",
        )
    };
    let mut doc = managed_device(&id, name, os, udid, mac);
    doc["@odata.context"] = json!(format!(
        "{st}/$metadata#deviceManagement/managedDevices(detectedApps())/$entity"
    ));
    doc["detectedApps"] = detected_apps(&id);
    Json(doc).into_response()
}

async fn graph_mobile_apps(State(s): State<Shared<Graph>>, headers: HeaderMap) -> Response {
    let base = {
        let mut st = s.lock().unwrap();
        st.requests.push("GET mobileApps".into());
        st.base.clone()
    };
    if !graph_authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    Json(json!({
        "@odata.context": format!("{base}/$metadata#deviceAppManagement/mobileApps"),
        "value": [
            {"@odata.type": "#microsoft.graph.iosVppApp", "id": "4f7c1b2a-0000-4000-8000-000000000001",
             "displayName": "Microsoft Outlook", "publisher": "Microsoft Corporation",
             "isFeatured": false, "publishingState": "published",
             "bundleId": "com.microsoft.Office.Outlook", "usedLicenseCount": 12, "totalLicenseCount": 50},
            {"@odata.type": "#microsoft.graph.iosStoreApp", "id": "4f7c1b2a-0000-4000-8000-000000000002",
             "displayName": "Microsoft Teams", "publisher": "Microsoft Corporation",
             "isFeatured": false, "publishingState": "published",
             "bundleId": "com.microsoft.skype.teams", "appStoreUrl": "https://apps.apple.com/app/id1113153706"}
        ]
    }))
    .into_response()
}

async fn graph_server(pki: &Pki, state: Graph) -> (Shared<Graph>, String) {
    let shared = Arc::new(Mutex::new(state));
    let app = Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(graph_token))
        .route("/v1.0/deviceManagement/managedDevices", get(graph_devices))
        .route(
            "/v1.0/deviceManagement/managedDevices/{id}",
            get(graph_device),
        )
        .route(
            "/v1.0/deviceAppManagement/mobileApps",
            get(graph_mobile_apps),
        )
        .with_state(shared.clone());
    let addr = serve(pki, app).await;
    let root = format!("https://127.0.0.1:{}", addr.port());
    shared.lock().unwrap().base = format!("{root}/v1.0");
    (shared, root)
}

fn graph_connector(pki: &Pki, root: &str) -> Connector {
    Connector::Graph(GraphConfig {
        tenant: TENANT.into(),
        client_id: GRAPH_ID.into(),
        client_secret_file: pki.secret(GRAPH_SECRET),
        token_url: Some(format!("{root}/{TENANT}/oauth2/v2.0/token")),
        graph_url: format!("{root}/v1.0"),
        scope: "https://graph.microsoft.com/.default".into(),
        interval_s: 3600,
        ca_file: Some(pki.ca()),
        limits: limits(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_pull_follows_next_links_honours_retry_after_and_imports_ios_devices_with_apps() {
    let pki = Pki::new();
    let (server, root) = graph_server(
        &pki,
        Graph {
            throttle_s: Some(1),
            ..Graph::default()
        },
    )
    .await;
    let cp = control();
    let report = pull_and_import(&graph_connector(&pki, &root), &cp.operator)
        .await
        .unwrap();
    let st = server.lock().unwrap();
    let waited = st.retried_at.unwrap() - st.throttled_at.unwrap();
    assert!(
        waited >= Duration::from_millis(1000),
        "Retry-After: 1 honoured, waited {waited:?}"
    );
    assert_eq!(
        st.requests
            .iter()
            .filter(|r| r.starts_with("GET managedDevices/"))
            .count(),
        2,
        "detectedApps asked for the iOS and iPadOS devices only: {:?}",
        st.requests
    );
    // 2 device pages (+1 throttled, not counted), 2 devices, 1 mobileApps page.
    assert_eq!((report.devices, report.pages, report.tokens), (3, 5, 1));
    let s = &report.imports[0];
    assert_eq!(s.added, 2, "{s:?}");
    assert_eq!(s.skipped.len(), 1, "{:?}", s.skipped);
    assert!(s.skipped[0].contains("Android"), "{:?}", s.skipped);
    drop(st);
    let core = cp.operator.core().lock().unwrap();
    let iphone = core.device("00008110-000C35A13A8A401E").unwrap();
    let mut bundles: Vec<&str> = iphone.apps.iter().map(|a| a.bundle_id.as_str()).collect();
    bundles.sort_unstable();
    assert_eq!(
        bundles,
        ["com.example.fieldapp", "com.microsoft.Office.Outlook"]
    );
    let ipad = core.device("00008103-0019A4D12E92001E").unwrap();
    assert_eq!(
        ipad.apps[0].bundle_id, "com.microsoft.skype.teams",
        "bundle ID from mobileApps"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_link_to_another_host_is_refused_and_nothing_is_imported() {
    let pki = Pki::new();
    let (_server, root) = graph_server(
        &pki,
        Graph {
            foreign_next_link: true,
            ..Graph::default()
        },
    )
    .await;
    let cp = control();
    let err = pull_and_import(&graph_connector(&pki, &root), &cp.operator)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("@odata.nextLink") && err.contains("graph.example.net"),
        "{err}"
    );
    assert!(cp.operator.devices().unwrap().is_empty());
}

#[test]
fn secret_and_ca_paths_are_checked_before_any_request() {
    let pki = Pki::new();
    let Connector::Jamf(mut cfg) = jamf_connector(&pki, "https://jamf.example.com", 100) else {
        unreachable!()
    };
    cfg.ca_file = Some(Path::new("/nonexistent/ca.pem").to_path_buf());
    let e = Connector::Jamf(cfg.clone())
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("inputs.jamf.ca_file: /nonexistent/ca.pem"),
        "{e}"
    );
    cfg.ca_file = Some(pki.secret("not a certificate"));
    let e = Connector::Jamf(cfg.clone())
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("inputs.jamf.ca_file:") && e.contains("PEM"),
        "{e}"
    );
    cfg.ca_file = Some(pki.ca());
    Connector::Jamf(cfg).validate().unwrap();
}
