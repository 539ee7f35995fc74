//! Cursor pagination: `?limit=N&cursor=C`. A cursor is opaque to clients
//! (the hex of the last item's sort key); `next_cursor` is null on the
//! last page.

use std::collections::HashMap;

use serde::Serialize;
use stoker_metadata::Page;

use crate::problem::{ApiError, FOREIGN_CURSOR};

/// Items per page when `limit` is absent.
const DEFAULT_LIMIT: i64 = 50;

/// A validated page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageQuery {
    pub limit: i64,
    /// The sort key after which the page starts.
    pub after: Option<String>,
}

/// Reads `limit` and `cursor`, refusing every parameter not in `also`.
pub(crate) fn parse(query: &HashMap<String, String>, also: &[&str]) -> Result<PageQuery, ApiError> {
    if let Some(unknown) = query
        .keys()
        .find(|name| !matches!(name.as_str(), "limit" | "cursor") && !also.contains(&name.as_str()))
    {
        let mut known = vec!["limit", "cursor"];
        known.extend_from_slice(also);
        return Err(ApiError::BadParameter {
            parameter: "query",
            detail: format!(
                "unknown parameter {:?}; this route takes {}",
                unknown.chars().take(64).collect::<String>(),
                known.join(", ")
            ),
        });
    }
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<i64>() {
            Ok(limit) if (1..=stoker_metadata::MAX_PAGE_LIMIT).contains(&limit) => limit,
            _ => {
                return Err(ApiError::BadParameter {
                    parameter: "limit",
                    detail: format!(
                        "limit must be a whole number from 1 to {}",
                        stoker_metadata::MAX_PAGE_LIMIT
                    ),
                });
            }
        },
    };
    let after = match query.get("cursor") {
        None => None,
        Some(cursor) => Some(decode(cursor).ok_or_else(|| ApiError::BadParameter {
            parameter: "cursor",
            detail: FOREIGN_CURSOR.into(),
        })?),
    };
    Ok(PageQuery { limit, after })
}

fn encode(key: &str) -> String {
    key.bytes().map(|byte| format!("{byte:02x}")).collect()
}

fn decode(cursor: &str) -> Option<String> {
    if cursor.is_empty() || !cursor.len().is_multiple_of(2) || cursor.len() > 512 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..cursor.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(cursor.get(at..at + 2)?, 16).ok())
        .collect();
    // Postgres text holds no NUL, and no key this API sorts by holds a
    // control character: such a cursor is not one it gave.
    String::from_utf8(bytes?)
        .ok()
        .filter(|key| !key.chars().any(char::is_control))
}

/// A page as JSON: `{"items": [...], "next_cursor": "..." | null}`.
#[derive(Debug, Serialize)]
pub(crate) struct PageBody<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

impl<T> From<Page<T>> for PageBody<T> {
    fn from(page: Page<T>) -> Self {
        Self {
            items: page.items,
            next_cursor: page.next_after.as_deref().map(encode),
        }
    }
}

/// A query string's parameters from pairs (unit tests of the routes that
/// read them).
#[cfg(test)]
pub(crate) fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let cursor = encode("boiler-house-1");
        let parsed = parse(&query(&[("cursor", &cursor), ("limit", "2")]), &[]).unwrap();
        assert_eq!(parsed.after.as_deref(), Some("boiler-house-1"));
        assert_eq!(parsed.limit, 2);
        assert_eq!(parse(&query(&[]), &[]).unwrap().limit, DEFAULT_LIMIT);
        for (name, value) in [
            ("cursor", "zz"),
            ("cursor", "abc"),
            ("cursor", "00"),
            ("cursor", "610a"),
            ("limit", "0"),
            ("limit", "1001"),
            ("limit", "ten"),
        ] {
            assert!(
                parse(&query(&[(name, value)]), &[]).is_err(),
                "{name}={value}"
            );
        }
        assert!(parse(&query(&[("site", "b")]), &[]).is_err());
        assert!(parse(&query(&[("site", "b")]), &["site"]).is_ok());
    }
}
