//! Sites: boiler houses.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use stoker_domain::{ParseError, SiteSlug};
use uuid::Uuid;

use crate::audit::{self, Actor, Change, Entity};
use crate::{Error, Page, Result, fetch_limit, is_unique_violation};

/// A boiler house.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Site {
    /// Immutable id.
    pub id: Uuid,
    /// Unique slug, used in topics, URLs and InfluxDB tags.
    pub slug: SiteSlug,
    /// Display name.
    pub name: String,
    /// IANA timezone of the site, for dashboards.
    pub timezone: String,
    /// Incremented by every change (optimistic locking).
    pub version: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A site to create, already validated (the timezone is checked by Postgres).
#[derive(Debug, Clone)]
pub struct NewSite {
    slug: SiteSlug,
    name: String,
    timezone: String,
}

/// The longest site name, in characters once trimmed.
pub const SITE_NAME_MAX_LEN: usize = 200;

/// The longest timezone name, in bytes.
pub const TIMEZONE_MAX_LEN: usize = 64;

/// A site's display name: trimmed, 1 to [`SITE_NAME_MAX_LEN`] characters,
/// no NUL (Postgres text cannot hold one).
fn parse_name(name: &str) -> Result<String, (&'static str, String)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > SITE_NAME_MAX_LEN {
        return Err((
            "name",
            format!("name must be 1 to {SITE_NAME_MAX_LEN} characters"),
        ));
    }
    if name.contains('\0') {
        return Err(("name", "name must not contain NUL (U+0000)".into()));
    }
    Ok(name.to_owned())
}

/// A timezone's shape; whether Postgres knows it is checked on write.
fn parse_timezone(timezone: &str) -> Result<String, (&'static str, String)> {
    if timezone.is_empty() || timezone.len() > TIMEZONE_MAX_LEN || timezone.contains('\0') {
        return Err((
            "timezone",
            "timezone must be an IANA name such as Europe/Berlin".into(),
        ));
    }
    Ok(timezone.to_owned())
}

impl NewSite {
    /// Validates the parts of a new site; the error names the field.
    pub fn parse(slug: &str, name: &str, timezone: &str) -> Result<Self, (&'static str, String)> {
        let slug =
            SiteSlug::parse(slug).map_err(|error: ParseError| ("slug", error.to_string()))?;
        Ok(Self {
            slug,
            name: parse_name(name)?,
            timezone: parse_timezone(timezone)?,
        })
    }

    /// The slug of the site to create.
    pub fn slug(&self) -> &SiteSlug {
        &self.slug
    }
}

/// Changes to a site, already validated: `None` keeps the current value.
/// The slug never changes (it is in topics, keys and InfluxDB tags).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SiteChanges {
    name: Option<String>,
    timezone: Option<String>,
}

impl SiteChanges {
    /// Validates the changes; the error names the field. The timezone is
    /// checked against Postgres' list when the change is written.
    pub fn parse(
        name: Option<&str>,
        timezone: Option<&str>,
    ) -> Result<Self, (&'static str, String)> {
        Ok(Self {
            name: name.map(parse_name).transpose()?,
            timezone: timezone.map(parse_timezone).transpose()?,
        })
    }

    /// The new display name, if it changes.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The new timezone, if it changes.
    pub fn timezone(&self) -> Option<&str> {
        self.timezone.as_deref()
    }
}

const COLUMNS: &str = "id, slug, name, timezone, version, created_at, updated_at";

