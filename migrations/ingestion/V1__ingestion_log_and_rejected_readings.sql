-- The ingestion log: what arrived per minute and source, accepted and
-- refused. Several ingestion processes add to the same rows.
CREATE TABLE ingestion.ingestion_log (
    minute      timestamptz NOT NULL,
    source      text NOT NULL CHECK (source IN ('mqtt', 'http')),
    messages    bigint NOT NULL DEFAULT 0,
    accepted    bigint NOT NULL DEFAULT 0,
    rejected    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, source)
);

-- Refused readings (dead letters), newest kept: ingestion prunes the
-- oldest beyond a bound. Site and sensor are stored as received, which may
-- be names that do not exist or are not even valid: no foreign keys.
CREATE TABLE ingestion.rejected_readings (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at     timestamptz NOT NULL,
    source          text NOT NULL CHECK (source IN ('mqtt', 'http')),
    reason          text NOT NULL,
    site            text NOT NULL,
    sensor          text,
    topic           text NOT NULL,
    detail          text NOT NULL,
    payload_excerpt text NOT NULL
);

CREATE INDEX rejected_readings_received_at ON ingestion.rejected_readings (received_at);
CREATE INDEX rejected_readings_site ON ingestion.rejected_readings (site, received_at);
