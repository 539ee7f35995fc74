//! API keys: tokens `stk_<key_id>_<secret>`, stored only as the SHA-256 of
//! their secret and checked in constant time.
//!
//! `key_id` (12 characters of `[a-z0-9]`) is public: it finds the row and
//! names the key in logs. `secret` (32 base62 characters, about 190 bits
//! from a CSPRNG) is shown once, at creation, and never stored: a leaked
//! table gives nobody a usable key. Such a secret needs no slow password
//! hash; one SHA-256 compared in constant time suffices.

use std::fmt;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use rand::Rng;
use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use stoker_domain::Secret;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::{Error, Result, is_unique_violation};

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
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What [`verify`] needs of a stored key: fetched by [`fetch_key`] and fit
/// to be cached in memory. Its `Debug` leaves the hash out, and it has no
/// `PartialEq`, so that hashes are only ever compared by [`verify`], in
/// constant time.
#[derive(Clone)]
pub struct StoredKey {
    key_id: String,
    name: String,
    secret_sha256: [u8; 32],
    scopes: Vec<Scope>,
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
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

/// The outcome of checking a presented token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// A live key: the request may do what `scopes` allow.
    Valid {
        /// The key's public id (for logs).
        key_id: String,
        /// The key's name (who acted, in records such as alert events).
        name: String,
        /// What it may do.
        scopes: Vec<Scope>,
    },
    /// The secret is right but the key was revoked.
    Revoked,
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

/// Checks a presented token against a stored key, without I/O: the
/// secret's SHA-256 is compared with the stored hash in constant time. A
/// token of another key id is [`KeyCheck::Unknown`]; a revoked key is
/// [`KeyCheck::Revoked`] only for the right secret.
pub fn verify(presented_token: &str, stored: &StoredKey) -> KeyCheck {
    let Some((key_id, secret)) = split_token(presented_token) else {
        return KeyCheck::Malformed;
    };
    if key_id != stored.key_id {
        return KeyCheck::Unknown;
    }
    let matches: bool = sha256(secret).ct_eq(&stored.secret_sha256).into();
    if !matches {
        KeyCheck::Unknown
    } else if stored.revoked {
        KeyCheck::Revoked
    } else {
        KeyCheck::Valid {
            key_id: stored.key_id.clone(),
            name: stored.name.clone(),
            scopes: stored.scopes.clone(),
        }
    }
}

/// Checks a presented token (what follows `Bearer `) against the database:
/// [`fetch_key`] then [`verify`]. A malformed token costs no query.
pub async fn authenticate(pool: &Pool, presented_token: &str) -> Result<KeyCheck> {
    let Some((key_id, _)) = split_token(presented_token) else {
        return Ok(KeyCheck::Malformed);
    };
    Ok(match fetch_key(pool, key_id).await? {
        Some(stored) => verify(presented_token, &stored),
        None => KeyCheck::Unknown,
    })
}

fn parse_scopes(stored: Vec<String>) -> Result<Vec<Scope>> {
    stored
        .iter()
        .map(|scope| {
            Scope::parse(scope).map_err(|(_, reason)| Error::InvalidRow {
                what: "API key scope",
                reason,
            })
        })
        .collect()
}

/// The stored key with this public id, if any (revoked ones included):
/// what [`verify`] checks a token against, for callers that cache keys.
pub async fn fetch_key(pool: &Pool, key_id: &str) -> Result<Option<StoredKey>> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT key_id, name, secret_sha256, scopes, revoked_at IS NOT NULL AS revoked
             FROM metadata.api_keys WHERE key_id = $1",
        )
        .await?;
    let Some(row) = client.query_opt(&statement, &[&key_id]).await? else {
        return Ok(None);
    };
    let hash: Vec<u8> = row.try_get("secret_sha256")?;
    let secret_sha256 = <[u8; 32]>::try_from(hash.as_slice()).map_err(|_| Error::InvalidRow {
        what: "API key hash",
        reason: format!("{} bytes instead of 32", hash.len()),
    })?;
    Ok(Some(StoredKey {
        key_id: row.try_get("key_id")?,
        name: row.try_get("name")?,
        secret_sha256,
        scopes: parse_scopes(row.try_get("scopes")?)?,
        revoked: row.try_get("revoked")?,
    }))
}

const COLUMNS: &str = "id, key_id, name, scopes, created_at, revoked_at";

fn from_row(row: &tokio_postgres::Row) -> Result<ApiKey> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        key_id: row.try_get("key_id")?,
        name: row.try_get("name")?,
        scopes: parse_scopes(row.try_get("scopes")?)?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// Creates a key named `name` (trimmed, 1 to 100 characters, unique among
