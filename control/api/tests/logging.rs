//! The listener logs exactly one line with its address when ready, and no token ever reaches the log.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::TestApi;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

// A current-thread runtime: the subscriber set for this thread sees the server's tasks too.
#[tokio::test(flavor = "current_thread")]
async fn one_ready_line_with_the_address_and_no_token_in_the_log() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let api = TestApi::start().await;
    // A console sign-in with a bad token is logged like a bad bearer token (the address's first failure
    // of the minute), without the token.
    let r = api
        .client
        .post(api.at("/ui/session"))
        .json(&serde_json::json!({"token": "ptl_consoleguessthatlookslikeatoken"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Good, bad and malformed tokens, a write, an error.
    let _ = api
        .client
        .get(api.at("/api/v1/stats"))
        .bearer_auth(&api.admin)
        .send()
        .await
        .unwrap();
    let _ = api
        .client
        .get(api.at("/api/v1/stats"))
        .bearer_auth("ptl_notarealtokenbutlookslikeone")
        .send()
        .await
        .unwrap();
    let _ = api
        .client
        .post(api.at("/api/v1/reload"))
        .bearer_auth(&api.admin)
        .send()
        .await
        .unwrap();
    let _ = api
        .client
        .post(api.at("/api/v1/alerts/1/ack"))
        .bearer_auth(&api.analyst)
        .body("{")
        .send()
        .await
        .unwrap();
    let url = api.url.clone();
    let secrets = [api.admin.clone(), api.analyst.clone(), api.viewer.clone()];
    api.stop().await;

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let ready: Vec<&str> = log.lines().filter(|l| l.contains("listening on")).collect();
    assert_eq!(ready.len(), 1, "{log}");
    assert!(ready[0].contains("INFO"), "{}", ready[0]);
    assert!(
        ready[0].contains(&format!("admin API listening on {url}")),
        "{}",
        ready[0]
    );
    assert!(
        url.starts_with("https://127.0.0.1:") && !url.ends_with(":0"),
        "{url}"
    );
    assert!(
        log.contains("self-signed"),
        "creating a certificate is logged: {log}"
    );
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("authentication failed"))
        .collect();
    assert!(
        failed
            .iter()
            .any(|l| l.contains("via=\"console sign-in\"") && l.contains("client=127.0.0.1")),
        "{log}"
    );
    for s in &secrets {
        assert!(!log.contains(s.as_str()), "a token reached the log");
    }
    assert!(
        !log.contains("ptl_"),
        "something token-shaped reached the log:\n{log}"
    );
    assert!(!log.contains("PRIVATE KEY"), "key material reached the log");
}
