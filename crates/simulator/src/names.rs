//! How the fleet's sites and sensors are named and how many a site may
//! have: the limits the arguments are checked against and the fleet is
//! built with.

/// The most sensors one site may have. A message carries every reading of
/// its site, about 30 bytes each; 1,000 keep it far below ingestion's
/// 256 KiB payload limit.
pub(crate) const MAX_SENSORS_PER_SITE: u32 = 1000;

/// The slug of the site numbered `number` (counting from 1).
pub(crate) fn site_slug(site_prefix: &str, number: u32) -> String {
    format!("{site_prefix}-{number}")
}

/// Whether `text` is a valid site slug or sensor key:
/// `[a-z0-9][a-z0-9_-]{0,62}`.
pub(crate) fn is_identifier(text: &str) -> bool {
    let bytes = text.as_bytes();
    matches!(bytes.first(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|byte| matches!(byte, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}
