//! History in local days: a site's `history?every=1d` begins at its
//! local midnight, across daylight-saving changes.

use crate::helpers::*;
use crate::history::{csv_lines, get_text};
use reqwest::StatusCode;
use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug};
use stoker_timeseries::LineBatch;

#[tokio::test]
async fn a_day_of_history_starts_at_the_sites_local_midnight_across_a_clock_change() {
    // boiler-house-1 is in Europe/Berlin; its clocks went back an hour on
    // Sunday 2026-10-25 (the last of October), so that day had 25 hours.
    let app = spawn_seeded_app().await;
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let sensor = SensorKey::parse("b1_steam_pressure").unwrap();
    let kind = SensorType::parse("pressure").unwrap();
    let at = |text: &str| EpochMillis::parse_rfc3339(text).unwrap().as_millis();
    // One reading an hour, valued by the local day of the month it falls on.
    let (first, last) = (at("2026-10-23T22:00:00Z"), at("2026-10-26T23:00:00Z"));
    let mut batch = LineBatch::default();
    let mut hour = first;
    while hour < last {
        let local_day = if hour < at("2026-10-24T22:00:00Z") {
            24.0
        } else if hour < at("2026-10-25T23:00:00Z") {
            25.0
        } else {
            26.0
        };
        batch.push(
            &site,
            &sensor,
            &kind,
            local_day,
            EpochMillis::from_millis(hour).unwrap(),
        );
        hour += 3_600_000;
    }
    app.influx.influx().write(&batch).await.unwrap();

    let path = |extra: &str| {
        format!(
            "/api/v1/sites/boiler-house-1/sensors/b1_steam_pressure/history?start=2026-10-24T00:00:00%2B02:00&end=2026-10-27T00:00:00%2B01:00&every=1d{extra}"
        )
    };
    let (status, body) = app.get(&path("")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let points: Vec<(i64, f64)> = body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|point| {
            (
                EpochMillis::parse_rfc3339(point["ts"].as_str().unwrap())
                    .unwrap()
                    .as_millis(),
                point["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        points,
        vec![
            (at("2026-10-23T22:00:00Z"), 24.0),
            (at("2026-10-24T22:00:00Z"), 25.0),
            (at("2026-10-25T23:00:00Z"), 26.0),
        ],
        "each day from local midnight (CEST, then CET) to the next"
    );
    // The CSV answer counts the hours of each day: 24, 25, 24.
    let (status, _, csv) = get_text(&app, &path("&format=csv&agg=max"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    let counts: Vec<&str> = csv_lines(&csv)[1..].iter().map(|row| row[6]).collect();
    assert_eq!(counts, ["24", "25", "24"], "{csv}");
    // Buckets shorter than a day stay aligned to the epoch (UTC hours).
    let (status, body) = app.get(&path("").replace("every=1d", "every=12h")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        EpochMillis::parse_rfc3339(body["points"][0]["ts"].as_str().unwrap())
            .unwrap()
            .as_millis(),
        at("2026-10-23T12:00:00Z")
    );
}
