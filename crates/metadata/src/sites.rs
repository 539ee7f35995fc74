//! Sites: boiler houses.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use stoker_domain::{ParseError, SiteSlug};
use uuid::Uuid;

use crate::{Error, Result, is_unique_violation};

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

impl NewSite {
    /// Validates the parts of a new site; the error names the field.
    pub fn parse(slug: &str, name: &str, timezone: &str) -> Result<Self, (&'static str, String)> {
        let slug =
            SiteSlug::parse(slug).map_err(|error: ParseError| ("slug", error.to_string()))?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(("name", "name must be 1 to 200 characters".into()));
        }
        if timezone.is_empty() || timezone.len() > 64 {
            return Err((
                "timezone",
                "timezone must be an IANA name such as Europe/Berlin".into(),
            ));
        }
        Ok(Self {
            slug,
            name: name.to_owned(),
            timezone: timezone.to_owned(),
        })
    }

    /// The slug of the site to create.
    pub fn slug(&self) -> &SiteSlug {
        &self.slug
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

/// Creates a site. The timezone must be one Postgres knows.
pub async fn create_site(pool: &Pool, site: &NewSite) -> Result<Site> {
    let client = pool.get().await?;
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
    match rows.first() {
        Some(row) => from_row(row),
        None => Err(Error::UnknownTimezone(site.timezone.clone())),
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
