//! Alert-rule previews (backtests over a past range): one of the
//! `analytics:` caches, `analytics:preview:{digest}`, TTL 1800 s. The
//! digest is the SHA-256 of everything the answer depends on, so a key is
//! never served for another request; the TTL bounds how long readings that
//! arrive late for the range go unseen.

use std::fmt::Write as _;
use std::time::Duration;

use crate::{Cache, Result};

/// How long an analytics result is served from Redis.
pub const ANALYTICS_TTL: Duration = Duration::from_secs(1800);

impl Cache {
    fn preview_key(&self, digest: &[u8; 32]) -> String {
        let mut hex = String::with_capacity(64);
        for byte in digest {
            let _ = write!(hex, "{byte:02x}");
        }
        self.key(&["analytics", "preview", &hex])
    }

    /// The cached preview (JSON) of the request with this SHA-256, if any.
    pub async fn preview(&self, digest: &[u8; 32]) -> Result<Option<String>> {
        let mut connection = self.connection.clone();
        let value: Option<String> = redis::cmd("GET")
            .arg(self.preview_key(digest))
            .query_async(&mut connection)
            .await?;
        Ok(value)
    }

    /// Caches a preview for [`ANALYTICS_TTL`].
    pub async fn set_preview(&self, digest: &[u8; 32], json: &str) -> Result<()> {
        let mut connection = self.connection.clone();
        redis::cmd("SET")
            .arg(self.preview_key(digest))
            .arg(json)
            .arg("EX")
            .arg(ANALYTICS_TTL.as_secs())
            .query_async::<()>(&mut connection)
            .await?;
        Ok(())
    }
}
