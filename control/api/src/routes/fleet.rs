//! The fleet's appliances as the central knows them (`GET /api/v1/fleet/appliances`): each
//! appliance that sent messages, with its site, version, when it was last heard from, its
//! outbox backlog as of its latest message and what the central applied. An appliance's own API
//! answers an empty list.
//!
//! Must not: change anything (read only) or reach the store other than through the operator's
//! core.

use axum::extract::State;
use axum::Json;
use portolan_control::store::ApplianceRecord;
use serde::Serialize;
use utoipa::ToSchema;

use crate::problem::Problem;
use crate::state::ApiState;

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
