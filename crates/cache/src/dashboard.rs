//! Dashboard summaries: `dashboard:{site}`, TTL 60 s, dropped when the
//! site's metadata changes.

use std::time::Duration;

use stoker_domain::SiteSlug;

use crate::{Cache, Result};

/// How long a dashboard summary is served from Redis.
pub const DASHBOARD_TTL: Duration = Duration::from_secs(60);

/// Keys deleted per `DEL` when dropping every dashboard.
const DELETE_CHUNK: usize = 500;

impl Cache {
    /// The cached summary of a site's dashboard (JSON), if any.
    pub async fn dashboard(&self, site: &SiteSlug) -> Result<Option<String>> {
        let mut connection = self.connection.clone();
        let value: Option<String> = redis::cmd("GET")
            .arg(self.key(&["dashboard", site.as_str()]))
            .query_async(&mut connection)
            .await?;
        Ok(value)
    }

    /// Caches a site's dashboard summary for [`DASHBOARD_TTL`].
    pub async fn set_dashboard(&self, site: &SiteSlug, json: &str) -> Result<()> {
        let mut connection = self.connection.clone();
        redis::cmd("SET")
            .arg(self.key(&["dashboard", site.as_str()]))
            .arg(json)
            .arg("EX")
            .arg(DASHBOARD_TTL.as_secs())
            .query_async::<()>(&mut connection)
            .await?;
        Ok(())
    }

    /// Drops a site's cached dashboard (its metadata changed).
    pub async fn forget_dashboard(&self, site: &SiteSlug) -> Result<()> {
        let mut connection = self.connection.clone();
        redis::cmd("DEL")
            .arg(self.key(&["dashboard", site.as_str()]))
            .query_async::<()>(&mut connection)
            .await?;
        Ok(())
    }

    /// Drops every cached dashboard under this prefix (a change that may
    /// concern any site). Walks the keys with `SCAN`, never `KEYS`.
    pub async fn forget_all_dashboards(&self) -> Result<usize> {
        let mut connection = self.connection.clone();
        let pattern = format!("{}*", escape_glob(&self.key(&["dashboard", ""])));
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut connection)
                .await?;
            for chunk in keys.chunks(DELETE_CHUNK) {
                let removed: usize = redis::cmd("DEL")
                    .arg(chunk)
                    .query_async(&mut connection)
                    .await?;
                deleted += removed;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}

/// A literal for a `SCAN MATCH` pattern: glob characters take a backslash.
fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_in_a_prefix_are_literal() {
        assert_eq!(
            escape_glob("t[1]*?:dashboard:"),
            "t\\[1\\]\\*\\?:dashboard:"
        );
    }
}
