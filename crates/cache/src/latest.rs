//! Latest value per sensor: `latest:{site}:{sensor}`, TTL 300 s.

use serde::{Deserialize, Serialize};
use stoker_domain::{EpochMillis, ReadingValue, SensorKey, SensorType, SiteSlug, Unit};

use crate::{Cache, Error, LATEST_TTL, Result};

/// A sensor's latest reading as cached:
/// `{"value":…, "ts":…, "type":…, "unit":…}` with `ts` in epoch milliseconds
/// and `value` native to the sensor's kind (`81.5`, `true`, `"firing"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatestValue {
    /// The reading.
    pub value: ReadingValue,
    /// Its timestamp.
    pub ts: EpochMillis,
    /// The sensor's type.
    #[serde(rename = "type")]
    pub sensor_type: SensorType,
    /// The sensor's unit.
    pub unit: Unit,
}

/// Sets each key whose stored `ts` is older than (or equal to) the new one,
/// or that is missing; `ARGV[1]` is the TTL, then `ts`, JSON pairs per key.
/// The timestamp is read with a pattern rather than a JSON decode: the
/// value is always written by this script, with `ts` as an integer (and no
/// value holds a quote: a state's name has none).
const SET_IF_NEWER: &str = r#"
local ttl = ARGV[1]
local written = 0
for index, key in ipairs(KEYS) do
    local ts = tonumber(ARGV[index * 2])
    local current = redis.call('GET', key)
    local current_ts = nil
    if current then
        current_ts = tonumber(string.match(current, '"ts":(%-?%d+)'))
    end
    if current_ts == nil or ts >= current_ts then
        redis.call('SET', key, ARGV[index * 2 + 1], 'EX', ttl)
        written = written + 1
    end
end
return written
"#;

/// The script, hashed once.
static SET_IF_NEWER_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(SET_IF_NEWER));

/// What writing a sensor's latest value needs besides the reading, encoded
/// once per sensor ([`Cache::latest_slot`]): its key, prefix included, and
/// the end of its JSON (`,"type":…,"unit":…}`). Ingestion keeps one per
/// registered sensor, so that a batch costs no key or JSON building
/// beyond the value and its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestSlot {
    key: Box<str>,
    tail: Box<[u8]>,
}

impl LatestSlot {
    /// The Redis key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Appends the JSON of a [`LatestValue`] of this sensor, byte for byte
    /// what serializing it gives.
    fn push_json(&self, out: &mut Vec<u8>, value: &ReadingValue, ts: EpochMillis) -> Result<()> {
        out.extend_from_slice(br#"{"value":"#);
        serde_json::to_writer(&mut *out, value).map_err(|error| Error::InvalidValue {
            key: self.key.to_string(),
            reason: error.to_string(),
        })?;
        out.extend_from_slice(br#","ts":"#);
        out.extend_from_slice(itoa::Buffer::new().format(ts.as_millis()).as_bytes());
        out.extend_from_slice(&self.tail);
        Ok(())
    }
}

impl Cache {
    /// The [`LatestSlot`] of a sensor: its key and the constant part of its
    /// cached JSON.
    pub fn latest_slot(
        &self,
        site: &SiteSlug,
        sensor: &SensorKey,
        sensor_type: &SensorType,
        unit: &Unit,
    ) -> LatestSlot {
        #[derive(Serialize)]
        struct Tail<'a> {
            #[serde(rename = "type")]
            sensor_type: &'a SensorType,
            unit: &'a Unit,
        }
        // `{"type":…,"unit":…}` less its `{`: serializing two strings
        // cannot fail.
        let object = serde_json::to_vec(&Tail { sensor_type, unit }).unwrap_or_default();
        let mut tail = Vec::with_capacity(object.len());
        tail.push(b',');
        tail.extend_from_slice(object.get(1..).unwrap_or_default());
        LatestSlot {
            key: self.latest_key(site, sensor).into_boxed_str(),
            tail: tail.into_boxed_slice(),
        }
    }

    /// Writes latest values in one round trip; each replaces the cached one
    /// only if it is not older. Returns how many keys changed.
    pub async fn set_latest(
        &self,
        values: &[(&SiteSlug, &SensorKey, &LatestValue)],
    ) -> Result<usize> {
        let slots: Vec<LatestSlot> = values
            .iter()
            .map(|(site, sensor, latest)| {
                self.latest_slot(site, sensor, &latest.sensor_type, &latest.unit)
            })
            .collect();
        let keyed: Vec<_> = slots
            .iter()
            .zip(values)
            .map(|(slot, (_, _, latest))| (slot, &latest.value, latest.ts))
            .collect();
        self.set_latest_slots(&keyed).await
    }

    /// [`Cache::set_latest`] for sensors whose [`LatestSlot`] the caller
    /// keeps: one `EVALSHA` (the script loaded when Redis lacks it), its
    /// arguments packed once.
    pub async fn set_latest_slots(
        &self,
        values: &[(&LatestSlot, &ReadingValue, EpochMillis)],
    ) -> Result<usize> {
        if values.is_empty() {
            return Ok(0);
        }
        let script = &*SET_IF_NEWER_SCRIPT;
        let mut command = redis::cmd("EVALSHA");
        command.arg(script.get_hash()).arg(values.len());
        for (slot, _, _) in values {
            command.arg(slot.key());
        }
        command.arg(LATEST_TTL.as_secs());
        let mut json = Vec::with_capacity(128);
        for (slot, value, ts) in values {
            json.clear();
            slot.push_json(&mut json, value, *ts)?;
            command.arg(ts.as_millis()).arg(json.as_slice());
        }
        let mut connection = self.connection.clone();
        match command.query_async(&mut connection).await {
            Err(error)
                if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                script.load_async(&mut connection).await?;
                Ok(command.query_async(&mut connection).await?)
            }
            other => Ok(other?),
        }
    }

