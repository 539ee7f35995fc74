//! A site's local time: its IANA zone ([`SiteZone`]) and where its days
//! begin, computed here from the IANA database compiled into chrono-tz, so
//! that a day across a daylight-saving change is 23 or 25 hours long
//! (InfluxDB 1.x's `tz()` buckets are not).

use std::fmt;

use chrono::{Days, NaiveDate, NaiveDateTime, NaiveTime, TimeZone as _, Utc};
use chrono_tz::Tz;

use crate::{EpochMillis, ParseError};

/// A site's timezone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteZone(Tz);

/// A day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// How far past a skipped local midnight the day's first instant is
/// looked for (zones have moved their clocks by at most two hours).
const GAP_SEARCH_MINUTES: u32 = 24 * 60;

impl SiteZone {
    /// UTC.
    pub const UTC: SiteZone = SiteZone(Tz::UTC);

    /// The zone of an IANA name (`Europe/Berlin`). Postgres' own spellings
    /// of the same zones, `posix/Europe/Berlin`, are taken too.
    pub fn parse(name: &str) -> Result<Self, ParseError> {
        let plain = name.strip_prefix("posix/").unwrap_or(name);
        plain
            .parse::<Tz>()
            .map(SiteZone)
            .map_err(|_| ParseError::Timezone(name.chars().take(64).collect()))
    }

    /// Its IANA name.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// The local date at an instant.
    pub fn date_of(self, at: EpochMillis) -> NaiveDate {
        self.0
            .from_utc_datetime(&at.to_datetime().naive_utc())
            .date_naive()
    }

    /// The first instant of a local date: its midnight, or when the clocks
    /// skip midnight, the first local time that exists that day; when
    /// midnight happens twice, the earlier.
    pub fn start_of(self, date: NaiveDate) -> EpochMillis {
        let midnight = NaiveDateTime::new(date, NaiveTime::MIN);
        let first = (0..=GAP_SEARCH_MINUTES).find_map(|minute| {
            let local = midnight + chrono::Duration::minutes(i64::from(minute));
            self.0.from_local_datetime(&local).earliest()
        });
        let utc = first.map_or_else(
            || Utc.from_utc_datetime(&midnight).timestamp_millis(),
            |at| at.timestamp_millis(),
        );
        EpochMillis::from_millis(utc).unwrap_or_else(|_| EpochMillis::now())
    }

    /// The starts of the buckets of `days` local days that cover
    /// `[start, end)`, oldest first: the first at or before `start`, each
    /// at a local midnight, and a bucket begins on the dates whose number
    /// of days since 1970-01-01 is a multiple of `days` (as InfluxDB aligns
    /// its buckets to the epoch; one day: every local midnight). The last
    /// bucket ends at the next start, which is at or after `end`, and is
    /// given too: `n` buckets have `n + 1` boundaries.
    pub fn day_boundaries(
        self,
        start: EpochMillis,
        end: EpochMillis,
        days: u32,
    ) -> Vec<EpochMillis> {
        let days = days.max(1);
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
        let first = self.date_of(start);
        let offset = first
            .signed_duration_since(epoch)
            .num_days()
            .rem_euclid(i64::from(days));
        let mut date = first
            .checked_sub_days(Days::new(offset.unsigned_abs()))
            .unwrap_or(first);
        let mut boundaries = vec![self.start_of(date)];
        while boundaries.last().is_some_and(|last| *last < end) {
            let Some(next) = date.checked_add_days(Days::new(u64::from(days))) else {
                break;
            };
            date = next;
            boundaries.push(self.start_of(date));
        }
        boundaries
    }
}

impl fmt::Display for SiteZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> EpochMillis {
        EpochMillis::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn berlin_days_are_23_and_25_hours_long_at_the_changes() {
        let berlin = SiteZone::parse("Europe/Berlin").unwrap();
        // The last Sunday of March 2026 is the 29th: 02:00 CET → 03:00 CEST.
        let spring =
            berlin.day_boundaries(at("2026-03-28T12:00:00Z"), at("2026-03-30T12:00:00Z"), 1);
        assert_eq!(
            spring,
            vec![
                at("2026-03-27T23:00:00Z"),
                at("2026-03-28T23:00:00Z"),
                at("2026-03-29T22:00:00Z"),
                at("2026-03-30T22:00:00Z"),
            ]
        );
        // The last Sunday of October 2026 is the 25th: back to CET.
        let autumn =
            berlin.day_boundaries(at("2026-10-24T22:00:00Z"), at("2026-10-26T23:00:00Z"), 1);
        assert_eq!(
            autumn,
            vec![
                at("2026-10-24T22:00:00Z"),
                at("2026-10-25T23:00:00Z"),
                at("2026-10-26T23:00:00Z"),
            ]
        );
    }

    #[test]
    fn longer_buckets_align_to_local_dates_counted_from_1970() {
        let utc = SiteZone::UTC;
        // Week buckets begin on Thursdays, as 1970-01-01 was one.
        let boundaries =
            utc.day_boundaries(at("2026-12-07T10:00:00Z"), at("2026-12-08T00:00:00Z"), 7);
        assert_eq!(boundaries.len(), 2);
        let first = boundaries[0].as_millis();
        assert_eq!(
            first.rem_euclid(7 * DAY_MS),
            0,
            "a multiple of 7 days since the epoch"
        );
        assert!(first <= at("2026-12-07T10:00:00Z").as_millis());
        assert_eq!(boundaries[1].as_millis() - first, 7 * DAY_MS);
    }

    #[test]
    fn a_skipped_midnight_starts_the_day_at_its_first_instant() {
        // America/Santiago moved its clocks from 00:00 to 01:00 on
        // 2022-09-11: that day begins at 01:00 local (04:00 UTC).
        let santiago = SiteZone::parse("America/Santiago").unwrap();
        let date = NaiveDate::from_ymd_opt(2022, 9, 11).unwrap();
        assert_eq!(santiago.start_of(date), at("2022-09-11T04:00:00Z"));
    }

    #[test]
    fn names_are_iana_or_postgres_posix_spellings() {
        assert_eq!(
            SiteZone::parse("posix/Europe/Berlin").unwrap().name(),
            "Europe/Berlin"
        );
        assert_eq!(SiteZone::parse("UTC").unwrap(), SiteZone::UTC);
        assert!(matches!(
            SiteZone::parse("Mars/Olympus"),
            Err(ParseError::Timezone(_))
        ));
    }
}
