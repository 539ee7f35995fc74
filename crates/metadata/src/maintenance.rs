//! Maintenance windows (DESIGN.md, "Alarm management"),
//! `metadata.maintenance_windows`: a site's alarms raised inside one are
//! recorded as suppressed (`maintenance`), never announced. A window is
//! one-off (`starts_at` to `ends_at`) or weekly in the site's local time
//! (`{"days":["sun"],"from":"02:00","to":"04:00"}`), read on the wall
//! clock of the site's `timezone` with chrono-tz: 02:00–04:00 local stays
//! 02:00–04:00 local on both sides of a daylight-saving change (one hour
//! of real time on the spring day whose 02:00–03:00 does not exist, three
//! on the autumn day whose 02:00–03:00 happens twice).

use std::str::FromStr as _;

use chrono::{DateTime, Datelike as _, Duration, NaiveDateTime, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use stoker_domain::SiteSlug;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::audit::{self, Actor, Change, Entity};
use crate::{Error, Page, Result, fetch_limit, is_foreign_key_violation};

/// The days a weekly window names, as JSON writes them (ISO order).
pub const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A weekly window: on each of `days`, from `from` to `to` on the site's
/// wall clock (a `to` at or before `from` runs past midnight into the
/// next day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weekly {
    days: Vec<Weekday>,
    from: NaiveTime,
    to: NaiveTime,
}

impl Weekly {
    /// A weekly window from day names (`mon` … `sun`, at least one, each
    /// once) and times `HH:MM` (or `HH:MM:SS`); `from` and `to` differ.
    /// `Err`: the field (`weekly.days`, …) and what is wrong.
    pub fn parse(days: &[String], from: &str, to: &str) -> Result<Self, (&'static str, String)> {
        if days.is_empty() {
            return Err(("weekly.days", "weekly.days needs at least one day".into()));
        }
        let mut parsed = Vec::with_capacity(days.len());
        for day in days {
            let Some(index) = DAY_NAMES.iter().position(|name| name == day) else {
                return Err((
                    "weekly.days",
                    format!("day {day:?} is unknown: use {}", DAY_NAMES.join(", ")),
                ));
            };
            let weekday = Weekday::try_from(u8::try_from(index).unwrap_or(0))
                .map_err(|_| ("weekly.days", format!("day {day:?} is unknown")))?;
            if parsed.contains(&weekday) {
                return Err(("weekly.days", format!("day {day:?} is named twice")));
            }
            parsed.push(weekday);
        }
        parsed.sort_by_key(Weekday::num_days_from_monday);
        let from = parse_time("weekly.from", from)?;
        let to = parse_time("weekly.to", to)?;
        if from == to {
            return Err((
                "weekly.to",
                "weekly.to must differ from weekly.from (a window of a whole day is from 00:00 to 23:59:59 or two windows)".into(),
            ));
        }
        Ok(Self {
            days: parsed,
            from,
            to,
        })
    }

    /// Whether the wall-clock time `local` falls inside one of its
    /// occurrences: one that starts that day, or one that started the day
    /// before and runs past midnight.
    pub fn covers_local(&self, local: NaiveDateTime) -> bool {
        let date = local.date();
        [date, date - Duration::days(1)].into_iter().any(|day| {
            if !self.days.contains(&day.weekday()) {
                return false;
            }
            let start = day.and_time(self.from);
            let end = if self.to > self.from {
                day.and_time(self.to)
            } else {
                (day + Duration::days(1)).and_time(self.to)
            };
            start <= local && local < end
        })
    }

    /// The days, as JSON names them.
    pub fn day_names(&self) -> Vec<&'static str> {
        self.days
            .iter()
            .map(|day| DAY_NAMES[day.num_days_from_monday() as usize])
            .collect()
    }
}

fn parse_time(field: &'static str, text: &str) -> Result<NaiveTime, (&'static str, String)> {
    NaiveTime::parse_from_str(text, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M:%S"))
        .map_err(|_| {
            (
                field,
                format!("{field} must be a time HH:MM (00:00 to 23:59), not {text:?}"),
            )
        })
}

/// When a window holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// From `starts_at` (inclusive) to `ends_at` (exclusive).
    Once {
        /// Its start.
        starts_at: DateTime<Utc>,
        /// Its end, after its start.
        ends_at: DateTime<Utc>,
    },
    /// Every week, on the site's wall clock.
    Weekly(Weekly),
}

