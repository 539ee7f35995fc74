//! API keys: tokens `stk_<key_id>_<secret>`, stored only as the SHA-256 of
//! their secret and checked in constant time.
//!
//! `key_id` (12 characters of `[a-z0-9]`) is public: it finds the row and
//! names the key in logs. `secret` (32 base62 characters, about 190 bits
//! from a CSPRNG) is shown once, at creation, and never stored: a leaked
//! table gives nobody a usable key. Such a secret needs no slow password
//! hash; one SHA-256 compared in constant time suffices.
//!
//! A key may be limited to sites (`sites`; none: every site), may expire
//! (`expires_at`), and may be rotated: a new secret for the same key, the
//! previous one still valid for a grace period. Rows live in `store`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use stoker_domain::SiteSlug;
use subtle::ConstantTimeEq;
use uuid::Uuid;

mod store;

pub use store::{
    MAX_ROTATION_GRACE, authenticate, create_api_key, create_api_key_with, fetch_key,
    list_api_keys, revoke_api_key, rotate_api_key,
};

const TOKEN_PREFIX: &str = "stk_";
const KEY_ID_LEN: usize = 12;
const SECRET_LEN: usize = 32;
const KEY_ID_ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const MAX_NAME_CHARS: usize = 100;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read sites, sensors, rules, readings and alerts.
    Read,
    /// Send telemetry; acknowledge and resolve alerts.
    Write,
    /// Change sites, sensors and alert rules.
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

    /// The scope's name: `read`, `write` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    /// Parses a name written by [`Scope::as_str`]; the error names the field
    /// `scopes`.
    pub fn parse(text: &str) -> Result<Self, (&'static str, String)> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == text)
            .ok_or_else(|| {
                (
                    "scopes",
                    format!("scope {text:?} is unknown: use read, write or admin"),
                )
            })
    }

    /// Parses a comma-separated list such as `read,write` (as the CLI takes
    /// it): at least one scope, each once, in the order of [`Scope::ALL`].
    pub fn parse_list(text: &str) -> Result<Vec<Self>, (&'static str, String)> {
        let scopes = text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(Scope::parse)
            .collect::<Result<Vec<_>, _>>()?;
        normalize_scopes(&scopes)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sorted, without duplicates, and not empty.
fn normalize_scopes(scopes: &[Scope]) -> Result<Vec<Scope>, (&'static str, String)> {
    let mut scopes = scopes.to_vec();
    scopes.sort_unstable();
    scopes.dedup();
    if scopes.is_empty() {
        return Err((
            "scopes",
            "at least one scope is required: read, write or admin".into(),
        ));
    }
    Ok(scopes)
}

/// An API key as listed: never its secret nor the secret's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// Immutable id.
    pub id: Uuid,
    /// The public part of the token (`stk_<key_id>_…`).
    pub key_id: String,
    /// What the key is for.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// The sites it may act on; `None`: every site.
    pub sites: Option<Vec<SiteSlug>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops being valid, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When its secret was last replaced, if it was.
    pub rotated_at: Option<DateTime<Utc>>,
    /// Until when the secret before the last rotation is still taken.
    pub previous_valid_until: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// Whether the key is past its expiry at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|expires_at| expires_at <= now)
    }
}

/// A key to create: [`create_api_key_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// Trimmed; 1 to 100 printable characters, unique among active keys.
    pub name: String,
    /// At least one.
    pub scopes: Vec<Scope>,
    /// The sites it may act on (each must exist); `None`: every site.
    pub sites: Option<Vec<SiteSlug>>,
    /// When it stops being valid (in the future); `None`: never.
    pub expires_at: Option<DateTime<Utc>>,
}

impl NewApiKey {
    /// A key for every site that never expires.
    pub fn new(name: impl Into<String>, scopes: &[Scope]) -> Self {
        Self {
            name: name.into(),
            scopes: scopes.to_vec(),
            sites: None,
            expires_at: None,
        }
    }
}

