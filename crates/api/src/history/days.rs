//! History in buckets of whole days: they begin at the site's local
//! midnights (its timezone), 23 or 25 hours long across a daylight-saving
//! change.

use stoker_domain::{DAY_MS, EpochMillis, SiteZone};

/// Buckets of whole days begin at the site's local midnights: the
/// boundaries of the buckets of `every_ms` over `[start, end)` in the
/// site's timezone, or `None` for shorter (or not whole-day) buckets,
/// which InfluxDB aligns to the epoch.
pub(super) fn local_days(
    start: EpochMillis,
    end: EpochMillis,
    every_ms: u64,
    zone: SiteZone,
) -> Option<Vec<EpochMillis>> {
    let day = DAY_MS.unsigned_abs();
    if every_ms == 0 || !every_ms.is_multiple_of(day) {
        return None;
    }
    let days = u32::try_from(every_ms / day).ok()?;
    Some(zone.day_boundaries(start, end, days))
}

/// `[start, end)` cut into spans of `buckets` of the local days that
/// `boundaries` delimit, at their boundaries.
pub(super) fn local_chunks(
    boundaries: &[EpochMillis],
    start: EpochMillis,
    end: EpochMillis,
    buckets: u64,
) -> Vec<(EpochMillis, EpochMillis)> {
    let step = usize::try_from(buckets).unwrap_or(usize::MAX).max(1);
    let mut spans = Vec::new();
    let mut index = 0;
    while index + 1 < boundaries.len() {
        let next = (index + step).min(boundaries.len() - 1);
        let (from, to) = (boundaries[index].max(start), boundaries[next].min(end));
        if from < to {
            spans.push((from, to));
        }
        index = next;
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> EpochMillis {
        EpochMillis::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn whole_days_are_local_and_chunks_cut_at_their_boundaries() {
        let berlin = SiteZone::parse("Europe/Berlin").unwrap();
        let (start, end) = (at("2026-10-24T12:00:00Z"), at("2026-10-27T12:00:00Z"));
        assert_eq!(local_days(start, end, 3_600_000, berlin), None);
        assert_eq!(local_days(start, end, 36 * 3_600_000, berlin), None);
        let days = local_days(start, end, 86_400_000, berlin).unwrap();
        assert_eq!(
            days,
            [
                at("2026-10-23T22:00:00Z"),
                at("2026-10-24T22:00:00Z"),
                at("2026-10-25T23:00:00Z"),
                at("2026-10-26T23:00:00Z"),
                at("2026-10-27T23:00:00Z"),
            ]
        );
        assert_eq!(
            local_chunks(&days, start, end, 2),
            [
                (start, at("2026-10-25T23:00:00Z")),
                (at("2026-10-25T23:00:00Z"), end),
            ]
        );
    }
}
