//! API keys' rows in `metadata.api_keys`: create, list, rotate, revoke,
//! and fetch one for [`verify`](super::verify).

use std::time::Duration;

use chrono::Utc;
use deadpool_postgres::Pool;
use rand::Rng;
use rand::distr::{Alphanumeric, SampleString};
use stoker_domain::{Secret, SiteSlug};
use uuid::Uuid;

use super::{
    ApiKey, KEY_ID_ALPHABET, KEY_ID_LEN, KeyCheck, MAX_NAME_CHARS, NewApiKey, SECRET_LEN, Scope,
    StoredKey, TOKEN_PREFIX, normalize_scopes, normalize_sites, sha256, split_token, verify,
};
use crate::audit::{self, Actor, Change, Entity};
use crate::{Error, Result, is_unique_violation};

/// The longest grace period a rotation may give the previous secret.
pub const MAX_ROTATION_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Checks a presented token (what follows `Bearer `) against the database:
/// [`fetch_key`] then [`verify`] at the current time. A malformed token
/// costs no query.
pub async fn authenticate(pool: &Pool, presented_token: &str) -> Result<KeyCheck> {
    let Some((key_id, _)) = split_token(presented_token) else {
        return Ok(KeyCheck::Malformed);
    };
    Ok(match fetch_key(pool, key_id).await? {
        Some(stored) => verify(presented_token, &stored, Utc::now()),
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

fn parse_stored_sites(stored: Option<Vec<String>>) -> Result<Option<Vec<SiteSlug>>> {
    stored
        .map(|sites| {
            sites
                .into_iter()
                .map(|site| {
                    SiteSlug::parse(site).map_err(|error| Error::InvalidRow {
                        what: "API key site",
                        reason: error.to_string(),
                    })
                })
                .collect()
        })
        .transpose()
}

fn parse_hash(hash: &[u8]) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(hash).map_err(|_| Error::InvalidRow {
        what: "API key hash",
        reason: format!("{} bytes instead of 32", hash.len()),
    })
}

/// The stored key with this public id, if any (revoked ones included):
/// what [`verify`] checks a token against, for callers that cache keys.
pub async fn fetch_key(pool: &Pool, key_id: &str) -> Result<Option<StoredKey>> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT key_id, name, secret_sha256, previous_secret_sha256, previous_valid_until,
                    scopes, sites, expires_at, revoked_at IS NOT NULL AS revoked
             FROM metadata.api_keys WHERE key_id = $1",
        )
        .await?;
    let Some(row) = client.query_opt(&statement, &[&key_id]).await? else {
        return Ok(None);
    };
    let hash: Vec<u8> = row.try_get("secret_sha256")?;
    let previous_hash: Option<Vec<u8>> = row.try_get("previous_secret_sha256")?;
    let previous_valid_until: Option<chrono::DateTime<Utc>> =
        row.try_get("previous_valid_until")?;
    let previous = match (previous_hash, previous_valid_until) {
        (Some(hash), Some(until)) => Some((parse_hash(&hash)?, until)),
        _ => None,
    };
    Ok(Some(StoredKey {
        key_id: row.try_get("key_id")?,
        name: row.try_get("name")?,
        secret_sha256: parse_hash(&hash)?,
        previous,
        scopes: parse_scopes(row.try_get("scopes")?)?,
        sites: parse_stored_sites(row.try_get("sites")?)?,
        expires_at: row.try_get("expires_at")?,
        revoked: row.try_get("revoked")?,
    }))
}

const COLUMNS: &str = "id, key_id, name, scopes, sites, created_at, expires_at, rotated_at, \
                       previous_valid_until, revoked_at";

fn from_row(row: &tokio_postgres::Row) -> Result<ApiKey> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        key_id: row.try_get("key_id")?,
        name: row.try_get("name")?,
        scopes: parse_scopes(row.try_get("scopes")?)?,
        sites: parse_stored_sites(row.try_get("sites")?)?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        rotated_at: row.try_get("rotated_at")?,
        previous_valid_until: row.try_get("previous_valid_until")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// A new random key id and secret.
fn generate() -> (String, String) {
    let mut rng = rand::rng();
    let key_id: String = (0..KEY_ID_LEN)
        .map(|_| char::from(KEY_ID_ALPHABET[rng.random_range(0..KEY_ID_ALPHABET.len())]))
        .collect();
    (key_id, Alphanumeric.sample_string(&mut rng, SECRET_LEN))
}

