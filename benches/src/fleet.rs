//! The benchmark fleet: `sites` sites of `sensors` sensors each, seeded in
//! Postgres, and its messages: one message is one site's readings, all
//! with the message's timestamp.

use std::collections::HashMap;
use std::fmt::Write as _;
use stoker_metadata::Actor;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug, Unit, ValidRange};
use stoker_metadata::{NewSensor, NewSite};
use stoker_postgres::Pool;
use stoker_timeseries::LineBatch;

/// The site of the readiness probe: its readings never count as the
/// benchmark's (every count query excludes it).
pub const PROBE_SITE: &str = "bench-probe";
/// The probe site's one sensor.
pub const PROBE_SENSOR: &str = "probe";

/// Valid range of every benchmark sensor: wide enough for every value.
const RANGE: (f64, f64) = (-1.0e6, 1.0e6);

#[derive(Debug, Clone)]
struct Sensor {
    key: SensorKey,
    sensor_type: SensorType,
    unit: Unit,
}

/// Sites, sensors and the topics they publish on.
#[derive(Debug, Clone)]
pub struct Fleet {
    sites: Vec<SiteSlug>,
    topics: Vec<String>,
    sensors: Vec<Sensor>,
    index: HashMap<String, usize>,
}

impl Fleet {
    /// `bench-site-000` … with sensors `sensor_00` … alternately of type
    /// `temperature` (°C) and `pressure` (bar).
    pub fn new(sites: usize, sensors: usize) -> anyhow::Result<Self> {
        if sites == 0 || sensors == 0 {
            return Err(anyhow!("the fleet needs at least one site and one sensor"));
        }
        let sites: Vec<SiteSlug> = (0..sites)
            .map(|site| SiteSlug::parse(format!("bench-site-{site:03}")))
            .collect::<Result<_, _>>()?;
        let sensors = (0..sensors)
            .map(|sensor| {
                let (sensor_type, unit) = if sensor % 2 == 0 {
                    ("temperature", "°C")
                } else {
                    ("pressure", "bar")
                };
                Ok(Sensor {
                    key: SensorKey::parse(format!("sensor_{sensor:02}"))?,
                    sensor_type: SensorType::parse(sensor_type)?,
                    unit: Unit::parse(unit)?,
                })
            })
            .collect::<Result<_, stoker_domain::ParseError>>()?;
        let topics = sites
            .iter()
            .map(|site| format!("sites/{site}/telemetry"))
            .collect();
        let index = sites
            .iter()
            .enumerate()
            .map(|(position, site)| (site.as_str().to_owned(), position))
            .collect();
        Ok(Self {
            sites,
            topics,
            sensors,
            index,
        })
    }

    /// Number of sites.
    pub fn site_count(&self) -> usize {
        self.sites.len()
    }

    /// Readings in one message (one per sensor).
    pub fn readings_per_message(&self) -> usize {
        self.sensors.len()
    }

    /// The telemetry topic of site number `site`.
    pub fn topic(&self, site: usize) -> &str {
        &self.topics[site]
    }

    /// The key of the first sensor of every site.
    pub fn first_sensor(&self) -> &str {
        self.sensors[0].key.as_str()
    }

    /// The key of sensor `position` of every site (0 ≤ position <
    /// readings_per_message).
    pub fn sensor(&self, position: usize) -> &str {
        self.sensors[position].key.as_str()
    }

    /// The slug of the site at `index` (0 ≤ index < site_count).
    pub fn site(&self, index: usize) -> &str {
        self.sites[index].as_str()
    }

    /// The position of a site, from its slug.
    pub fn site_index(&self, slug: &str) -> Option<usize> {
        self.index.get(slug).copied()
    }

    /// The value of sensor `sensor` in the `seq`-th message of a site:
    /// varied, one decimal, inside the valid range.
    pub fn value(seq: u64, sensor: usize) -> f64 {
        ((seq.wrapping_mul(31) + sensor as u64 * 17) % 2000) as f64 / 10.0
    }

    /// The telemetry payload `{"ts": …, "values": {…}}` of one message.
    pub fn payload(&self, seq: u64, ts: i64) -> Bytes {
        let mut body = String::with_capacity(32 + self.sensors.len() * 20);
        let _ = write!(body, "{{\"ts\":{ts},\"values\":{{");
        for (position, sensor) in self.sensors.iter().enumerate() {
            if position > 0 {
                body.push(',');
            }
            let _ = write!(body, "\"{}\":{:.1}", sensor.key, Self::value(seq, position));
        }
        body.push_str("}}");
        Bytes::from(body)
    }

