//! Configuration validated as data: generated scoring, attribution and learning tunables (NaN,
//! infinities, negatives, zero windows, unordered severities mixed with usable values) are either
//! refused with the bad field named — and that field really is out of its range — or accepted, and
//! then every alert the engine raises is consistent with the thresholds: its score is at least
//! `alert_threshold` and its severity is the one the thresholds give that score.

mod common;

use common::{at, fixture, flow, mail_beacon, registry, roles_with_proxy};
use portolan_control::scoring::ScoringConfig;
use portolan_control::{ControlConfig, ControlError, ControlPlane, Store};
use proptest::prelude::*;

/// A real number in `lo..=hi`, or (when `dirty`) sometimes an unusable one.
fn real(lo: f64, hi: f64, dirty: bool) -> BoxedStrategy<f64> {
    if !dirty {
        return (lo..=hi).boxed();
    }
    prop_oneof![
        40 => lo..=hi,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => -100.0..0.0f64,
        1 => (hi + 1.0)..(hi * 10.0 + 10.0),
    ]
    .boxed()
}

/// A window in seconds, or (when `dirty`) sometimes a zero or negative one.
fn window(dirty: bool) -> BoxedStrategy<i64> {
    if !dirty {
        return (1i64..1_000_000).boxed();
    }
    prop_oneof![40 => 1i64..1_000_000, 1 => Just(0i64), 1 => -1_000_000i64..0].boxed()
}

/// Half the configurations are clean (every value in range, thresholds ordered), so accepted
/// ones are judged too; the other half mix unusable values in.
fn config() -> impl Strategy<Value = ControlConfig> {
    any::<bool>().prop_flat_map(config_of)
}

prop_compose! {
    fn config_of(dirty: bool)(
        thresholds in (real(0.5, 100.0, dirty), real(0.0, 100.0, dirty), real(0.0, 100.0, dirty), real(0.0, 100.0, dirty)),
        points in proptest::collection::vec(real(0.0, 60.0, dirty), 11),
        factors in (real(0.0, 1.0, dirty), real(0.0, 1.0, dirty), real(0.0, 5.0, dirty)),
        windows in (window(dirty), window(dirty), window(dirty), window(dirty), window(dirty)),
        sessions in if dirty { (0u64..40, 0u64..10, 0u64..6).boxed() } else { (2u64..40, 3u64..10, 1u64..6).boxed() },
        confidences in proptest::collection::vec(real(0.0, 1.0, dirty), 9),
        cache in if dirty { prop_oneof![1 => Just(0usize), 8 => 1usize..100_000].boxed() } else { (1usize..100_000).boxed() },
    ) -> ControlConfig {
        let mut c = ControlConfig::default();
        let s = &mut c.scoring;
        let mut t = [thresholds.0, thresholds.1, thresholds.2, thresholds.3];
        if !dirty {
            t.sort_by(f64::total_cmp);
        }
        (s.alert_threshold, s.severity_medium, s.severity_high, s.severity_critical) = (t[0], t[1], t[2], t[3]);
        for (slot, v) in [
            &mut s.device_baseline_points, &mut s.role_baseline_points,
            &mut s.unmanaged_identity_points, &mut s.repetition_max_points,
            &mut s.regular_recurrence_points, &mut s.persistent_connection_points,
            &mut s.locked_points, &mut s.background_points, &mut s.idle_points,
            &mut s.supervised_points, &mut s.managed_points,
        ].into_iter().zip(points) {
            *slot = v;
        }
        (s.one_off_factor, s.exception_factor, s.regularity_cv_max) = factors;
        (s.window_s, s.persistent_connection_s, s.interaction_window_s) =
            (windows.0, windows.1, windows.2);
        (s.repetition_saturation_sessions, s.regularity_min_sessions) = (sessions.0, sessions.1);
        let a = &mut c.attribution;
        for (slot, v) in [
            &mut a.tls_sni_confidence, &mut a.quic_sni_confidence, &mut a.http_host_confidence,
            &mut a.dns_answer_confidence, &mut a.foreground_app_confidence,
            &mut a.unresolved_bundle_factor, &mut a.lease_confidence,
            &mut a.inventory_ip_confidence, &mut a.inventory_ip_nearest_confidence,
        ].into_iter().zip(confidences) {
            *slot = v;
        }
        a.dns_max_age_s = windows.3;
        a.dns_cache_capacity = cache;
        c.learning.bucket_s = windows.4;
        c.learning.min_sessions = sessions.2;
        c
    }
}