/// A maintenance window as stored and as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceWindow {
    /// Immutable id (UUIDv7: ids sort by creation).
    pub id: Uuid,
    /// The site whose alarms it suppresses.
    pub site: SiteSlug,
    /// When it holds.
    pub schedule: Schedule,
    /// Why, as the operator said.
    pub reason: String,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl MaintenanceWindow {
    /// Whether it holds at `at`, a weekly one read on the wall clock of
    /// `timezone` (the site's).
    pub fn covers(&self, at: DateTime<Utc>, timezone: Tz) -> bool {
        match &self.schedule {
            Schedule::Once { starts_at, ends_at } => *starts_at <= at && at < *ends_at,
            Schedule::Weekly(weekly) => {
                weekly.covers_local(at.with_timezone(&timezone).naive_local())
            }
        }
    }
}

impl Serialize for MaintenanceWindow {
    /// `{"id","site","starts_at","ends_at","weekly","reason","created_by",
    /// "created_at"}`: a one-off window has `weekly` null, a weekly one
    /// `starts_at` and `ends_at` null and `weekly` `{"days","from","to"}`.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(8))?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("site", &self.site)?;
        match &self.schedule {
            Schedule::Once { starts_at, ends_at } => {
                map.serialize_entry("starts_at", starts_at)?;
                map.serialize_entry("ends_at", ends_at)?;
                map.serialize_entry("weekly", &None::<()>)?;
            }
            Schedule::Weekly(weekly) => {
                map.serialize_entry("starts_at", &None::<()>)?;
                map.serialize_entry("ends_at", &None::<()>)?;
                map.serialize_entry(
                    "weekly",
                    &serde_json::json!({
                        "days": weekly.day_names(),
                        "from": weekly.from.format("%H:%M").to_string(),
                        "to": weekly.to.format("%H:%M").to_string(),
                    }),
                )?;
            }
        }
        map.serialize_entry("reason", &self.reason)?;
        map.serialize_entry("created_by", &self.created_by)?;
        map.serialize_entry("created_at", &self.created_at)?;
        map.end()
    }
}

/// A window to create, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMaintenanceWindow {
    site: SiteSlug,
    schedule: Schedule,
    reason: String,
}

impl NewMaintenanceWindow {
    /// A window of `site` holding at `schedule` for `reason` (trimmed, 1 to
    /// 500 characters); a one-off window ends after it starts. `Err`: the
    /// field and what is wrong.
    pub fn new(
        site: SiteSlug,
        schedule: Schedule,
        reason: &str,
    ) -> Result<Self, (&'static str, String)> {
        if let Schedule::Once { starts_at, ends_at } = &schedule
            && ends_at <= starts_at
        {
            return Err(("ends_at", "ends_at must be after starts_at".into()));
        }
        let reason =
            stoker_domain::checked_reason(reason).map_err(|message| ("reason", message))?;
        Ok(Self {
            site,
            schedule,
            reason,
        })
    }

    /// Its site.
    pub fn site(&self) -> &SiteSlug {
        &self.site
    }

    /// When it holds.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }
}

/// A site's timezone as chrono-tz knows it; `None` for a name it does not
/// (Postgres may know a few more).
pub fn site_timezone(name: &str) -> Option<Tz> {
    Tz::from_str(name).ok()
}

/// Which windows a list returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowFilter {
    /// Only this site's.
    pub site: Option<SiteSlug>,
    /// Only these sites' (a key limited to sites); `None`: no such limit.
    pub within: Option<Vec<SiteSlug>>,
}

const COLUMNS: &str = "w.id, s.slug AS site, w.starts_at, w.ends_at, w.weekly_days, \
                       w.weekly_from, w.weekly_to, w.reason, w.created_by, w.created_at";

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidRow {
        what: "maintenance window",
        reason: reason.into(),
    }
}