/// Creates a key named `name` for every site, without expiry: see
/// [`create_api_key_with`].
pub async fn create_api_key(
    pool: &Pool,
    actor: &Actor,
    name: &str,
    scopes: &[Scope],
) -> Result<(ApiKey, Secret)> {
    create_api_key_with(pool, actor, &NewApiKey::new(name, scopes)).await
}

/// The audit record of a change to a key: its listed JSON, never a secret
/// or a hash.
fn key_change<'a>(
    action: &'a str,
    before: Option<&'a ApiKey>,
    after: Option<&'a ApiKey>,
) -> Result<Change<'a>> {
    let Some(key) = after.or(before) else {
        return Err(Error::InvalidRow {
            what: "audit record",
            reason: "a change of an API key without the key".into(),
        });
    };
    Ok(Change {
        entity: Entity::ApiKey,
        id: key.name.clone(),
        site: None,
        action,
        before: before.map(audit::json).transpose()?,
        after: after.map(audit::json).transpose()?,
    })
}

/// Creates a key: its name (trimmed, 1 to 100 characters, unique among
/// active keys: [`Error::ApiKeyExists`]), scopes (at least one), sites
/// (each registered, else [`Error::InvalidInput`] on `sites`) and expiry
/// (in the future). Returns the key and its token, `stk_<key_id>_<secret>`:
/// the only time the token exists anywhere, since only its hash is stored.
/// Recorded in the audit trail as done by `actor`.
pub async fn create_api_key_with(
    pool: &Pool,
    actor: &Actor,
    new: &NewApiKey,
) -> Result<(ApiKey, Secret)> {
    let name = new.name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(Error::InvalidInput {
            field: "name",
            message: format!("name must be 1 to {MAX_NAME_CHARS} printable characters"),
        });
    }
    let scopes = normalize_scopes(&new.scopes)?;
    let scope_names: Vec<&str> = scopes.iter().map(|scope| scope.as_str()).collect();
    let sites = new.sites.clone().map(normalize_sites).transpose()?;
    let site_names: Option<Vec<&str>> = sites
        .as_ref()
        .map(|sites| sites.iter().map(SiteSlug::as_str).collect());
    if let Some(expires_at) = new.expires_at
        && expires_at <= Utc::now()
    {
        return Err(Error::InvalidInput {
            field: "expires_at",
            message: format!("{expires_at} is not in the future"),
        });
    }
    let mut client = pool.get().await?;
    let client = client.transaction().await?;
    if let Some(site_names) = &site_names {
        let statement = client
            .prepare_cached(
                "SELECT wanted FROM unnest($1::text[]) AS wanted
                 WHERE NOT EXISTS (SELECT 1 FROM metadata.sites WHERE slug = wanted)",
            )
            .await?;
        let missing: Vec<String> = client
            .query(&statement, &[site_names])
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        if !missing.is_empty() {
            return Err(Error::InvalidInput {
                field: "sites",
                message: format!("no such site: {}", missing.join(", ")),
            });
        }
    }
    let statement = client
        .prepare_cached(&format!(
            "INSERT INTO metadata.api_keys (id, key_id, secret_sha256, name, scopes, sites, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (key_id) DO NOTHING
             RETURNING {COLUMNS}"
        ))
        .await?;
    // A key id collision (one in 36^12 per existing key) only costs a retry.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (key_id, secret) = generate();
        let hash = sha256(&secret);
        let inserted = client
            .query_opt(
                &statement,
                &[
                    &Uuid::now_v7(),
                    &key_id,
                    &hash.as_slice(),
                    &name,
                    &scope_names,
                    &site_names,
                    &new.expires_at,
                ],
            )
            .await;
        match inserted {
            Ok(Some(row)) => {
                let key = from_row(&row)?;
                audit::record(&client, actor, key_change("created", None, Some(&key))?).await?;
                client.commit().await?;
                let token = Secret::new(format!("{TOKEN_PREFIX}{key_id}_{secret}"));
                return Ok((key, token));
            }
            Ok(None) if attempts < 3 => {}
            Ok(None) => {
                return Err(Error::InvalidRow {
                    what: "API key id",
                    reason: "three random key ids in a row exist already".into(),
                });
            }
            Err(error) if is_unique_violation(&error) => {
                return Err(Error::ApiKeyExists(name.to_owned()));
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

/// Rotates the active (not revoked) key named by its id, key id or name:
/// a new secret, while the current one stays valid for `grace` (at most
/// [`MAX_ROTATION_GRACE`]; zero ends it at once). Only one previous secret
/// is kept: a second rotation within the grace period ends the first
/// one's. The key keeps its id, key id, scopes, sites and expiry. Returns
/// the key and its new token, shown this once. Fails with
/// [`Error::ApiKeyNotFound`] when no active key is so named.
pub async fn rotate_api_key(
    pool: &Pool,
    actor: &Actor,
    id_or_key_id_or_name: &str,
    grace: Duration,
) -> Result<(ApiKey, Secret)> {
    if grace > MAX_ROTATION_GRACE {
        return Err(Error::InvalidInput {
            field: "grace",
            message: "the grace period may be at most 30 days".into(),
        });
    }
    let which = nameable(id_or_key_id_or_name)?;
    let id = Uuid::parse_str(which).ok();
    let mut client = pool.get().await?;
    let client = client.transaction().await?;
    let before = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM metadata.api_keys
             WHERE (id = $1::uuid OR key_id = $2::text OR name = $2::text)
               AND revoked_at IS NULL
             ORDER BY (id = $1::uuid) IS TRUE DESC, key_id = $2::text DESC
             LIMIT 1
             FOR UPDATE"
        ))
        .await?;
    let before = client
        .query_opt(&before, &[&id, &which])
        .await?
        .ok_or_else(|| Error::ApiKeyNotFound(which.to_owned()))
        .and_then(|row| from_row(&row))?;
    let statement = client
        .prepare_cached(&format!(
            "UPDATE metadata.api_keys
             SET previous_secret_sha256 = secret_sha256,
                 previous_valid_until = now() + make_interval(secs => $2::float8),
                 secret_sha256 = $3,
                 rotated_at = now()
             WHERE id = $1
             RETURNING {COLUMNS}"
        ))
        .await?;
    let (_, secret) = generate();
    let hash = sha256(&secret);
    let row = client
        .query_one(
            &statement,
            &[&before.id, &grace.as_secs_f64(), &hash.as_slice()],
        )
        .await?;
    let key = from_row(&row)?;
    audit::record(
        &client,
        actor,
        key_change("rotated", Some(&before), Some(&key))?,
    )
    .await?;
    client.commit().await?;
    let token = Secret::new(format!("{TOKEN_PREFIX}{}_{secret}", key.key_id));
    Ok((key, token))
}