/// Whether the named field's value is out of its documented range (an oracle written apart from
/// the validator: it reads the value by name from the TOML form of the configuration).
fn out_of_range(cfg: &ControlConfig, field: &str) -> bool {
    let value = serde_json::to_value(cfg).expect("json");
    let (section, key) = field.split_once('.').expect("dotted");
    let v = &value[section][key];
    let s: &ScoringConfig = &cfg.scoring;
    let real = |lo: f64, hi: f64| {
        // NaN and infinities serialise as null.
        v.as_f64().is_none_or(|x| !(lo..=hi).contains(&x))
    };
    match field {
        "scoring.alert_threshold" => real(f64::MIN_POSITIVE, 1000.0) || s.alert_threshold <= 0.0,
        "scoring.severity_medium" => real(0.0, 1000.0) || s.severity_medium < s.alert_threshold,
        "scoring.severity_high" => real(0.0, 1000.0) || s.severity_high < s.severity_medium,
        "scoring.severity_critical" => real(0.0, 1000.0) || s.severity_critical < s.severity_high,
        "scoring.one_off_factor" | "scoring.exception_factor" => real(0.0, 1.0),
        "scoring.regularity_cv_max" => real(0.0, 100.0),
        "scoring.repetition_saturation_sessions" => v.as_u64().is_none_or(|n| n < 2),
        "scoring.regularity_min_sessions" => v.as_u64().is_none_or(|n| n < 3),
        "learning.min_sessions" => v.as_u64().is_none_or(|n| n < 1),
        "attribution.dns_cache_capacity" => v.as_u64().is_none_or(|n| n < 1),
        f if f.ends_with("_s") => v.as_i64().is_none_or(|n| n <= 0),
        f if f.starts_with("attribution.") => real(0.0, 1.0),
        f if f.ends_with("_points") => real(0.0, 1000.0),
        other => panic!("the validator named an unknown field {other}"),
    }
}

/// The mail beacon of the scenarios: TLS to 8443 from a managed, supervised iPhone, every 15
/// minutes, then a one-off HTTP session to 8080 from the iPad.
fn judge(cp: &mut ControlPlane) -> Vec<portolan_control::Alert> {
    let mut alerts = Vec::new();
    for i in 0..6 {
        let mut f = mail_beacon(i, 700);
        f.port_mismatch = Some(true);
        alerts.extend(cp.ingest.ingest_flow(&f).expect("ingest"));
    }
    let mut f = flow(
        "10.10.0.22",
        "198.51.100.80",
        8080,
        "http",
        at("2024-05-01T10:01:00Z"),
        5,
    );
    f.port_mismatch = Some(true);
    alerts.extend(cp.ingest.ingest_flow(&f).expect("ingest"));
    alerts
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn a_configuration_is_refused_naming_a_bad_field_or_alerts_follow_its_thresholds(cfg in config()) {

        let store = Store::open_in_memory().expect("store");
        match ControlPlane::new(store, roles_with_proxy(), cfg.clone()) {
            Err(ControlError::Setting(bad)) => {
                prop_assert!(out_of_range(&cfg, &bad.field), "{bad} but the value is in range");
                prop_assert!(bad.to_string().contains(&bad.field));
            }
            Err(other) => prop_assert!(false, "refused without naming a field: {other}"),
            Ok(cp) => {
                let mut cp = cp.with_port_registry(registry());
                cp.operator.import_inventory(&[fixture("jamf_mobile_devices_detail.json")], "test")
                    .expect("inventory");
                let s = &cfg.scoring;
                let alerts = judge(&mut cp);
                for a in alerts {
                    prop_assert!(a.score.is_finite());
                    prop_assert!(a.score >= s.alert_threshold, "score {} below {}", a.score, s.alert_threshold);
                    prop_assert_eq!(a.severity, s.severity_for(a.score));
                }
            }
        }
    }
}

#[test]
fn nan_threshold_in_a_config_file_is_refused_naming_the_field() {
    let err = ControlConfig::parse(
        "[scoring]\nalert_threshold = nan\n",
        std::path::Path::new("control.toml"),
    )
    .expect_err("nan");
    let text = err.to_string();
    assert!(
        text.contains("control.toml") && text.contains("scoring.alert_threshold"),
        "{text}"
    );
}