/// Parses a comma-separated list of site slugs (`a,b`, as the CLI takes
/// it): at least one, each once, sorted; the error names the field `sites`.
pub fn parse_sites(text: &str) -> Result<Vec<SiteSlug>, (&'static str, String)> {
    let sites = text
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| SiteSlug::parse(part).map_err(|error| ("sites", error.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    normalize_sites(sites)
}

/// Sorted, without duplicates, and not empty.
pub(crate) fn normalize_sites(
    mut sites: Vec<SiteSlug>,
) -> Result<Vec<SiteSlug>, (&'static str, String)> {
    sites.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    sites.dedup();
    if sites.is_empty() {
        return Err((
            "sites",
            "at least one site is required (leave sites out for a key of every site)".into(),
        ));
    }
    Ok(sites)
}

/// Parses when a key expires: a duration from `now` (`90d`, `12h`) or an
/// RFC 3339 time; either must be in the future. The error names the field
/// `expires`.
pub fn parse_expiry(
    text: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, (&'static str, String)> {
    let text = text.trim();
    let at = match DateTime::parse_from_rfc3339(text) {
        Ok(at) => at.with_timezone(&Utc),
        Err(_) => {
            let duration = stoker_domain::parse_duration(text).map_err(|_| {
                (
                    "expires",
                    format!(
                        "{:?} is neither a duration (90d, 12h) nor an RFC 3339 time",
                        text.chars().take(64).collect::<String>()
                    ),
                )
            })?;
            chrono::Duration::from_std(duration)
                .ok()
                .and_then(|duration| now.checked_add_signed(duration))
                .ok_or_else(|| ("expires", format!("{text:?} is too far ahead")))?
        }
    };
    if at <= now {
        return Err(("expires", format!("{at} is not in the future")));
    }
    Ok(at)
}

/// What [`verify`] needs of a stored key: fetched by [`fetch_key`] and fit
/// to be cached in memory. Its `Debug` leaves the hashes out, and it has
/// no `PartialEq`, so that hashes are only ever compared by [`verify`], in
/// constant time.
#[derive(Clone)]
pub struct StoredKey {
    key_id: String,
    name: String,
    secret_sha256: [u8; 32],
    /// The secret before the last rotation, and until when it is taken.
    previous: Option<([u8; 32], DateTime<Utc>)>,
    scopes: Vec<Scope>,
    sites: Option<Vec<SiteSlug>>,
    expires_at: Option<DateTime<Utc>>,
    revoked: bool,
}

impl StoredKey {
    /// The key's public id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// What the key may do.
    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    /// The sites it may act on; `None`: every site.
    pub fn sites(&self) -> Option<&[SiteSlug]> {
        self.sites.as_deref()
    }

    /// Whether the key has been revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked
    }
}

impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKey")
            .field("key_id", &self.key_id)
            .field("scopes", &self.scopes)
            .field("sites", &self.sites)
            .field("expires_at", &self.expires_at)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

/// The outcome of checking a presented token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// A live key: the request may do what `scopes` allow, on `sites`.
    Valid {
        /// The key's public id (for logs).
        key_id: String,
        /// The key's name (who acted, in records such as alert events).
        name: String,
        /// What it may do.
        scopes: Vec<Scope>,
        /// The sites it may act on; `None`: every site.
        sites: Option<Vec<SiteSlug>>,
    },
    /// The secret is right but the key was revoked.
    Revoked,
    /// The secret is right but the key is past its expiry, or the secret
    /// was replaced by a rotation and its grace period is over.
    Expired,
    /// No key has this id, or the secret is wrong (the two are not told
    /// apart, so that guessing learns nothing).
    Unknown,
    /// Not a token of the form `stk_<key_id>_<secret>` at all.
    Malformed,
}

/// The `(key_id, secret)` of a well-formed token.
fn split_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    if rest.len() != KEY_ID_LEN + 1 + SECRET_LEN || !rest.is_ascii() {
        return None;
    }
    let (key_id, rest) = rest.split_at(KEY_ID_LEN);
    let secret = rest.strip_prefix('_')?;
    let key_id_ok = key_id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let secret_ok = secret.bytes().all(|b| b.is_ascii_alphanumeric());
    (key_id_ok && secret_ok).then_some((key_id, secret))
}

