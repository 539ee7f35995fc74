use std::time::Duration;

/// Everything that can stop a simulation run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--rate` is not a finite number in (0, 1000] messages per second per
    /// site (above 1000, readings of one site would share a millisecond
    /// timestamp and overwrite each other).
    #[error("--rate must be more than 0 and at most 1000 messages per second per site, not {rate}")]
    InvalidRate {
        /// The rejected rate.
        rate: f64,
    },

    /// `--sites` is 0.
    #[error("--sites must be at least 1")]
    NoSites,

    /// `--sensors` is 0 or more than a message may carry.
    #[error("--sensors must be between 1 and {max}, not {sensors}")]
    InvalidSensorCount {
        /// The rejected number of sensors per site.
        sensors: u32,
        /// The most sensors a site may have.
        max: u32,
    },

    /// `--qos` is neither 0 nor 1.
    #[error("--qos must be 0 or 1, not {qos}")]
    InvalidQos {
        /// The rejected QoS.
        qos: u8,
    },

    /// `--messages` is 0.
    #[error("--messages must be at least 1")]
    NoMessages,

    /// `--site-prefix` does not give valid site slugs
    /// (`[a-z0-9][a-z0-9_-]{0,62}` once `-N` is appended).
    #[error(
        "--site-prefix `{prefix}` does not make valid site slugs: they must match [a-z0-9][a-z0-9_-]{{0,62}} with `-N` appended"
    )]
    InvalidSitePrefix {
        /// The rejected prefix.
        prefix: String,
    },

    /// `--topic-prefix` contains an MQTT wildcard (`+`, `#`) or NUL, or is
    /// too long.
    #[error(
        "--topic-prefix `{prefix}` must not contain `+`, `#` or NUL and must be shorter than 1024 bytes"
    )]
    InvalidTopicPrefix {
        /// The rejected prefix.
        prefix: String,
    },

    /// `--fault-cycle` is shorter than a second.
    #[error("--fault-cycle must be at least 1s, not {cycle:?}")]
    InvalidFaultCycle {
        /// The rejected cycle.
        cycle: Duration,
    },

    /// `--seed-api` is not an absolute http(s) URL.
    #[error("--seed-api `{url}` is not an http(s) base URL: {reason}")]
    InvalidSeedApiUrl {
        /// The rejected URL.
        url: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A seeding request to Stoker's API could not be sent or its answer
    /// not read.
    #[error("seeding request POST {url} failed")]
    SeedRequest {
        /// The URL that was posted to.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },

    /// Stoker's API refused to create a site or sensor (any non-2xx answer
    /// other than 409 Conflict, which means it exists already).
    #[error("seeding request POST {url} was answered {status}: {body}")]
    SeedRejected {
        /// The URL that was posted to.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },

    /// The MQTT client could not take a request because its event loop has
    /// stopped.
    #[error("MQTT client error")]
    Mqtt(#[from] rumqttc::ClientError),

    /// Not every message was acknowledged (QoS 1) or sent (QoS 0) before the
    /// wait for the broker ran out: the broker is unreachable or overloaded.
    #[error(
        "the broker confirmed {confirmed} of {published} messages within {waited:?}; the rest may be lost"
    )]
    Unconfirmed {
        /// Messages handed to the MQTT client.
        published: u64,
        /// Messages acknowledged by the broker (QoS 1) or written to the
        /// connection (QoS 0).
        confirmed: u64,
        /// How long the run waited for the rest.
        waited: Duration,
    },
}

/// The result of this crate's fallible functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;