    /// The cached latest values of these sensors of a site, in order;
    /// `None` where nothing is cached (expired, or never written).
    pub async fn latest(
        &self,
        site: &SiteSlug,
        sensors: &[SensorKey],
    ) -> Result<Vec<Option<LatestValue>>> {
        if sensors.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = sensors
            .iter()
            .map(|sensor| self.latest_key(site, sensor))
            .collect();
        let mut connection = self.connection.clone();
        let raw: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut connection)
            .await?;
        raw.into_iter()
            .zip(keys)
            .map(|(value, key)| {
                value
                    .map(|json| {
                        serde_json::from_str(&json).map_err(|error| Error::InvalidValue {
                            key,
                            reason: error.to_string(),
                        })
                    })
                    .transpose()
            })
            .collect()
    }

    /// Like [`Cache::latest`], but only each value and its time: the
    /// dashboard's hot path, which knows types and units already. Values
    /// are decoded straight from Redis' reply, without copying them.
    pub async fn latest_points(
        &self,
        site: &SiteSlug,
        sensors: &[SensorKey],
    ) -> Result<Vec<Option<(ReadingValue, EpochMillis)>>> {
        /// The two fields read; `type` and `unit` are skipped unread.
        #[derive(Deserialize)]
        struct Point {
            value: ReadingValue,
            ts: EpochMillis,
        }

        if sensors.is_empty() {
            return Ok(Vec::new());
        }
        let mut command = redis::cmd("MGET");
        for sensor in sensors {
            command.arg(self.latest_key(site, sensor));
        }
        let mut connection = self.connection.clone();
        let reply: redis::Value = command.query_async(&mut connection).await?;
        let redis::Value::Array(items) = reply else {
            return Err(Error::InvalidValue {
                key: self.latest_key(site, &sensors[0]),
                reason: format!("MGET answered {reply:?}, not an array"),
            });
        };
        items
            .iter()
            .zip(sensors)
            .map(|(item, sensor)| {
                let invalid = |reason: String| Error::InvalidValue {
                    key: self.latest_key(site, sensor),
                    reason,
                };
                match item {
                    redis::Value::Nil => Ok(None),
                    redis::Value::BulkString(bytes) => serde_json::from_slice::<Point>(bytes)
                        .map(|point| Some((point.value, point.ts)))
                        .map_err(|error| invalid(error.to_string())),
                    other => Err(invalid(format!("unexpected reply {other:?}"))),
                }
            })
            .collect()
    }

    fn latest_key(&self, site: &SiteSlug, sensor: &SensorKey) -> String {
        self.key(&["latest", site.as_str(), sensor.as_str()])
    }
}
