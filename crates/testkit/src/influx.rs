//! InfluxDB databases of a test's own on the shared server.

use stoker_timeseries::{Influx, InfluxOptions};

use crate::{cleanup, unique_name};

/// The InfluxDB settings tests use: `INFLUX_URL` or the local server.
pub fn influx_options() -> InfluxOptions {
    let mut options = InfluxOptions::default();
    if let Ok(url) = std::env::var("INFLUX_URL") {
        options.url = url;
    }
    options
}

/// An InfluxDB database of the test's own (InfluxDB 1.x).
#[derive(Debug)]
pub struct TestInflux {
    influx: Influx,
}

impl TestInflux {
    const PREFIX: &'static str = "stoker_test";

    /// Creates a fresh database on the local InfluxDB.
    pub async fn create() -> Self {
        let server = Influx::connect(&influx_options())
            .await
            .expect("InfluxDB must run on 127.0.0.1:8086 (scripts/dev-up starts it)");
        let name = unique_name(Self::PREFIX);
        let influx = server.with_database(&name);
        influx
            .ensure_database()
            .await
            .expect("create test database");
        Self { influx }
    }

    /// The connection, bound to the test's database.
    pub fn influx(&self) -> &Influx {
        &self.influx
    }

    /// Settings that point at the test's database.
    pub fn options(&self) -> InfluxOptions {
        let mut options = influx_options();
        options.bucket = self.influx.database().to_owned();
        options
    }
}

impl Drop for TestInflux {
    fn drop(&mut self) {
        // A fresh connection: pooled ones are driven by the test's runtime,
        // which is blocked while this runs.
        let options = self.options();
        cleanup(async move {
            if let Ok(influx) = Influx::connect(&options).await {
                let _ = influx.drop_database().await;
            }
        });
    }
}