fn from_row(row: &Row) -> Result<MaintenanceWindow> {
    let site = SiteSlug::parse(row.try_get::<_, String>("site")?)
        .map_err(|error| invalid(error.to_string()))?;
    let schedule = match (
        row.try_get::<_, Option<DateTime<Utc>>>("starts_at")?,
        row.try_get::<_, Option<DateTime<Utc>>>("ends_at")?,
    ) {
        (Some(starts_at), Some(ends_at)) => Schedule::Once { starts_at, ends_at },
        _ => {
            let days: Vec<i16> = row
                .try_get::<_, Option<Vec<i16>>>("weekly_days")?
                .ok_or_else(|| invalid("neither one-off nor weekly"))?;
            let from: NaiveTime = row
                .try_get::<_, Option<NaiveTime>>("weekly_from")?
                .ok_or_else(|| invalid("weekly without from"))?;
            let to: NaiveTime = row
                .try_get::<_, Option<NaiveTime>>("weekly_to")?
                .ok_or_else(|| invalid("weekly without to"))?;
            let mut weekdays = Vec::with_capacity(days.len());
            for day in days {
                let index = u8::try_from(day - 1).map_err(|_| invalid(format!("day {day}")))?;
                weekdays.push(Weekday::try_from(index).map_err(|_| invalid(format!("day {day}")))?);
            }
            weekdays.sort_by_key(Weekday::num_days_from_monday);
            Schedule::Weekly(Weekly {
                days: weekdays,
                from,
                to,
            })
        }
    };
    Ok(MaintenanceWindow {
        id: row.try_get("id")?,
        site,
        schedule,
        reason: row.try_get("reason")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

fn window_change<'a>(
    action: &'a str,
    before: Option<&'a MaintenanceWindow>,
    after: Option<&'a MaintenanceWindow>,
) -> Result<Change<'a>> {
    let Some(window) = after.or(before) else {
        return Err(invalid("a change of a window without the window"));
    };
    Ok(Change {
        entity: Entity::MaintenanceWindow,
        id: window.id.to_string(),
        site: Some(window.site.as_str()),
        action,
        before: before.map(audit::json).transpose()?,
        after: after.map(audit::json).transpose()?,
    })
}

/// Creates a window, recorded in the audit trail as done by `actor`.
/// Fails with [`Error::SiteNotFound`].
pub async fn create_maintenance_window(
    pool: &Pool,
    actor: &Actor,
    window: &NewMaintenanceWindow,
) -> Result<MaintenanceWindow> {
    let (starts_at, ends_at, days, from, to) = match &window.schedule {
        Schedule::Once { starts_at, ends_at } => {
            (Some(*starts_at), Some(*ends_at), None, None, None)
        }
        Schedule::Weekly(weekly) => (
            None,
            None,
            Some(
                weekly
                    .days
                    .iter()
                    .map(|day| i16::from(day.number_from_monday() as u8))
                    .collect::<Vec<i16>>(),
            ),
            Some(weekly.from),
            Some(weekly.to),
        ),
    };
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let statement = transaction
        .prepare_cached(&format!(
            "WITH inserted AS (
                 INSERT INTO metadata.maintenance_windows
                     (id, site_id, starts_at, ends_at, weekly_days, weekly_from, weekly_to,
                      reason, created_by)
                 SELECT $1, s.id, $3, $4, $5, $6, $7, $8, $9
                 FROM metadata.sites s WHERE s.slug = $2
                 RETURNING *
             )
             SELECT {COLUMNS} FROM inserted w JOIN metadata.sites s ON s.id = w.site_id"
        ))
        .await?;
    let row = transaction
        .query_opt(
            &statement,
            &[
                &Uuid::now_v7(),
                &window.site.as_str(),
                &starts_at,
                &ends_at,
                &days,
                &from,
                &to,
                &window.reason,
                &actor.name(),
            ],
        )
        .await
        .map_err(|error| {
            if is_foreign_key_violation(&error) {
                Error::SiteNotFound(window.site.clone())
            } else {
                error.into()
            }
        })?;
    let Some(row) = row else {
        return Err(Error::SiteNotFound(window.site.clone()));
    };
    let created = from_row(&row)?;
    audit::record(
        &transaction,
        actor,
        window_change("created", None, Some(&created))?,
    )
    .await?;
    transaction.commit().await?;
    Ok(created)
}

async fn select_one(
    client: &impl GenericClient,
    id: Uuid,
    lock: bool,
) -> Result<MaintenanceWindow> {
    let lock = if lock { " FOR UPDATE OF w" } else { "" };
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM metadata.maintenance_windows w
             JOIN metadata.sites s ON s.id = w.site_id
             WHERE w.id = $1{lock}"
        ))
        .await?;
    match client.query_opt(&statement, &[&id]).await? {
        Some(row) => from_row(&row),
        None => Err(Error::MaintenanceWindowNotFound(id)),
    }
}

/// One window by id ([`Error::MaintenanceWindowNotFound`]).
pub async fn get_maintenance_window(pool: &Pool, id: Uuid) -> Result<MaintenanceWindow> {
    let client = pool.get().await?;
    select_one(&client, id, false).await
}

