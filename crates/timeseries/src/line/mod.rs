//! Line protocol for readings: [`LineBatch`], a batch of readings encoded
//! as they are pushed, over the one encoder (`encode`: [`encode_point`]
//! and the crate's `push_line`), fuzzed by `fuzz/` through `fuzzing`; and
//! the one parser ([`parse()`], the reading side, InfluxDB 1.x/2.x's rules,
//! with [`Precision`]), fuzzed through `parse_fuzzing`.

mod encode;
#[doc(hidden)]
pub mod fuzzing;
mod parse;
#[doc(hidden)]
pub mod parse_fuzzing;
mod precision;

use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug};

pub(crate) use encode::{Field, push_fields, push_line, push_series};
pub use encode::{LineError, check_tag_value, encode_point};
pub use parse::{FieldValue, Line, Lines, ParseError, Problem, parse};
pub use precision::Precision;

/// The measurement every reading goes to.
pub(crate) const MEASUREMENT: &str = "readings";

/// A reading's series encoded once (`readings,site=…,sensor=…,type=…`),
/// for [`LineBatch::push_in`]: ingestion keeps one per registered sensor,
/// so a reading costs only its value and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series(Box<str>);

impl Series {
    /// The series of a sensor's readings.
    pub fn new(site: &SiteSlug, sensor: &SensorKey, sensor_type: &SensorType) -> Self {
        let mut out = String::with_capacity(
            MEASUREMENT.len() + 20 + site.as_str().len() + sensor.as_str().len(),
        );
        push_series(
            &mut out,
            MEASUREMENT,
            &Self::tags(site, sensor, sensor_type),
        );
        Self(out.into_boxed_str())
    }

    fn tags<'a>(
        site: &'a SiteSlug,
        sensor: &'a SensorKey,
        sensor_type: &'a SensorType,
    ) -> [(&'static str, &'a str); 3] {
        [
            ("site", site.as_str()),
            ("sensor", sensor.as_str()),
            ("type", sensor_type.as_str()),
        ]
    }
}

/// A batch of readings encoded as line protocol, ready for one write:
/// `readings,site=…,sensor=…,type=… value=181.2 1732269600000` per line,
/// millisecond precision.
///
/// Encoding happens as readings are pushed, so a batch costs one `String`
/// however many points it holds.
#[derive(Debug, Clone)]
pub struct LineBatch {
    body: String,
    points: usize,
    /// The oldest and newest timestamps pushed (ms); `i64::MAX`/`MIN` when
    /// empty.
    oldest: i64,
    newest: i64,
}

impl Default for LineBatch {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl LineBatch {
    /// An empty batch with room for about `points` lines.
    pub fn with_capacity(points: usize) -> Self {
        Self {
            body: String::with_capacity(points * 96),
            points: 0,
            oldest: i64::MAX,
            newest: i64::MIN,
        }
    }

    /// Appends one reading. `value` must be finite (the caller validates
    /// readings; a non-finite value is skipped here rather than written as
    /// a line InfluxDB would refuse along with the rest of the batch).
    pub fn push(
        &mut self,
        site: &SiteSlug,
        sensor: &SensorKey,
        sensor_type: &SensorType,
        value: f64,
        timestamp: EpochMillis,
    ) {
        if !value.is_finite() {
            return;
        }
        push_line(
            &mut self.body,
            MEASUREMENT,
            &Series::tags(site, sensor, sensor_type),
            &[("value", Field::Float(value))],
            timestamp.as_millis(),
        );
        self.pushed(timestamp);
    }

    /// [`push`](Self::push) for a sensor whose [`Series`] the caller keeps:
    /// the same line.
    pub fn push_in(&mut self, series: &Series, value: f64, timestamp: EpochMillis) {
        if !value.is_finite() {
            return;
        }
        self.body.push_str(&series.0);
        push_fields(
            &mut self.body,
            &[("value", Field::Float(value))],
            timestamp.as_millis(),
        );
        self.pushed(timestamp);
    }

    /// Appends one reading of a `state` sensor (DESIGN.md): field `value`
    /// is the state's `index` in the sensor's states, so that Grafana and
    /// alert rules read every kind with the same queries, and string field
    /// `state` its name. (A boolean is [`push`](Self::push)ed as 0 or 1.)
    pub fn push_state(
        &mut self,
        site: &SiteSlug,
        sensor: &SensorKey,
        sensor_type: &SensorType,
        index: u32,
        state: &str,
        timestamp: EpochMillis,
    ) {
        self.push_state_in(
            &Series::new(site, sensor, sensor_type),
            index,
            state,
            timestamp,
        );
    }

    /// [`push_state`](Self::push_state) for a sensor whose [`Series`] the
    /// caller keeps.
    pub fn push_state_in(
        &mut self,
        series: &Series,
        index: u32,
        state: &str,
        timestamp: EpochMillis,
    ) {
        self.body.push_str(&series.0);
        push_fields(
            &mut self.body,
            &[
                ("value", Field::Float(f64::from(index))),
                ("state", Field::Text(state)),
            ],
            timestamp.as_millis(),
        );
        self.pushed(timestamp);
    }