/// active keys: [`Error::ApiKeyExists`]) with `scopes` (at least one).
/// Returns the key and its token, `stk_<key_id>_<secret>`: the only time
/// the token exists anywhere, since only its hash is stored.
pub async fn create_api_key(pool: &Pool, name: &str, scopes: &[Scope]) -> Result<(ApiKey, Secret)> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(Error::InvalidInput {
            field: "name",
            message: format!("name must be 1 to {MAX_NAME_CHARS} printable characters"),
        });
    }
    let scopes = normalize_scopes(scopes)?;
    let scope_names: Vec<&str> = scopes.iter().map(|scope| scope.as_str()).collect();
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "INSERT INTO metadata.api_keys (id, key_id, secret_sha256, name, scopes)
             VALUES ($1, $2, $3, $4, $5)
             RETURNING {COLUMNS}"
        ))
        .await?;
    // A key id collision (one in 36^12 per existing key) only costs a retry.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (key_id, secret) = {
            let mut rng = rand::rng();
            let key_id: String = (0..KEY_ID_LEN)
                .map(|_| char::from(KEY_ID_ALPHABET[rng.random_range(0..KEY_ID_ALPHABET.len())]))
                .collect();
            (key_id, Alphanumeric.sample_string(&mut rng, SECRET_LEN))
        };
        let hash = sha256(&secret);
        let inserted = client
            .query_one(
                &statement,
                &[
                    &Uuid::now_v7(),
                    &key_id,
                    &hash.as_slice(),
                    &name,
                    &scope_names,
                ],
            )
            .await;
        match inserted {
            Ok(row) => {
                let key = from_row(&row)?;
                let token = Secret::new(format!("{TOKEN_PREFIX}{key_id}_{secret}"));
                return Ok((key, token));
            }
            Err(error) if is_unique_violation(&error) => {
                let constraint = error
                    .as_db_error()
                    .and_then(|db| db.constraint())
                    .unwrap_or_default();
                if constraint == "api_keys_active_name" {
                    return Err(Error::ApiKeyExists(name.to_owned()));
                }
                if attempts >= 3 {
                    return Err(error.into());
                }
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Every key, oldest first, revoked ones included; never a secret or hash.
pub async fn list_api_keys(pool: &Pool) -> Result<Vec<ApiKey>> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM metadata.api_keys ORDER BY created_at, id"
        ))
        .await?;
    client
        .query(&statement, &[])
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// Revokes a key named by its id, its key id, or its name (tried in that
/// order; a name means the active key of that name, or else the one of
/// that name revoked last). Revoking a revoked key changes nothing and
/// keeps its first `revoked_at`. Fails with [`Error::ApiKeyNotFound`].
pub async fn revoke_api_key(pool: &Pool, id_or_key_id_or_name: &str) -> Result<ApiKey> {
    let which = id_or_key_id_or_name.trim();
    let id = Uuid::parse_str(which).ok();
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "UPDATE metadata.api_keys
             SET revoked_at = coalesce(revoked_at, now())
             WHERE id = (
                 SELECT id FROM metadata.api_keys
                 WHERE id = $1::uuid OR key_id = $2::text OR name = $2::text
                 ORDER BY (id = $1::uuid) IS TRUE DESC,
                          key_id = $2::text DESC,
                          revoked_at IS NULL DESC,
                          revoked_at DESC,
                          id DESC
                 LIMIT 1
             )
             RETURNING {COLUMNS}"
        ))
        .await?;
    match client.query_opt(&statement, &[&id, &which]).await? {
        Some(row) => from_row(&row),
        None => Err(Error::ApiKeyNotFound(which.to_owned())),
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
            scopes: vec![Scope::Read],
            revoked,
        }
    }

    const SECRET: &str = "AbCdEfGhIjKlMnOpQrStUvWxYz012345";

    #[test]
    fn tokens_are_checked_by_shape_then_hash() {
        let token = format!("stk_abcdef012345_{SECRET}");
        assert_eq!(
            verify(&token, &stored(SECRET, false)),
            KeyCheck::Valid {
                key_id: "abcdef012345".into(),
                name: "gateway-1".into(),
                scopes: vec![Scope::Read]
            }
        );
        assert_eq!(verify(&token, &stored(SECRET, true)), KeyCheck::Revoked);
        let other = "ZbCdEfGhIjKlMnOpQrStUvWxYz012345";
        assert_eq!(verify(&token, &stored(other, true)), KeyCheck::Unknown);
        let other_id = format!("stk_abcdef012346_{SECRET}");
        assert_eq!(verify(&other_id, &stored(SECRET, false)), KeyCheck::Unknown);
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
                verify(malformed, &stored(SECRET, false)),
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
}