    /// Appends the readings of one message as line protocol, exactly as
    /// Stoker would write them.
    pub fn push_lines(&self, batch: &mut LineBatch, site: usize, seq: u64, ts: i64) {
        let Ok(timestamp) = EpochMillis::from_millis(ts) else {
            return;
        };
        for (position, sensor) in self.sensors.iter().enumerate() {
            batch.push(
                &self.sites[site],
                &sensor.key,
                &sensor.sensor_type,
                Self::value(seq, position),
                timestamp,
            );
        }
    }

    /// Appends the readings of one message as one line protocol line in
    /// Telegraf's shape (`inputs.modbus`): a field per sensor, the site as
    /// tag `site`, a nanosecond timestamp:
    /// `modbus,site=…,slave_id=1 sensor_00=12.3,sensor_01=… 1733565600000000000`.
    pub fn push_fields_line(&self, body: &mut String, site: usize, seq: u64, ts: i64) {
        let _ = write!(body, "modbus,site={},slave_id=1 ", self.sites[site]);
        for (position, sensor) in self.sensors.iter().enumerate() {
            if position > 0 {
                body.push(',');
            }
            let _ = write!(body, "{}={:.1}", sensor.key, Self::value(seq, position));
        }
        let _ = writeln!(body, " {ts}000000");
    }

    /// Creates every site and sensor, and the probe site, through
    /// `stoker-metadata` (several sites at once).
    pub async fn seed(&self, pool: &Pool) -> anyhow::Result<()> {
        let range = ValidRange::new(Some(RANGE.0), Some(RANGE.1))?;
        let probe = (
            SiteSlug::parse(PROBE_SITE)?,
            vec![Sensor {
                key: SensorKey::parse(PROBE_SENSOR)?,
                sensor_type: SensorType::parse("temperature")?,
                unit: Unit::parse("°C")?,
            }],
        );
        let mut work: Vec<(SiteSlug, Vec<Sensor>)> = self
            .sites
            .iter()
            .map(|site| (site.clone(), self.sensors.clone()))
            .collect();
        work.push(probe);
        let workers = 8.min(work.len());
        let mut shares: Vec<Vec<(SiteSlug, Vec<Sensor>)>> = vec![Vec::new(); workers];
        for (position, item) in work.into_iter().enumerate() {
            shares[position % workers].push(item);
        }
        let mut tasks = Vec::new();
        for share in shares {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                for (slug, sensors) in share {
                    let site = NewSite::parse(slug.as_str(), slug.as_str(), "UTC")
                        .map_err(|(field, reason)| anyhow!("site {slug}: {field}: {reason}"))?;
                    stoker_metadata::create_site(&pool, &Actor::Cli, &site)
                        .await
                        .with_context(|| format!("creating site {slug}"))?;
                    for sensor in sensors {
                        let new = NewSensor {
                            key: sensor.key.clone(),
                            sensor_type: sensor.sensor_type.clone(),
                            unit: sensor.unit.clone(),
                            kind: stoker_domain::SensorKind::Numeric,
                            states: stoker_domain::States::default(),
                            range,
                        };
                        stoker_metadata::create_sensor(&pool, &Actor::Cli, &slug, &new)
                            .await
                            .with_context(|| format!("creating sensor {slug}/{}", sensor.key))?;
                    }
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await.context("seeding task")??;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_and_lines_carry_the_same_readings() {
        let fleet = Fleet::new(2, 3).unwrap();
        let payload = fleet.payload(7, 1_700_000_000_000);
        let parsed: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(parsed["ts"], 1_700_000_000_000_i64);
        assert_eq!(parsed["values"].as_object().unwrap().len(), 3);
        assert_eq!(parsed["values"]["sensor_01"], Fleet::value(7, 1));
        let mut batch = LineBatch::default();
        fleet.push_lines(&mut batch, 1, 7, 1_700_000_000_000);
        assert_eq!(batch.len(), 3);
        assert!(
            batch.as_str().starts_with(
                "readings,site=bench-site-001,sensor=sensor_00,type=temperature value="
            )
        );
        assert_eq!(fleet.topic(1), "sites/bench-site-001/telemetry");
        assert_eq!(fleet.site_index("bench-site-001"), Some(1));
    }
}