/// One page of windows in id order (creation order), after the id
/// `after`; `limit` is 1 to [`MAX_PAGE_LIMIT`](crate::MAX_PAGE_LIMIT).
pub async fn list_maintenance_windows_page(
    pool: &Pool,
    filter: &WindowFilter,
    limit: i64,
    after: Option<Uuid>,
) -> Result<Page<MaintenanceWindow>> {
    let fetch = fetch_limit(limit)?;
    let within: Option<Vec<&str>> = filter
        .within
        .as_ref()
        .map(|sites| sites.iter().map(SiteSlug::as_str).collect());
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM metadata.maintenance_windows w
             JOIN metadata.sites s ON s.id = w.site_id
             WHERE ($1::text IS NULL OR s.slug = $1::text)
               AND ($2::uuid IS NULL OR w.id > $2::uuid)
               AND ($4::text[] IS NULL OR s.slug = ANY($4::text[]))
             ORDER BY w.id
             LIMIT $3"
        ))
        .await?;
    let windows = client
        .query(
            &statement,
            &[
                &filter.site.as_ref().map(SiteSlug::as_str),
                &after,
                &fetch,
                &within,
            ],
        )
        .await?
        .iter()
        .map(from_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(windows, limit, |window| {
        window.id.to_string()
    }))
}

/// Deletes a window, recorded in the audit trail as done by `actor`.
/// Fails with [`Error::MaintenanceWindowNotFound`].
pub async fn delete_maintenance_window(pool: &Pool, actor: &Actor, id: Uuid) -> Result<()> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let before = select_one(&transaction, id, true).await?;
    let statement = transaction
        .prepare_cached("DELETE FROM metadata.maintenance_windows WHERE id = $1")
        .await?;
    transaction.execute(&statement, &[&id]).await?;
    audit::record(
        &transaction,
        actor,
        window_change("deleted", Some(&before), None)?,
    )
    .await?;
    transaction.commit().await?;
    Ok(())
}

