//! The first answer of each phase, checked: what it must hold.

use super::*;

/// Checks the first answer of a phase; says what it found.
pub(crate) type BodyCheck<'a> = &'a dyn Fn(&[u8]) -> anyhow::Result<String>;

pub(crate) fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned()
}

pub(crate) fn check_healthz_body(body: &[u8]) -> anyhow::Result<String> {
    let value: Value = serde_json::from_slice(body).context("decoding /healthz")?;
    if value["status"] != "ok" {
        return Err(anyhow!("unexpected /healthz body: {}", excerpt(body)));
    }
    Ok("status ok".into())
}

pub(crate) fn check_latest_body(body: &[u8], sensors: usize) -> anyhow::Result<String> {
    let value: Value = serde_json::from_slice(body).context("decoding /latest")?;
    let readings = value["readings"].as_array().cloned().unwrap_or_default();
    let with_value = readings
        .iter()
        .filter(|reading| reading["value"].is_f64())
        .count();
    if readings.len() != sensors || with_value != sensors {
        return Err(anyhow!(
            "expected {sensors} readings with values, got {} ({with_value} with values): {}",
            readings.len(),
            excerpt(body)
        ));
    }
    Ok(format!("{sensors} readings with values"))
}

pub(crate) fn check_points(points: usize, body: &[u8]) -> anyhow::Result<String> {
    if points.abs_diff(HISTORY_BUCKETS) > 1 {
        return Err(anyhow!(
            "expected {HISTORY_BUCKETS} points (±1), got {points}: {}",
            excerpt(body)
        ));
    }
    Ok(format!("{} points", thousands(points as u64)))
}

pub(crate) fn check_history_body(body: &[u8]) -> anyhow::Result<String> {
    let value: Value = serde_json::from_slice(body).context("decoding /history")?;
    let points = value["points"].as_array().map_or(0, Vec::len);
    check_points(points, body)
}

pub(crate) fn check_influx_body(body: &[u8]) -> anyhow::Result<String> {
    let value: Value = serde_json::from_slice(body).context("decoding InfluxDB's answer")?;
    let points = value["results"][0]["series"][0]["values"]
        .as_array()
        .map_or(0, Vec::len);
    check_points(points, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_checked() {
        assert!(check_healthz_body(br#"{"status":"ok"}"#).is_ok());
        let latest = br#"{"site":"bench-1","readings":[{"sensor":"a","value":1.5},{"sensor":"b","value":null}]}"#;
        assert!(check_latest_body(latest, 2).is_err());
        assert!(check_latest_body(latest, 1).is_err());
        let points: Vec<Value> = (0..1_440)
            .map(|ts| json!({"ts": ts, "value": 1.0}))
            .collect();
        let history = serde_json::to_vec(&json!({ "points": points })).unwrap();
        assert!(check_history_body(&history).is_ok());
        assert!(check_history_body(br#"{"points":[]}"#).is_err());
    }
}
