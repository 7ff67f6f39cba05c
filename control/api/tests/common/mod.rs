//! Test harness: a real admin API on an ephemeral loopback port with a self-signed certificate created on
//! start, a real SQLite token store, and a reqwest client that trusts only that certificate.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use portolan_api::{
    ApiConfig, ApiServer, ApiState, ControlHandle, Readiness, ReloadPlan, Role, RolesSource,
    TokenStore,
};
use portolan_control::RegisteredPortMap;
use tokio::sync::oneshot;

/// A running admin API and the tokens to talk to it.
pub struct TestApi {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub client: reqwest::Client,
    pub admin: String,
    pub analyst: String,
    pub viewer: String,
    pub state: ApiState,
    pub db: PathBuf,
    /// The ingest side over the same core as the API's (feeds flows as the daemon's drain thread would).
    pub ingest: std::sync::Mutex<portolan_control::Ingest>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestApi {
    /// Starts with the default configuration (TLS, port 0).
    pub async fn start() -> TestApi {
        Self::start_with(|_| {}).await
    }

    /// Starts after `tweak` adjusted the configuration.
    pub async fn start_with(tweak: impl FnOnce(&mut ApiConfig)) -> TestApi {
        Self::start_in(tempfile::tempdir().expect("tempdir"), tweak).await
    }

    /// Starts over the store in `dir` (kept from an earlier run for restart tests).
    pub async fn start_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut ApiConfig)) -> TestApi {
        let db = dir.path().join("portolan.db");
        let tokens = Arc::new(TokenStore::open(&db).expect("token store"));
        let admin = tokens
            .create(Role::Admin, "test-admin")
            .expect("token")
            .secret;
        let analyst = tokens
            .create(Role::Analyst, "test-analyst")
            .expect("token")
            .secret;
        let viewer = tokens
            .create(Role::Viewer, "test-viewer")
            .expect("token")
            .secret;
        let plan = ReloadPlan {
            roles: RolesSource::Shipped,
            config: Default::default(),
            registry: Some(std::sync::Arc::new(|| Box::new(registry()) as _)),
        };
        let (control, ingest) = ControlHandle::open(&db, plan).expect("control plane");
        let state = ApiState::with_stats(control, tokens, Default::default(), Readiness::ready());
        let mut cfg = ApiConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            tls: portolan_api::TlsFiles {
                cert: dir.path().join("tls/cert.pem"),
                key: dir.path().join("tls/key.pem"),
                ..Default::default()
            },
            ..ApiConfig::default()
        };
        tweak(&mut cfg);
        let server = ApiServer::bind(&cfg, state.clone()).await.expect("bind");
        let url = server.url();
        let mut builder = reqwest::Client::builder().use_rustls_tls();
        if !cfg.plain_http {
            let pem = std::fs::read(&cfg.tls.cert).expect("certificate written on start");
            let cert = reqwest::Certificate::from_pem(&pem).expect("pem");
            builder = builder
                .add_root_certificate(cert)
                .tls_built_in_root_certs(false);
        }
        let client = builder.build().expect("client");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        TestApi {
            dir,
            url,
            client,
            admin,
            analyst,
            viewer,
            state,
            db,
            ingest: std::sync::Mutex::new(ingest),
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Full URL of `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// Stops the server and waits for it; returns the directory holding the store.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
        self.dir
    }

    /// Posts the Jamf fixture to `/api/v1/inventory` as the admin; asserts 200 and returns the
    /// import report.
    pub async fn import_jamf(&self) -> serde_json::Value {
        let (status, body) = self
            .call(
                self.client
                    .post(self.at("/api/v1/inventory"))
                    .header("content-type", "application/json")
                    .body(control_fixture("jamf_mobile_devices_detail.json")),
                &self.admin,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Feeds one TLS session of the supervised iPhone's Mail app on `port` starting at `start`
    /// (EVE time) to the engine, as the daemon's ring consumer would; returns the alerts raised.
    pub fn mail_session(&self, port: u16, start: &str) -> usize {
        let record = serde_json::json!({
            "event_type": "flow", "src_ip": "10.10.0.21", "src_port": 50000, "dest_ip": "203.0.113.50",
            "dest_port": port, "proto": "TCP", "app_proto": "tls", "port_mismatch": true,
            "tls": {"sni": "imap.mail.example.com"},
            "flow": {"start": start, "end": start, "pkts_toserver": 10, "pkts_toclient": 10,
                     "bytes_toserver": 1800, "bytes_toclient": 4000}
        });
        let mut cp = self.ingest.lock().unwrap();
        cp.ingest_eve(&record).unwrap().len()
    }

    /// Sends `req` with `token` and returns status and JSON body (`null` when empty).
    pub async fn call(
        &self,
        req: reqwest::RequestBuilder,
        token: &str,
    ) -> (u16, serde_json::Value) {
        let resp = req.bearer_auth(token).send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let body = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        (status, body)
    }
}

/// A port registry like the dataplane's, for the protocols the tests use.
pub fn registry() -> RegisteredPortMap {
    RegisteredPortMap::default()
        .with("tls", &[443, 465, 636, 853, 993, 995])
        .with("http", &[80])
        .with("imap", &[143])
        .with("smtp", &[25, 587])
}

/// A fixture of the control crate's tests.
pub fn control_fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Asserts `resp` is a problem document with `status`, and returns it.
pub async fn problem(resp: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status, "unexpected status");
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(ct, "application/problem+json");
    let body: serde_json::Value = resp.json().await.expect("problem json");
    assert_eq!(body["status"], status);
    assert!(body["type"].is_string() && body["title"].is_string() && body["detail"].is_string());
    body
}