    fn pushed(&mut self, timestamp: EpochMillis) {
        self.points += 1;
        self.oldest = self.oldest.min(timestamp.as_millis());
        self.newest = self.newest.max(timestamp.as_millis());
    }

    /// A batch from text this type encoded earlier (a spooled batch).
    pub fn from_encoded(body: String) -> Self {
        let mut batch = Self {
            points: 0,
            oldest: i64::MAX,
            newest: i64::MIN,
            body: String::new(),
        };
        for line in body.lines().filter(|line| !line.is_empty()) {
            batch.points += 1;
            // The timestamp is the last field of every line this type writes.
            if let Some(millis) = line
                .rsplit(' ')
                .next()
                .and_then(|field| field.parse::<i64>().ok())
            {
                batch.oldest = batch.oldest.min(millis);
                batch.newest = batch.newest.max(millis);
            }
        }
        batch.body = body;
        batch
    }

    /// The oldest and newest timestamps in the batch; `None` when empty.
    pub fn time_range(&self) -> Option<(EpochMillis, EpochMillis)> {
        if self.oldest > self.newest {
            return None;
        }
        Some((
            EpochMillis::from_millis(self.oldest).ok()?,
            EpochMillis::from_millis(self.newest).ok()?,
        ))
    }

    /// Number of points in the batch.
    pub fn len(&self) -> usize {
        self.points
    }

    /// Whether the batch holds no point.
    pub fn is_empty(&self) -> bool {
        self.points == 0
    }

    /// The encoded body.
    pub fn as_str(&self) -> &str {
        &self.body
    }

    /// Empties the batch, keeping its allocation.
    pub fn clear(&mut self) {
        self.body.clear();
        self.points = 0;
        self.oldest = i64::MAX;
        self.newest = i64::MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(batch: &mut LineBatch, value: f64) {
        batch.push(
            &SiteSlug::parse("boiler-house-1").unwrap(),
            &SensorKey::parse("b1_flue_temp").unwrap(),
            &SensorType::parse("temperature").unwrap(),
            value,
            EpochMillis::from_millis(1_732_269_600_000).unwrap(),
        );
    }

    #[test]
    fn encodes_one_line_per_reading() {
        let mut batch = LineBatch::default();
        reading(&mut batch, 181.2);
        reading(&mut batch, 81.0);
        assert_eq!(
            batch.as_str(),
            "readings,site=boiler-house-1,sensor=b1_flue_temp,type=temperature value=181.2 1732269600000\n\
             readings,site=boiler-house-1,sensor=b1_flue_temp,type=temperature value=81.0 1732269600000\n"
        );
        assert_eq!(batch.len(), 2);
    }

    #[test]
    fn a_batch_knows_its_time_range_also_when_read_back() {
        let mut batch = LineBatch::default();
        assert_eq!(batch.time_range(), None);
        reading(&mut batch, 1.0);
        let at = EpochMillis::from_millis(1_732_269_600_000).unwrap();
        batch.push(
            &SiteSlug::parse("b").unwrap(),
            &SensorKey::parse("s").unwrap(),
            &SensorType::parse("t").unwrap(),
            2.0,
            at.plus_millis(-5_000),
        );
        assert_eq!(batch.time_range(), Some((at.plus_millis(-5_000), at)));
        let again = LineBatch::from_encoded(batch.as_str().to_owned());
        assert_eq!((again.len(), again.time_range()), (2, batch.time_range()));
        batch.clear();
        assert_eq!(batch.time_range(), None);
    }

    #[test]
    fn a_state_is_its_index_and_its_name() {
        let mut batch = LineBatch::default();
        let at = EpochMillis::from_millis(1_732_269_600_000).unwrap();
        batch.push_state(
            &SiteSlug::parse("boiler-house-1").unwrap(),
            &SensorKey::parse("b1_sequencer").unwrap(),
            &SensorType::parse("sequencer").unwrap(),
            3,
            "firing",
            at,
        );
        assert_eq!(
            batch.as_str(),
            "readings,site=boiler-house-1,sensor=b1_sequencer,type=sequencer value=3.0,state=\"firing\" 1732269600000\n"
        );
        let again = LineBatch::from_encoded(batch.as_str().to_owned());
        assert_eq!((again.len(), again.time_range()), (1, Some((at, at))));
    }

    #[test]
    fn non_finite_values_are_never_encoded() {
        let mut batch = LineBatch::default();
        reading(&mut batch, f64::NAN);
        reading(&mut batch, f64::INFINITY);
        assert!(batch.is_empty() && batch.as_str().is_empty());
    }

    #[test]
    fn extreme_values_round_trip_as_text() {
        for value in [1e300, -2.5e-12, 0.1 + 0.2] {
            let mut batch = LineBatch::default();
            reading(&mut batch, value);
            let text = batch.as_str();
            let field = text
                .split(" value=")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap();
            assert_eq!(field.parse::<f64>().unwrap(), value);
        }
    }
}
