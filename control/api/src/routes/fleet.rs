//! The fleet's appliances as the central knows them (`GET /api/v1/fleet/appliances`): each
//! appliance that sent messages, with its site, version, when it was last heard from, its
//! outbox backlog as of its latest message and what the central applied. An appliance's own API
//! answers an empty list.
//!
//! On the central, the shared configuration too (`/api/v1/fleet/config/{bucket}[/{key}]`): the
//! KV buckets' keys with their revisions, and writes with compare-and-swap on the revision
//! (a stale revision: 409 naming the key and both revisions, nothing written).
//!
//! Must not: reach the store other than through the operator's core, or write the shared
//! configuration other than through [`crate::shared_config::SharedConfigStore`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use portolan_control::shared_config::{ConfigBucket, SharedConfigError, SharedValue};
use portolan_control::store::ApplianceRecord;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::extract::{JsonBody, PathParam, QueryParams};
use crate::problem::Problem;
use crate::state::ApiState;
use crate::tokens::Identity;

/// One appliance.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApplianceView {
    /// Appliance id.
    pub appliance: String,
    /// Its site.
    pub site: String,
    /// Its software version, as of its latest message.
    pub version: String,
    /// Outbox sequence number of its latest applied message.
    pub last_seq: i64,
    /// When the central applied its latest message (RFC 3339).
    pub last_seen: String,
    /// When the appliance queued its latest message (RFC 3339).
    pub last_sent: String,
    /// Rows waiting in its outbox when it sent its latest message.
    pub backlog: u64,
    /// Messages applied.
    pub messages: u64,
    /// Messages received again and ignored (applied already).
    pub duplicates: u64,
    /// Sequence numbers never received (rows its full outbox did not take).
    pub gaps: u64,
}

impl From<ApplianceRecord> for ApplianceView {
    fn from(r: ApplianceRecord) -> Self {
        use portolan_control::timestamp::format_rfc3339;
        ApplianceView {
            appliance: r.appliance,
            site: r.site,
            version: r.version,
            last_seq: r.last_seq,
            last_seen: format_rfc3339(r.last_seen_us),
            last_sent: format_rfc3339(r.last_sent_us),
            backlog: r.backlog,
            messages: r.messages,
            duplicates: r.duplicates,
            gaps: r.gaps,
        }
    }
}

/// The appliances.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApplianceList {
    /// By id.
    pub appliances: Vec<ApplianceView>,
}

/// The fleet's appliances (on `portolan central`; an appliance answers an empty list).
#[utoipa::path(
    get, path = "/api/v1/fleet/appliances", tag = "fleet",
    responses((status = 200, description = "Appliances", body = ApplianceList))
)]
pub async fn list_appliances(
    State(state): State<ApiState>,
) -> Result<Json<ApplianceList>, Problem> {
    let control = state.control.clone();
    let records = tokio::task::spawn_blocking(move || -> Result<Vec<ApplianceRecord>, String> {
        let core = control.operator().core();
        let st = core.lock().map_err(|e| e.to_string())?;
        st.store().fleet_appliances().map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| Problem::internal("control-plane task", &e))?
    .map_err(|e| Problem::internal("fleet appliances", &e))?;
    Ok(Json(ApplianceList {
        appliances: records.into_iter().map(ApplianceView::from).collect(),
    }))
}

// ---------------------------------------------------------------------- shared configuration

/// One key of a shared-configuration bucket.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SharedEntryView {
    /// The key (role name, `device-default`, or exception id).
    pub key: String,
    /// Its latest revision: name it in `PUT`/`DELETE` to change the key.
    pub revision: u64,
    /// Who changed it last.
    pub actor: String,
    /// Why.
    pub reason: String,
    /// When (RFC 3339).
    pub changed_at: String,
    /// The value: a role, `{"pairings": [...]}` or an exception, as `PUT` takes it.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// A bucket's keys.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SharedEntryList {
    /// `roles`, `baselines` or `exceptions`.
    pub bucket: String,
    /// By key.
    pub entries: Vec<SharedEntryView>,
}

/// `PUT /api/v1/fleet/config/{bucket}/{key}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SharedPut {
    /// The key's revision this change is based on (0: the key must not exist yet). A stale
    /// revision is refused with 409, nothing written.
    #[serde(deserialize_with = "crate::views::de_whole_u64")]
    pub revision: u64,
    /// Why (kept with the value and in every appliance's audit log).
    pub reason: String,
    /// The value: a role (as `PUT /roles/{name}` in the store's form), `{"pairings":
    /// [{"app_proto","transport","port","starttls"}]}` for a baseline, or an exception (`id`,
    /// `kind`, `devices`, `destinations`, `ports`, `app_protos`, `reason`, `owner`, `expires_us`).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// The result of a write.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SharedWritten {
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// The key's new revision.
    pub revision: u64,
}

/// Query of `DELETE /api/v1/fleet/config/{bucket}/{key}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevisionQuery {
    /// The key's revision the deletion is based on.
    pub revision: u64,
}

fn shared_store(
    state: &ApiState,
) -> Result<std::sync::Arc<dyn crate::shared_config::SharedConfigStore>, Problem> {
    state.shared_config.clone().ok_or_else(|| {
        Problem::not_found(
            "the shared configuration is written on portolan central; this appliance applies it",
        )
    })
}