/// The windows that may hold at `at` or later (weekly ones, and one-offs
/// not over by then), each with its site's timezone (UTC, logged, for a name
/// chrono-tz does not know): what the evaluation loop reads once per tick.
pub async fn current_maintenance_windows(
    pool: &Pool,
    at: DateTime<Utc>,
) -> Result<Vec<(MaintenanceWindow, Tz)>> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS}, s.timezone FROM metadata.maintenance_windows w
             JOIN metadata.sites s ON s.id = w.site_id
             WHERE w.ends_at IS NULL OR w.ends_at > $1"
        ))
        .await?;
    let mut windows = Vec::new();
    for row in client.query(&statement, &[&at]).await? {
        let window = from_row(&row)?;
        let name: String = row.try_get("timezone")?;
        let timezone = site_timezone(&name).unwrap_or_else(|| {
            tracing::warn!(site = %window.site, timezone = %name, "a site's timezone is unknown to chrono-tz: its weekly maintenance windows are read in UTC");
            Tz::UTC
        });
        windows.push((window, timezone));
    }
    Ok(windows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn sunday_night() -> MaintenanceWindow {
        MaintenanceWindow {
            id: Uuid::nil(),
            site: SiteSlug::parse("b").unwrap(),
            schedule: Schedule::Weekly(
                Weekly::parse(&["sun".to_owned()], "02:00", "04:00").unwrap(),
            ),
            reason: "burner service".into(),
            created_by: "ops".into(),
            created_at: at("2026-01-01T00:00:00Z"),
        }
    }

    #[test]
    fn a_weekly_window_holds_on_the_wall_clock_across_the_spring_change() {
        let window = sunday_night();
        let berlin = chrono_tz::Europe::Berlin;
        // A week before (CET, UTC+1): 02:00–04:00 local is 01:00–03:00 UTC.
        assert!(!window.covers(at("2026-03-22T00:59:59Z"), berlin));
        assert!(window.covers(at("2026-03-22T01:00:00Z"), berlin));
        assert!(window.covers(at("2026-03-22T02:59:59Z"), berlin));
        assert!(!window.covers(at("2026-03-22T03:00:00Z"), berlin));
        // 29 March 2026: 02:00 CET jumps to 03:00 CEST at 01:00 UTC; the
        // window holds from then (03:00 local) to 04:00 CEST (02:00 UTC).
        assert!(
            !window.covers(at("2026-03-29T00:59:59Z"), berlin),
            "01:59 CET"
        );
        assert!(
            window.covers(at("2026-03-29T01:00:00Z"), berlin),
            "03:00 CEST"
        );
        assert!(window.covers(at("2026-03-29T01:59:59Z"), berlin));
        assert!(
            !window.covers(at("2026-03-29T02:00:00Z"), berlin),
            "04:00 CEST"
        );
        // A week after (CEST, UTC+2): 00:00–02:00 UTC.
        assert!(!window.covers(at("2026-04-04T23:59:59Z"), berlin));
        assert!(window.covers(at("2026-04-05T00:00:00Z"), berlin));
        assert!(window.covers(at("2026-04-05T01:59:59Z"), berlin));
        assert!(!window.covers(at("2026-04-05T02:00:00Z"), berlin));
        // Not on a Saturday.
        assert!(!window.covers(at("2026-04-04T00:30:00Z"), berlin));
    }

    #[test]
    fn a_weekly_window_holds_on_the_wall_clock_across_the_autumn_change() {
        let window = sunday_night();
        let berlin = chrono_tz::Europe::Berlin;
        // A week before (CEST): 00:00–02:00 UTC.
        assert!(window.covers(at("2026-10-18T00:00:00Z"), berlin));
        assert!(!window.covers(at("2026-10-18T02:00:00Z"), berlin));
        // 25 October 2026: 03:00 CEST falls back to 02:00 CET at 01:00
        // UTC, so 02:00–04:00 local lasts from 00:00 to 03:00 UTC.
        assert!(
            !window.covers(at("2026-10-24T23:59:59Z"), berlin),
            "01:59 CEST"
        );
        assert!(
            window.covers(at("2026-10-25T00:00:00Z"), berlin),
            "02:00 CEST"
        );
        assert!(
            window.covers(at("2026-10-25T00:59:59Z"), berlin),
            "02:59 CEST"
        );
        assert!(
            window.covers(at("2026-10-25T01:00:00Z"), berlin),
            "02:00 CET"
        );
        assert!(
            window.covers(at("2026-10-25T02:59:59Z"), berlin),
            "03:59 CET"
        );
        assert!(
            !window.covers(at("2026-10-25T03:00:00Z"), berlin),
            "04:00 CET"
        );
        // A week after (CET): 01:00–03:00 UTC.
        assert!(!window.covers(at("2026-11-01T00:59:59Z"), berlin));
        assert!(window.covers(at("2026-11-01T01:00:00Z"), berlin));
        assert!(!window.covers(at("2026-11-01T03:00:00Z"), berlin));
    }

    #[test]
    fn a_window_past_midnight_and_one_offs() {
        let night = MaintenanceWindow {
            schedule: Schedule::Weekly(
                Weekly::parse(&["sat".to_owned()], "22:00", "02:00").unwrap(),
            ),
            ..sunday_night()
        };
        let utc = Tz::UTC;
        assert!(
            night.covers(at("2026-04-04T23:00:00Z"), utc),
            "Saturday 23:00"
        );
        assert!(
            night.covers(at("2026-04-05T01:59:00Z"), utc),
            "Sunday 01:59"
        );
        assert!(!night.covers(at("2026-04-05T02:00:00Z"), utc));
        assert!(!night.covers(at("2026-04-03T23:00:00Z"), utc), "Friday");
        let once = MaintenanceWindow {
            schedule: Schedule::Once {
                starts_at: at("2026-04-01T08:00:00Z"),
                ends_at: at("2026-04-01T10:00:00Z"),
            },
            ..sunday_night()
        };
        assert!(once.covers(at("2026-04-01T08:00:00Z"), utc));
        assert!(!once.covers(at("2026-04-01T10:00:00Z"), utc));
        let json = serde_json::to_value(&night).unwrap();
        assert_eq!(
            json["weekly"],
            serde_json::json!({"days": ["sat"], "from": "22:00", "to": "02:00"})
        );
        assert!(json["starts_at"].is_null());
    }

    #[test]
    fn weekly_windows_are_checked() {
        let days = |names: &[&str]| {
            names
                .iter()
                .map(|name| (*name).to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            Weekly::parse(&[], "02:00", "04:00").unwrap_err().0,
            "weekly.days"
        );
        assert_eq!(
            Weekly::parse(&days(&["sunday"]), "02:00", "04:00")
                .unwrap_err()
                .0,
            "weekly.days"
        );
        assert_eq!(
            Weekly::parse(&days(&["sun", "sun"]), "02:00", "04:00")
                .unwrap_err()
                .0,
            "weekly.days"
        );
        assert_eq!(
            Weekly::parse(&days(&["sun"]), "25:00", "04:00")
                .unwrap_err()
                .0,
            "weekly.from"
        );
        assert_eq!(
            Weekly::parse(&days(&["sun"]), "04:00", "04:00")
                .unwrap_err()
                .0,
            "weekly.to"
        );
        let weekly = Weekly::parse(&days(&["sun", "mon"]), "02:00", "04:30:00").unwrap();
        assert_eq!(weekly.day_names(), vec!["mon", "sun"]);
    }
}
