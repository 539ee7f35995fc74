//! Reading alerts: lists with cursors, one alert with its trail, the open
//! alerts, and whether an episode was already alerted.

use chrono::{DateTime, Utc};
use stoker_domain::{EpochMillis, SensorKey, SiteSlug};
use stoker_metadata::Page;
use stoker_postgres::Pool;
use uuid::Uuid;

use super::rows::{COLUMNS, EVENT_COLUMNS, alert_by_id, alert_from_row, event_from_row, timestamp};
use super::{Alert, AlertEvent, AlertState};
use crate::{Error, Result};

/// Which alerts a list shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFilter {
    /// A state, `open` (not closed) or `active`; none: all.
    pub state: Option<StateFilter>,
    /// One site's alerts only.
    pub site: Option<SiteSlug>,
    /// One sensor's alerts only.
    pub sensor: Option<SensorKey>,
    /// One rule's alerts only.
    pub rule_id: Option<Uuid>,
    /// One kind's alerts only (a rule kind, or `gateway_offline`).
    pub kind: Option<String>,
    /// Only alerts of these sites (what a key limited to sites sees);
    /// `None`: every site.
    pub within: Option<Vec<SiteSlug>>,
}

/// The `state` of a list query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    /// Not closed: `unacknowledged`, `acknowledged`,
    /// `cleared_unacknowledged`.
    Open,
    /// Condition active: `unacknowledged` or `acknowledged`.
    Active,
    /// Exactly this state.
    Is(AlertState),
}

impl StateFilter {
    /// Every name `parse` takes: the four states, `active`, `open`, and
    /// the names before ISA-18.2 states, `firing` (= `unacknowledged`:
    /// active and not acknowledged) and `resolved` (= `closed`).
    pub const NAMES: [&'static str; 8] = [
        "unacknowledged",
        "cleared_unacknowledged",
        "closed",
        "active",
        "open",
        "firing",
        "acknowledged",
        "resolved",
    ];

    /// Parses one of [`StateFilter::NAMES`].
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "open" => Some(StateFilter::Open),
            "active" => Some(StateFilter::Active),
            "firing" => Some(StateFilter::Is(AlertState::Unacknowledged)),
            "resolved" => Some(StateFilter::Is(AlertState::Closed)),
            other => AlertState::parse(other).ok().map(StateFilter::Is),
        }
    }
}

/// Alerts, newest first, `limit` per page after the cursor `after` (a
/// page's `next_after`).
pub async fn list_alerts(
    pool: &Pool,
    filter: &AlertFilter,
    limit: i64,
    after: Option<&str>,
) -> Result<Page<Alert>> {
    let (after_at, after_id) = match after {
        None => (None, None),
        Some(cursor) => {
            let (at, id) = parse_cursor(cursor).ok_or_else(|| Error::InvalidRow {
                what: "cursor",
                reason: format!("{cursor:?} is not an alert cursor"),
            })?;
            (Some(at), Some(id))
        }
    };
    let (open_only, active_only, state) = match filter.state {
        None => (false, false, None),
        Some(StateFilter::Open) => (true, false, None),
        Some(StateFilter::Active) => (false, true, None),
        Some(StateFilter::Is(state)) => (false, false, Some(state.as_str())),
    };
    let within: Option<Vec<&str>> = filter
        .within
        .as_ref()
        .map(|sites| sites.iter().map(SiteSlug::as_str).collect());
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM analytics.alerts
                 WHERE (NOT $1 OR state <> 'closed')
                   AND (NOT $11 OR active)
                   AND ($2::text IS NULL OR state = $2)
                   AND ($3::text IS NULL OR site = $3)
                   AND ($4::text IS NULL OR sensor = $4)
                   AND ($5::uuid IS NULL OR rule_id = $5)
                   AND ($6::timestamptz IS NULL OR (opened_at, id) < ($6, $7))
                   AND ($9::text IS NULL OR kind = $9)
                   AND ($10::text[] IS NULL OR site = ANY($10::text[]))
                 ORDER BY opened_at DESC, id DESC
                 LIMIT $8"
            ),
            &[
                &open_only,
                &state,
                &filter.site.as_ref().map(SiteSlug::as_str),
                &filter.sensor.as_ref().map(SensorKey::as_str),
                &filter.rule_id,
                &after_at,
                &after_id,
                &(limit.clamp(1, stoker_metadata::MAX_PAGE_LIMIT) + 1),
                &filter.kind,
                &within,
                &active_only,
            ],
        )
        .await?;
    let alerts = rows
        .iter()
        .map(alert_from_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(alerts, limit, cursor))
}