/// The public key id of a well-formed token (`stk_<key_id>_<secret>`), to
/// look its stored key up by; `None` for anything else.
pub fn token_key_id(token: &str) -> Option<&str> {
    split_token(token).map(|(key_id, _)| key_id)
}

fn sha256(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Checks a presented token against a stored key at `now`, without I/O:
/// the secret's SHA-256 is compared with the stored hash, and with the
/// hash before the last rotation, both in constant time. A token of
/// another key id is [`KeyCheck::Unknown`]; a revoked or expired key is
/// [`KeyCheck::Revoked`] or [`KeyCheck::Expired`] only for a right secret.
pub fn verify(presented_token: &str, stored: &StoredKey, now: DateTime<Utc>) -> KeyCheck {
    let Some((key_id, secret)) = split_token(presented_token) else {
        return KeyCheck::Malformed;
    };
    if key_id != stored.key_id {
        return KeyCheck::Unknown;
    }
    let hash = sha256(secret);
    let current: bool = hash.ct_eq(&stored.secret_sha256).into();
    // Compared whether or not the current one matched, so that timing
    // tells nothing about which secret a token holds.
    let (previous, previous_valid) = match &stored.previous {
        Some((previous_hash, valid_until)) => {
            let matches: bool = hash.ct_eq(previous_hash).into();
            (matches, now < *valid_until)
        }
        None => (false, false),
    };
    if !current && !previous {
        KeyCheck::Unknown
    } else if stored.revoked {
        KeyCheck::Revoked
    } else if (!current && !previous_valid)
        || stored
            .expires_at
            .is_some_and(|expires_at| expires_at <= now)
    {
        // The key's expiry, or a rotated-out secret past its grace.
        KeyCheck::Expired
    } else {
        KeyCheck::Valid {
            key_id: stored.key_id.clone(),
            name: stored.name.clone(),
            scopes: stored.scopes.clone(),
            sites: stored.sites.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(secret: &str, revoked: bool) -> StoredKey {
        StoredKey {
            key_id: "abcdef012345".into(),
            name: "gateway-1".into(),
            secret_sha256: sha256(secret),
            previous: None,
            scopes: vec![Scope::Read],
            sites: None,
            expires_at: None,
            revoked,
        }
    }

    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    const SECRET: &str = "AbCdEfGhIjKlMnOpQrStUvWxYz012345";

    #[test]
    fn tokens_are_checked_by_shape_then_hash() {
        let token = format!("stk_abcdef012345_{SECRET}");
        assert_eq!(
            verify(&token, &stored(SECRET, false), now()),
            KeyCheck::Valid {
                key_id: "abcdef012345".into(),
                name: "gateway-1".into(),
                scopes: vec![Scope::Read],
                sites: None,
            }
        );
        assert_eq!(
            verify(&token, &stored(SECRET, true), now()),
            KeyCheck::Revoked
        );
        let other = "ZbCdEfGhIjKlMnOpQrStUvWxYz012345";
        assert_eq!(
            verify(&token, &stored(other, true), now()),
            KeyCheck::Unknown
        );
        let other_id = format!("stk_abcdef012346_{SECRET}");
        assert_eq!(
            verify(&other_id, &stored(SECRET, false), now()),
            KeyCheck::Unknown
        );
        assert_eq!(token_key_id(&token), Some("abcdef012345"));
        assert_eq!(token_key_id("stk_abcdef012345"), None);
        for malformed in [
            "",
            "stk_",
            "Bearer stk_abcdef012345_AbCdEfGhIjKlMnOpQrStUvWxYz012345",
            "stk_ABCDEF012345_AbCdEfGhIjKlMnOpQrStUvWxYz012345",
            "stk_abcdef012345-AbCdEfGhIjKlMnOpQrStUvWxYz012345",
            "stk_abcdef012345_AbCdEfGhIjKlMnOpQrStUvWxYz01234",
            "stk_abcdef012345_AbCdEfGhIjKlMnOpQrStUvWxYz01234_",
            "stk_abcdef01234é_AbCdEfGhIjKlMnOpQrStUvWxYz01234",
        ] {
            assert_eq!(
                verify(malformed, &stored(SECRET, false), now()),
                KeyCheck::Malformed,
                "{malformed}"
            );
        }
    }

    #[test]
    fn scopes_parse_as_a_list() {
        assert_eq!(
            Scope::parse_list("admin, read,read"),
            Ok(vec![Scope::Read, Scope::Admin])
        );
        assert_eq!(Scope::parse_list("").unwrap_err().0, "scopes");
        assert_eq!(Scope::parse_list("read,root").unwrap_err().0, "scopes");
        assert_eq!(
            serde_json::to_string(&Scope::ALL).unwrap(),
            r#"["read","write","admin"]"#
        );
    }

    #[test]
    fn stored_keys_never_print_their_hash() {
        let printed = format!("{:?}", stored(SECRET, false));
        assert!(printed.contains("abcdef012345") && !printed.contains("secret_sha256"));
    }

    #[test]
    fn expiry_and_rotation_decide_with_the_time() {
        let now = now();
        let token = format!("stk_abcdef012345_{SECRET}");
        let mut key = stored(SECRET, false);
        key.expires_at = Some(now + chrono::Duration::seconds(1));
        assert!(matches!(verify(&token, &key, now), KeyCheck::Valid { .. }));
        let later = now + chrono::Duration::seconds(1);
        assert_eq!(verify(&token, &key, later), KeyCheck::Expired);
        // Revoked wins over expired.
        key.revoked = true;
        assert_eq!(verify(&token, &key, later), KeyCheck::Revoked);

        // Rotated: the old secret until its grace ends, the new one after.
        let new = "ZZZdEfGhIjKlMnOpQrStUvWxYz012345";
        let new_token = format!("stk_abcdef012345_{new}");
        let mut rotated = stored(new, false);
        rotated.previous = Some((sha256(SECRET), later));
        assert!(matches!(
            verify(&token, &rotated, now),
            KeyCheck::Valid { .. }
        ));
        assert_eq!(verify(&token, &rotated, later), KeyCheck::Expired);
        assert!(matches!(
            verify(&new_token, &rotated, later),
            KeyCheck::Valid { .. }
        ));
        let wrong = format!("stk_abcdef012345_{}", "Q".repeat(32));
        assert_eq!(verify(&wrong, &rotated, now), KeyCheck::Unknown);
    }

    #[test]
    fn sites_and_expiry_parse() {
        let sites = parse_sites("b, a,a").unwrap();
        let names: Vec<&str> = sites.iter().map(SiteSlug::as_str).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(parse_sites(" , ").unwrap_err().0, "sites");
        assert_eq!(parse_sites("a,B!").unwrap_err().0, "sites");
        let now = now();
        assert_eq!(
            parse_expiry("90d", now),
            Ok(now + chrono::Duration::days(90))
        );
        let at = parse_expiry("2999-01-01T00:00:00Z", now).unwrap();
        assert_eq!(at.to_rfc3339(), "2999-01-01T00:00:00+00:00");
        assert_eq!(
            parse_expiry("2000-01-01T00:00:00Z", now).unwrap_err().0,
            "expires"
        );
        assert_eq!(parse_expiry("soon", now).unwrap_err().0, "expires");
        assert_eq!(parse_expiry("0s", now).unwrap_err().0, "expires");
    }
}