fn from_row(row: &tokio_postgres::Row) -> Result<Site> {
    let slug: String = row.get("slug");
    Ok(Site {
        id: row.get("id"),
        slug: SiteSlug::parse(slug).map_err(|error| Error::InvalidRow {
            what: "site slug",
            reason: error.to_string(),
        })?,
        name: row.get("name"),
        timezone: row.get("timezone"),
        version: row.get("version"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

/// The timezone names a site may have: those Postgres knows
/// (`pg_timezone_names`, which [`create_site`] and [`update_site`] check),
/// sorted.
pub async fn timezone_names(pool: &Pool) -> Result<Vec<String>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT name FROM pg_timezone_names WHERE octet_length(name) <= $1 ORDER BY name",
            &[&(TIMEZONE_MAX_LEN as i32)],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Creates a site, recorded in the audit trail as done by `actor`. The
/// timezone must be one Postgres knows.
pub async fn create_site(pool: &Pool, actor: &Actor, site: &NewSite) -> Result<Site> {
    let mut client = pool.get().await?;
    let client = client.transaction().await?;
    let statement = client
        .prepare_cached(&format!(
            "INSERT INTO metadata.sites (id, slug, name, timezone)
             SELECT $1, $2, $3, $4
             WHERE EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $4)
             RETURNING {COLUMNS}"
        ))
        .await?;
    let rows = client
        .query(
            &statement,
            &[
                &Uuid::now_v7(),
                &site.slug.as_str(),
                &site.name,
                &site.timezone,
            ],
        )
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                Error::SiteExists(site.slug.clone())
            } else {
                error.into()
            }
        })?;
    let created = match rows.first() {
        Some(row) => from_row(row)?,
        None => return Err(Error::UnknownTimezone(site.timezone.clone())),
    };
    audit::record(
        &client,
        actor,
        site_change("created", None, Some(&created))?,
    )
    .await?;
    client.commit().await?;
    Ok(created)
}

/// The audit record of a change to a site.
fn site_change<'a>(
    action: &'a str,
    before: Option<&'a Site>,
    after: Option<&'a Site>,
) -> Result<Change<'a>> {
    let Some(site) = after.or(before) else {
        return Err(Error::InvalidRow {
            what: "audit record",
            reason: "a change of a site without the site".into(),
        });
    };
    Ok(Change {
        entity: Entity::Site,
        id: site.slug.to_string(),
        site: Some(site.slug.as_str()),
        action,
        before: before.map(audit::json).transpose()?,
        after: after.map(audit::json).transpose()?,
    })
}

/// The site, its row locked until the transaction ends
/// ([`Error::SiteNotFound`] if none).
async fn locked(client: &impl GenericClient, slug: &SiteSlug) -> Result<Site> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM metadata.sites WHERE slug = $1 FOR UPDATE"
        ))
        .await?;
    match client.query_opt(&statement, &[&slug.as_str()]).await? {
        Some(row) => from_row(&row),
        None => Err(Error::SiteNotFound(slug.clone())),
    }
}

/// One site by slug.
pub async fn get_site(pool: &Pool, slug: &SiteSlug) -> Result<Site> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM metadata.sites WHERE slug = $1"
        ))
        .await?;
    match client.query_opt(&statement, &[&slug.as_str()]).await? {
        Some(row) => from_row(&row),
        None => Err(Error::SiteNotFound(slug.clone())),
    }
}

/// Every site, by slug.
pub async fn list_sites(pool: &Pool) -> Result<Vec<Site>> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM metadata.sites ORDER BY slug"
        ))
        .await?;
    client
        .query(&statement, &[])
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// One page of sites in slug order (byte order), starting after the slug
/// `after`. `limit` is 1 to [`MAX_PAGE_LIMIT`](crate::MAX_PAGE_LIMIT);
/// `next_after` is the last slug of the page when more sites follow.
pub async fn list_sites_page(
    pool: &Pool,
    limit: i64,
    after: Option<&SiteSlug>,
) -> Result<Page<Site>> {
    list_sites_page_within(pool, limit, after, None).await
}

/// Like [`list_sites_page`], of only the sites in `within` when given
/// (what a key limited to sites sees).
pub async fn list_sites_page_within(
    pool: &Pool,
    limit: i64,
    after: Option<&SiteSlug>,
    within: Option<&[SiteSlug]>,
) -> Result<Page<Site>> {
    let fetch = fetch_limit(limit)?;
    let within: Option<Vec<&str>> =
        within.map(|sites| sites.iter().map(SiteSlug::as_str).collect());
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM metadata.sites
             WHERE ($1::text IS NULL OR slug COLLATE \"C\" > $1::text)
               AND ($3::text[] IS NULL OR slug = ANY($3::text[]))
             ORDER BY slug COLLATE \"C\"
             LIMIT $2"
        ))
        .await?;
    let sites = client
        .query(&statement, &[&after.map(SiteSlug::as_str), &fetch, &within])
        .await?
        .iter()
        .map(from_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(sites, limit, |site| site.slug.to_string()))
}

