//! Redis key prefixes of a test's own on the shared server.

use crate::cleanup;

/// The Redis URL tests use: `REDIS_URL` or the local server.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A Redis key prefix of the test's own; its keys are deleted on drop.
#[derive(Debug)]
pub struct TestRedis {
    prefix: String,
}

impl TestRedis {
    /// A fresh prefix such as `test:1f3c…:`.
    pub fn new() -> Self {
        Self {
            prefix: format!("test:{}:", uuid::Uuid::new_v4().simple()),
        }
    }

    /// The prefix to configure.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Settings that write under the prefix.
    pub fn options(&self) -> stoker_cache::RedisOptions {
        stoker_cache::RedisOptions {
            url: redis_url(),
            key_prefix: self.prefix.clone(),
            ca_file: None,
        }
    }

    /// A cache that writes under the prefix.
    pub fn cache(&self) -> stoker_cache::Cache {
        stoker_cache::Cache::connect(&self.options()).expect("REDIS_URL")
    }

    /// A plain connection to the local Redis, for assertions.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(redis_url())
            .expect("REDIS_URL")
            .get_multiplexed_async_connection()
            .await
            .expect("Redis must run on 127.0.0.1:6379 (scripts/dev-up starts it)")
    }
}

impl Default for TestRedis {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let pattern = format!("{}*", self.prefix);
        cleanup(async move {
            let Ok(client) = redis::Client::open(redis_url()) else {
                return;
            };
            let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
                return;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query_async(&mut connection)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL")
                    .arg(keys)
                    .query_async(&mut connection)
                    .await;
            }
        });
    }
}
