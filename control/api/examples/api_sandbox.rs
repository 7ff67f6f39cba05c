//! A stand-alone admin API over a fresh store, for exploring the API by hand and for property-based fuzzing
//! (schemathesis) until the daemon serves it: `cargo run -p portolan-api --example api_sandbox -- DIR [ADDR]`.
//!
//! Creates `DIR/portolan.db`, an admin token, `DIR/openapi.json`; serves plain HTTP on the loopback address
//! ADDR (default 127.0.0.1:0) and prints `URL TOKEN` on one line of stdout once ready. Runs until killed.

use std::path::PathBuf;
use std::sync::Arc;

use portolan_api::{
    ApiConfig, ApiServer, ApiState, ControlHandle, Readiness, ReloadPlan, Role, RolesSource,
    TokenStore,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: api_sandbox DIR [ADDR]")?);
    let listen = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:0".to_string())
        .parse()?;
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("portolan.db");
    let tokens = Arc::new(TokenStore::open(&db)?);
    let admin = tokens.create(Role::Admin, "sandbox")?;
    let plan = ReloadPlan {
        roles: RolesSource::Shipped,
        config: Default::default(),
        registry: None,
    };
    // No flows are fed here: the ingest side is not needed.
    let (control, _ingest) = ControlHandle::open(&db, plan)?;
    let state = ApiState::with_stats(control, tokens, Default::default(), Readiness::ready());
    std::fs::write(
        dir.join("openapi.json"),
        portolan_api::openapi::document_json()?,
    )?;
    let cfg = ApiConfig {
        listen,
        plain_http: true,
        // Fuzzers send many writes; the limit itself is tested elsewhere.
        rate_limit: portolan_api::RateLimitConfig {
            writes_per_second: 10_000.0,
            write_burst: 100_000,
        },
        ..ApiConfig::default()
    };
    let server = ApiServer::bind(&cfg, state).await?;
    println!("{} {}", server.url(), admin.secret);
    server.run(std::future::pending()).await;
    Ok(())
}