/// Changes a site's name or timezone if its version is still
/// `expected_version`; the version goes up by one, and the change is
/// recorded in the audit trail as done by `actor`. Fails with
/// [`Error::SiteNotFound`], [`Error::VersionConflict`] (with the current
/// version) or [`Error::UnknownTimezone`].
pub async fn update_site(
    pool: &Pool,
    actor: &Actor,
    slug: &SiteSlug,
    expected_version: i64,
    changes: &SiteChanges,
) -> Result<Site> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let before = locked(&transaction, slug).await?;
    if before.version != expected_version {
        return Err(Error::VersionConflict {
            current: before.version,
        });
    }
    let statement = transaction
        .prepare_cached(&format!(
            "UPDATE metadata.sites
             SET name = coalesce($3::text, name),
                 timezone = coalesce($4::text, timezone),
                 version = version + 1,
                 updated_at = now()
             WHERE slug = $1 AND version = $2
               AND ($4::text IS NULL
                    OR EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $4::text))
             RETURNING {COLUMNS}"
        ))
        .await?;
    let updated = transaction
        .query_opt(
            &statement,
            &[
                &slug.as_str(),
                &expected_version,
                &changes.name,
                &changes.timezone,
            ],
        )
        .await?;
    // The row is locked at the expected version: only the timezone check
    // can have refused the change.
    let Some(row) = updated else {
        return Err(match &changes.timezone {
            Some(timezone) => Error::UnknownTimezone(timezone.clone()),
            None => Error::VersionConflict {
                current: before.version,
            },
        });
    };
    let after = from_row(&row)?;
    audit::record(
        &transaction,
        actor,
        site_change("updated", Some(&before), Some(&after))?,
    )
    .await?;
    transaction.commit().await?;
    Ok(after)
}

/// Deletes a site, if its version is `expected_version` (when given) and
/// it has no sensors, alert rules or gateways: nothing is deleted in cascade
/// and nothing is orphaned ([`Error::SiteHasDependents`] says how many of
/// each remain). Fails with [`Error::SiteNotFound`] or
/// [`Error::VersionConflict`] too. Recorded in the audit trail as done by
/// `actor`.
pub async fn delete_site(
    pool: &Pool,
    actor: &Actor,
    slug: &SiteSlug,
    expected_version: Option<i64>,
) -> Result<()> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    // The lock keeps new dependents out until the end (their foreign key
    // waits for it), so the count below stays true for the delete.
    let before = locked(&transaction, slug).await?;
    if expected_version.is_some_and(|expected| expected != before.version) {
        return Err(Error::VersionConflict {
            current: before.version,
        });
    }
    let dependents = transaction
        .prepare_cached(
            "SELECT (SELECT count(*) FROM metadata.sensors WHERE site_id = $1) AS sensors,
                    (SELECT count(*) FROM metadata.alert_rules WHERE site_id = $1) AS alert_rules,
                    (SELECT count(*) FROM metadata.gateways WHERE site_id = $1) AS gateways",
        )
        .await?;
    let row = transaction.query_one(&dependents, &[&before.id]).await?;
    let sensors: i64 = row.try_get("sensors")?;
    let alert_rules: i64 = row.try_get("alert_rules")?;
    let gateways: i64 = row.try_get("gateways")?;
    if sensors > 0 || alert_rules > 0 || gateways > 0 {
        return Err(Error::SiteHasDependents {
            sensors,
            alert_rules,
            gateways,
        });
    }
    let delete = transaction
        .prepare_cached("DELETE FROM metadata.sites WHERE id = $1")
        .await?;
    transaction.execute(&delete, &[&before.id]).await?;
    audit::record(
        &transaction,
        actor,
        site_change("deleted", Some(&before), None)?,
    )
    .await?;
    transaction.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_timezones_with_nul_are_refused_not_sent_to_postgres() {
        assert!(NewSite::parse("a", "Boiler house", "UTC").is_ok());
        assert_eq!(
            NewSite::parse("a", "Boiler\0house", "UTC").unwrap_err().0,
            "name"
        );
        assert_eq!(
            NewSite::parse("a", "Boiler house", "U\0TC").unwrap_err().0,
            "timezone"
        );
        assert_eq!(SiteChanges::parse(Some("\0"), None).unwrap_err().0, "name");
    }
}