/// `which` trimmed, when it can name a key at all (no key has a name with
/// a control character or longer than [`MAX_NAME_CHARS`]; Postgres would
/// refuse a NUL): else [`Error::ApiKeyNotFound`] without a query.
fn nameable(which: &str) -> Result<&str> {
    let which = which.trim();
    if which.chars().count() > MAX_NAME_CHARS || which.chars().any(char::is_control) {
        let shown: String = which.chars().filter(|c| !c.is_control()).take(64).collect();
        return Err(Error::ApiKeyNotFound(shown));
    }
    Ok(which)
}

/// Revokes a key named by its id, its key id, or its name (tried in that
/// order; a name means the active key of that name, or else the one of
/// that name revoked last). Revoking a revoked key changes nothing and
/// keeps its first `revoked_at` (and records nothing); a revocation is
/// recorded in the audit trail as done by `actor`. Fails with
/// [`Error::ApiKeyNotFound`].
pub async fn revoke_api_key(
    pool: &Pool,
    actor: &Actor,
    id_or_key_id_or_name: &str,
) -> Result<ApiKey> {
    let which = nameable(id_or_key_id_or_name)?;
    let id = Uuid::parse_str(which).ok();
    let mut client = pool.get().await?;
    let client = client.transaction().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM metadata.api_keys
             WHERE id = $1::uuid OR key_id = $2::text OR name = $2::text
             ORDER BY (id = $1::uuid) IS TRUE DESC,
                      key_id = $2::text DESC,
                      revoked_at IS NULL DESC,
                      revoked_at DESC,
                      id DESC
             LIMIT 1
             FOR UPDATE"
        ))
        .await?;
    let before = match client.query_opt(&statement, &[&id, &which]).await? {
        Some(row) => from_row(&row)?,
        None => return Err(Error::ApiKeyNotFound(which.to_owned())),
    };
    if before.revoked_at.is_some() {
        return Ok(before);
    }
    let statement = client
        .prepare_cached(&format!(
            "UPDATE metadata.api_keys SET revoked_at = now() WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .await?;
    let row = client.query_one(&statement, &[&before.id]).await?;
    let after = from_row(&row)?;
    audit::record(
        &client,
        actor,
        key_change("revoked", Some(&before), Some(&after))?,
    )
    .await?;
    client.commit().await?;
    Ok(after)
}
