//! rediss://: Redis over TLS, against a redis-server of the test's own
//! speaking TLS only, with certificates the test makes.

use stoker_cache::{Cache, RedisOptions};
use stoker_testkit::{TestCa, TestRedisServer};

fn options(url: String, ca: &TestCa) -> RedisOptions {
    RedisOptions {
        url,
        key_prefix: String::new(),
        ca_file: Some(ca.ca_file().to_owned()),
    }
}

#[tokio::test]
async fn rediss_verifies_the_server_by_name_and_plaintext_is_refused() {
    let ca = TestCa::new();
    let server = TestRedisServer::start_tls(ca.server("redis", &["localhost"]), ca.ca_file()).await;

    let cache = Cache::connect(&options(server.tls_url("localhost"), &ca)).unwrap();
    cache.ping().await.unwrap();

    // The certificate names localhost, not 127.0.0.1.
    let cache = Cache::connect(&options(server.tls_url("127.0.0.1"), &ca)).unwrap();
    let error = cache.ping().await.unwrap_err().to_string();
    assert!(error.contains("not valid for name"), "{error}");

    // Another CA did not sign it.
    let other = TestCa::new();
    let cache = Cache::connect(&options(server.tls_url("localhost"), &other)).unwrap();
    assert!(cache.ping().await.is_err());

    // Plain TCP to the TLS port gets no answer.
    let plain = Cache::connect(&RedisOptions {
        url: server.tls_url("localhost").replace("rediss://", "redis://"),
        key_prefix: String::new(),
        ca_file: None,
    })
    .unwrap();
    assert!(plain.ping().await.is_err());

    // A CA file with a plain URL: the operator meant TLS.
    let error = Cache::connect(&options("redis://localhost:6379".into(), &ca))
        .unwrap_err()
        .to_string();
    assert!(error.contains("rediss://"), "{error}");
}