/// The cursor after `alert`: its opening time in microseconds and its id.
fn cursor(alert: &Alert) -> String {
    format!("{}_{}", alert.opened_at.timestamp_micros(), alert.id)
}

fn parse_cursor(text: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (micros, id) = text.split_once('_')?;
    let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
    Some((at, Uuid::parse_str(id).ok()?))
}

/// One alert with its event trail, oldest event first.
pub async fn get_alert(pool: &Pool, id: Uuid) -> Result<(Alert, Vec<AlertEvent>)> {
    let client = pool.get().await?;
    let alert = alert_by_id(&**client, id, false).await?;
    let events = client
        .query(
            &format!(
                "SELECT {EVENT_COLUMNS}
                 FROM analytics.alert_events WHERE alert_id = $1 ORDER BY id"
            ),
            &[&id],
        )
        .await?
        .iter()
        .map(event_from_row)
        .collect::<Result<Vec<_>>>()?;
    Ok((alert, events))
}

/// Every alert not closed (the evaluation loop's starting point), or one
/// site's: active ones, and those cleared before anyone acknowledged them.
pub async fn open_alerts(pool: &Pool, site: Option<&SiteSlug>) -> Result<Vec<Alert>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM analytics.alerts
                 WHERE state <> 'closed' AND ($1::text IS NULL OR site = $1)
                 ORDER BY opened_at DESC, id DESC"
            ),
            &[&site.map(SiteSlug::as_str)],
        )
        .await?;
    rows.iter().map(alert_from_row).collect()
}

/// Whether any alert (closed or not) of a rule and sensor was opened or
/// reactivated since `since`: tells the loop, after a takeover, whether an
/// episode it replays was already alerted (and maybe resolved by hand).
pub async fn alerted_since(
    pool: &Pool,
    rule_id: Uuid,
    site: &SiteSlug,
    sensor: &SensorKey,
    since: EpochMillis,
) -> Result<bool> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM analytics.alerts
                            WHERE rule_id = $1 AND site = $2 AND sensor = $3
                              AND activated_at >= $4)",
            &[
                &rule_id,
                &site.as_str(),
                &sensor.as_str(),
                &timestamp(since),
            ],
        )
        .await?;
    Ok(row.try_get(0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let at = DateTime::from_timestamp_micros(1_795_000_000_123_456).unwrap();
        let id = Uuid::now_v7();
        assert_eq!(
            parse_cursor(&format!("{}_{id}", at.timestamp_micros())),
            Some((at, id))
        );
        assert_eq!(parse_cursor("nonsense"), None);
        assert_eq!(parse_cursor("12_not-a-uuid"), None);
    }

    #[test]
    fn state_filters_parse() {
        assert_eq!(StateFilter::parse("open"), Some(StateFilter::Open));
        assert_eq!(
            StateFilter::parse("acknowledged"),
            Some(StateFilter::Is(AlertState::Acknowledged))
        );
        assert_eq!(StateFilter::parse("shut"), None);
        assert_eq!(
            StateFilter::parse("firing"),
            Some(StateFilter::Is(AlertState::Unacknowledged))
        );
        assert_eq!(
            StateFilter::parse("resolved"),
            Some(StateFilter::Is(AlertState::Closed))
        );
        assert_eq!(StateFilter::parse("active"), Some(StateFilter::Active));
    }
}
