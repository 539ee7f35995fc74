//! InfluxDB over HTTPS with INFLUX_CA_FILE, against an influxd of the
//! test's own serving HTTPS only, with certificates the test makes.

use stoker_testkit::{TestCa, TestInfluxServer};
use stoker_timeseries::{Influx, InfluxOptions};

#[tokio::test]
async fn influx_over_https_is_verified_against_the_ca_file() {
    let ca = TestCa::new();
    let server = TestInfluxServer::start_tls(&ca.server("influx", &["localhost"])).await;
    let options = InfluxOptions {
        ca_file: Some(ca.ca_file().to_owned()),
        ..server.options("stoker_tls_test")
    };
    // influxd may take a moment after its port opens.
    let mut connected = None;
    for _ in 0..50 {
        if let Ok(influx) = Influx::connect(&options).await {
            connected = Some(influx);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let influx = connected.expect("InfluxDB answers over HTTPS");
    assert!(influx.version().starts_with("1."), "{}", influx.version());

    // Another CA did not sign its certificate.
    let other = TestCa::new();
    let refused = Influx::connect(&InfluxOptions {
        ca_file: Some(other.ca_file().to_owned()),
        ..options.clone()
    })
    .await;
    assert!(refused.is_err());

    // Plain HTTP to the HTTPS port is refused.
    let plain = Influx::connect(&InfluxOptions {
        url: options.url.replace("https://", "http://"),
        ..options.clone()
    })
    .await;
    assert!(plain.is_err());

    // An unreadable CA file is named.
    let error = Influx::connect(&InfluxOptions {
        ca_file: Some("/nonexistent/ca.pem".into()),
        ..options
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(error.contains("/nonexistent/ca.pem"), "{error}");
}
