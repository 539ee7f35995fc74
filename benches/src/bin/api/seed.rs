//! The run's data: an admin key, the site and its sensors through the
//! API, their latest values, and 24 h of history straight into InfluxDB.

use super::*;

/// Seeds the site and its sensors through the API, their latest values
/// through `POST …/telemetry` (waiting until Redis holds all of them), and
/// 24 h of 1 Hz history of one sensor straight into InfluxDB. Returns the
/// end of that history (epoch ms, a whole minute; exclusive).
pub(crate) async fn seed(
    args: &Args,
    server: SocketAddr,
    token: &str,
    influx_db: &TestInflux,
    redis: &TestRedis,
) -> anyhow::Result<i64> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let base = format!("http://{server}/api/v1");
    let post = |path: String, body: Value| {
        let request = client
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body);
        async move {
            let response = request
                .send()
                .await
                .with_context(|| format!("POST {path}"))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if !status.is_success() {
                return Err(anyhow!("POST {path} answered {status}: {text}"));
            }
            anyhow::Ok(text)
        }
    };
    post(
        "/sites".into(),
        json!({"slug": SITE, "name": "Benchmark boiler house 1", "timezone": "UTC"}),
    )
    .await?;
    for index in 0..args.sensors {
        let (sensor_type, unit) = sensor_kind(index);
        post(
            format!("/sites/{SITE}/sensors"),
            json!({"key": sensor_key(index), "type": sensor_type, "unit": unit, "min": -1.0e6, "max": 1.0e6}),
        )
        .await?;
    }
    progress!(
        "seed: site {SITE} with {} sensors created through the API",
        args.sensors
    );

    // Latest values: one telemetry body with every sensor.
    let now = wall_millis();
    let values: serde_json::Map<String, Value> = (0..args.sensors)
        .map(|index| (sensor_key(index), json!(100.0 + index as f64 + 0.5)))
        .collect();
    // Ingestion learns new sensors asynchronously (Postgres notifications):
    // right after their creation some may still be refused as unknown. The
    // same body again is harmless (same points), so retry for a while.
    let posting = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let answer = post(
            format!("/sites/{SITE}/telemetry"),
            json!({"ts": now, "values": values}),
        )
        .await?;
        let accepted = serde_json::from_str::<Value>(&answer)
            .ok()
            .and_then(|body| body["accepted"].as_u64());
        if accepted == Some(args.sensors as u64) {
            break;
        }
        if posting.elapsed() > Duration::from_secs(15) {
            return Err(anyhow!(
                "POST /sites/{SITE}/telemetry accepted {accepted:?} of {} readings after {attempts} attempts over 15 s: {answer}",
                args.sensors
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if attempts > 1 {
        progress!(
            "seed: POST /telemetry refused some just-created sensors as unknown; all {} accepted at attempt {attempts}, {:.0?} after the first",
            args.sensors,
            posting.elapsed()
        );
    }
    let site = SiteSlug::parse(SITE)?;
    let keys: Vec<SensorKey> = (0..args.sensors)
        .map(|index| SensorKey::parse(sensor_key(index)))
        .collect::<Result<_, _>>()?;
    let cache = redis.cache();
    let waiting = Instant::now();
    loop {
        let cached = cache.latest(&site, &keys).await.map_or(0, |values| {
            values.iter().filter(|value| value.is_some()).count()
        });
        if cached == keys.len() {
            break;
        }
        if waiting.elapsed() > Duration::from_secs(30) {
            return Err(anyhow!(
                "only {cached} of {} latest values reached Redis within 30 s of the telemetry POST",
                keys.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    progress!(
        "seed: {} latest values posted to /telemetry, all in Redis after {:.0?}",
        args.sensors,
        waiting.elapsed()
    );

    // History: 86,400 readings, 1 s apart, ending at the last whole minute.
    let end = now - now.rem_euclid(HISTORY_EVERY_MS);
    let start = end - HISTORY_POINTS * 1000;
    let sensor = &keys[HISTORY_SENSOR];
    let sensor_type = SensorType::parse(sensor_kind(HISTORY_SENSOR).0)?;
    let influx = influx_db.influx();
    let writing = Instant::now();
    let mut batch = LineBatch::with_capacity(HISTORY_BATCH);
    for second in 0..HISTORY_POINTS {
        let value = 180.0 + 20.0 * (second as f64 / 3600.0).sin() + (second % 7) as f64 * 0.1;
        batch.push(
            &site,
            sensor,
            &sensor_type,
            value,
            EpochMillis::from_millis(start + second * 1000)?,
        );
        if batch.len() >= HISTORY_BATCH {
            influx.write(&batch).await.context("writing history")?;
            batch.clear();
        }
    }
    influx.write(&batch).await.context("writing history")?;
    progress!(
        "seed: {} readings of {SITE}/{} (1 Hz, 24 h) written to InfluxDB in {}-line batches in {:.1?}",
        thousands(HISTORY_POINTS as u64),
        sensor,
        thousands(HISTORY_BATCH as u64),
        writing.elapsed()
    );
    // What the rollup job of a running platform does: its first pass on a
    // database without a rollup backfills every minute since the oldest
    // reading (`stoker api` ran `stoker influx setup` at start).
    let rolling = Instant::now();
    let pass = stoker_analytics::rollup::pass_now(influx)
        .await
        .context("rolling the history up into readings_1m")?;
    progress!(
        "seed: the rollup job's backfill wrote {} readings_1m points (from {} readings) in {:.1?}",
        thousands(pass.points),
        thousands(pass.readings),
        rolling.elapsed()
    );
    Ok(end)
}
