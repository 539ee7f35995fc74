-- API keys limited to sites, with an expiry, and rotation (DESIGN.md,
-- "Transport security and keys").
--
-- `sites`: the site slugs the key may act on; NULL: every site.
-- `expires_at`: after it the key is refused (401 `expired_api_key`).
-- Rotation replaces the secret: the old hash moves to
-- `previous_secret_sha256`, valid until `previous_valid_until` (the grace
-- period), and `rotated_at` records when. Only the last secret before the
-- current one is kept: rotating again ends the earlier grace.
ALTER TABLE metadata.api_keys
    ADD COLUMN sites text[] CHECK (
        sites IS NULL OR (
            cardinality(sites) >= 1
            AND array_ndims(sites) = 1
            AND array_position(sites, NULL) IS NULL)),
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN rotated_at timestamptz,
    ADD COLUMN previous_secret_sha256 bytea
        CHECK (octet_length(previous_secret_sha256) = 32),
    ADD COLUMN previous_valid_until timestamptz,
    ADD CONSTRAINT api_keys_previous_secret_has_an_end CHECK (
        (previous_secret_sha256 IS NULL) = (previous_valid_until IS NULL));