fn bucket_of(name: &str) -> Result<ConfigBucket, Problem> {
    ConfigBucket::from_name(name).ok_or_else(|| {
        Problem::not_found(format!(
            "no bucket `{name}`: roles, baselines or exceptions"
        ))
        .with_field("bucket")
    })
}

fn shared_problem(e: SharedConfigError) -> Problem {
    match e {
        SharedConfigError::Conflict { .. } => {
            Problem::conflict(e.to_string()).with_field("revision")
        }
        SharedConfigError::Invalid { ref field, .. } => {
            let field = field.clone();
            Problem::bad_request(e.to_string()).with_field(field)
        }
        SharedConfigError::Unavailable(_) => Problem::unavailable(e.to_string()),
    }
}

/// The keys of a shared-configuration bucket with their revisions (`portolan central`).
#[utoipa::path(
    get, path = "/api/v1/fleet/config/{bucket}", tag = "fleet",
    params(("bucket" = String, Path, description = "roles, baselines or exceptions")),
    responses(
        (status = 200, description = "Keys", body = SharedEntryList),
        (status = 404, description = "Not a central, or no such bucket", body = Problem,
         content_type = "application/problem+json")
    )
)]
pub async fn list_shared(
    State(state): State<ApiState>,
    PathParam(bucket): PathParam<String>,
) -> Result<Json<SharedEntryList>, Problem> {
    let store = shared_store(&state)?;
    let b = bucket_of(&bucket)?;
    let entries = store.list(b).await.map_err(shared_problem)?;
    Ok(Json(SharedEntryList {
        bucket: b.name().to_string(),
        entries: entries
            .into_iter()
            .map(|e| SharedEntryView {
                key: e.key,
                revision: e.revision,
                actor: e.value.actor,
                reason: e.value.reason,
                changed_at: portolan_control::timestamp::format_rfc3339(e.value.ts_us),
                data: e.value.data,
            })
            .collect(),
    }))
}

/// Writes a key of the shared configuration with compare-and-swap on its revision; every
/// appliance applies it live (`portolan central`).
#[utoipa::path(
    put, path = "/api/v1/fleet/config/{bucket}/{key}", tag = "fleet",
    params(("bucket" = String, Path, description = "roles, baselines or exceptions"),
           ("key" = String, Path, description = "Role name, device-default, or exception id")),
    request_body = SharedPut,
    responses(
        (status = 200, description = "Written", body = SharedWritten),
        (status = 409, description = "The revision given is not the key's latest; nothing written", body = Problem,
         content_type = "application/problem+json"),
        (status = 503, description = "The cluster did not answer", body = Problem,
         content_type = "application/problem+json")
    )
)]
pub async fn put_shared(
    State(state): State<ApiState>,
    Extension(who): Extension<Identity>,
    PathParam((bucket, key)): PathParam<(String, String)>,
    JsonBody(input): JsonBody<SharedPut>,
) -> Result<Json<SharedWritten>, Problem> {
    let store = shared_store(&state)?;
    let b = bucket_of(&bucket)?;
    let reason = input.reason.trim();
    if reason.is_empty() || reason.len() > 4096 {
        return Err(
            Problem::bad_request("reason is required (at most 4096 bytes)").with_field("reason"),
        );
    }
    let value = SharedValue {
        schema: portolan_control::shared_config::SHARED_SCHEMA_VERSION,
        actor: who.actor(),
        reason: reason.to_string(),
        ts_us: portolan_control::timestamp::now_us(),
        data: input.data,
    };
    let revision = store
        .put(b, &key, &value, input.revision)
        .await
        .map_err(shared_problem)?;
    tracing::info!(bucket = b.bucket(), key, revision, actor = %value.actor, "shared configuration written");
    Ok(Json(SharedWritten {
        bucket: b.name().to_string(),
        key,
        revision,
    }))
}

/// Deletes a key of the shared configuration with compare-and-swap on its revision (an
/// exception is revoked, a role deleted on every appliance; approved pairings stay).
#[utoipa::path(
    delete, path = "/api/v1/fleet/config/{bucket}/{key}", tag = "fleet",
    params(("bucket" = String, Path, description = "roles, baselines or exceptions"),
           ("key" = String, Path, description = "Role name, device-default, or exception id"),
           RevisionQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "The revision given is not the key's latest; nothing deleted", body = Problem,
         content_type = "application/problem+json")
    )
)]
pub async fn delete_shared(
    State(state): State<ApiState>,
    Extension(who): Extension<Identity>,
    PathParam((bucket, key)): PathParam<(String, String)>,
    QueryParams(q): QueryParams<RevisionQuery>,
) -> Result<StatusCode, Problem> {
    let store = shared_store(&state)?;
    let b = bucket_of(&bucket)?;
    store
        .delete(b, &key, q.revision)
        .await
        .map_err(shared_problem)?;
    tracing::info!(bucket = b.bucket(), key, revision = q.revision, actor = %who.actor(), "shared configuration key deleted");
    Ok(StatusCode::NO_CONTENT)
}
