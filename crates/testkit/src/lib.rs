//! Test support: every test gets its own Postgres database, InfluxDB
//! database, Redis key prefix and MQTT topic prefix on the real local
//! servers, so tests run in parallel and leave nothing behind.
//!
//! Each resource is removed when its guard drops. Postgres database names
//! carry their creation time, and creating one also drops test databases
//! older than an hour, which a killed test run may have left behind.
//!
//! ```no_run
//! # async fn example() {
//! let postgres = stoker_testkit::TestPostgres::create().await;
//! let influx = stoker_testkit::TestInflux::create().await;
//! let redis = stoker_testkit::TestRedis::new();
//! let topics = stoker_testkit::unique_topic_prefix();
//! # }
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use stoker_timeseries::{Influx, InfluxOptions};

/// Test databases older than this are taken for leftovers of a killed run.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// The admin connection for creating databases: `TEST_POSTGRES_URL`, or the
/// local server with trust auth.
fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn unique_name(prefix: &str) -> String {
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    format!("{prefix}_{created}_{}", uuid::Uuid::new_v4().simple())
}

/// Whether a name made by [`unique_name`] is older than [`STALE_AFTER`].
fn is_stale(name: &str, prefix: &str) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .and_then(|rest| rest.split('_').next())
        .and_then(|secs| secs.parse::<u64>().ok())
        .is_some_and(|created| now.saturating_sub(created) > STALE_AFTER.as_secs())
}

/// Runs async cleanup from `Drop`, on a thread of its own so it works
/// whether or not the dropping thread is inside a runtime (for tests'
/// own guards too).
pub fn cleanup<F>(work: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let thread = std::thread::spawn(move || {
        if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            runtime.block_on(work);
        }
    });
    let _ = thread.join();
}

async fn admin_client() -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect(&postgres_admin_url(), tokio_postgres::NoTls)
            .await
            .expect("Postgres must run on 127.0.0.1:5432 (scripts/dev-up starts it)");
    tokio::spawn(connection);
    client
}

/// A Postgres database of the test's own.
#[derive(Debug)]
pub struct TestPostgres {
    name: String,
}

impl TestPostgres {
    const PREFIX: &'static str = "stoker_test";

    /// Creates a fresh, empty database.
    pub async fn create() -> Self {
        let client = admin_client().await;
        let stale = client
            .query(
                "SELECT datname FROM pg_database WHERE datname LIKE 'stoker\\_test\\_%'",
                &[],
            )
            .await
            .expect("list databases");
        for row in stale {
            let name: String = row.get(0);
            if is_stale(&name, Self::PREFIX) {
                let _ = client
                    .execute(
                        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                        &[],
                    )
                    .await;
            }
        }
        let name = unique_name(Self::PREFIX);
        client
            .execute(&format!("CREATE DATABASE \"{name}\""), &[])
            .await
            .expect("create test database");
        Self { name }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Settings that point at the database.
    pub fn options(&self) -> stoker_postgres::PostgresOptions {
        stoker_postgres::PostgresOptions::from_url(self.url())
    }

    /// A migrated pool on the database.
    pub async fn migrated_pool(&self) -> stoker_postgres::Pool {
        let pool = stoker_postgres::connect(&self.options()).expect("pool");
        stoker_metadata::migrate(&pool).await.expect("migrate");
        pool
    }

    /// A connection URL for the database.
    pub fn url(&self) -> String {
        let admin = postgres_admin_url();
        match admin.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{}", self.name),
            None => admin,
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let name = self.name.clone();
        cleanup(async move {
            let client = admin_client().await;
            let _ = client
                .execute(
                    &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                    &[],
                )
                .await;
        });
    }
}

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

/// An MQTT topic prefix of the test's own, such as `test/1f3c…/`.
pub fn unique_topic_prefix() -> String {
    format!("test/{}/", uuid::Uuid::new_v4().simple())
}

/// Publishes each `(topic, payload)` at QoS 1 to the local broker and
/// returns once the broker has acknowledged all of them.
pub async fn publish_qos1(messages: &[(String, Vec<u8>)]) {
    publish_qos1_to(SYSTEM_BROKER_PORT, messages).await;
}

/// The machine's own broker, started before the tests (scripts/dev-up).
pub const SYSTEM_BROKER_PORT: u16 = 1883;

/// Publishes at QoS 1 to the broker on `port` and waits for every acknowledgement.
pub async fn publish_qos1_to(port: u16, messages: &[(String, Vec<u8>)]) {
    let mut options =
        rumqttc::MqttOptions::new(unique_client_id("test-publisher"), "127.0.0.1", port);
    options.set_max_packet_size(1024 * 1024, 1024 * 1024);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, messages.len() + 10);
    for (topic, payload) in messages {
        client
            .publish(
                topic.as_str(),
                rumqttc::QoS::AtLeastOnce,
                false,
                payload.clone(),
            )
            .await
            .expect("queue publish");
    }
    let mut acknowledged = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while acknowledged < messages.len() {
        let event = tokio::time::timeout_at(deadline, eventloop.poll())
            .await
            .expect("the broker acknowledges within 30 s")
            .expect("Mosquitto must run on 127.0.0.1:1883 (scripts/dev-up starts it)");
        if let rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)) = event {
            acknowledged += 1;
        }
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), eventloop.poll()).await;
}

/// Removes the broker's persistent session of `client_id` (a test's
/// ingestion leaves one): connect with a clean session, then disconnect.
pub async fn clear_mqtt_session(client_id: &str) {
    clear_mqtt_session_to(SYSTEM_BROKER_PORT, client_id).await;
}

/// Removes the persistent session of `client_id` on the broker on `port`.
pub async fn clear_mqtt_session_to(port: u16, client_id: &str) {
    let mut options = rumqttc::MqttOptions::new(client_id, "127.0.0.1", port);
    options.set_clean_session(true);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Ok(event)) = tokio::time::timeout_at(deadline, eventloop.poll()).await {
        match event {
            rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)) => {
                let _ = client.try_disconnect();
            }
            rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect) => break,
            _ => {}
        }
    }
}

/// A Mosquitto of the test's own on a free port, configured as the project
/// ships it (`docker/mosquitto/mosquitto.conf`: 1,000 messages in flight,
/// a million queued per offline session), unlike the machine's broker with
/// Mosquitto's defaults. Killed on drop.
#[derive(Debug)]
pub struct TestBroker {
    port: u16,
    directory: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl TestBroker {
    /// Starts the broker and waits until it accepts connections.
    pub async fn start() -> Self {
        Self::start_from(
            include_str!("../../../docker/mosquitto/mosquitto.conf"),
            None,
        )
        .await
    }

    /// Starts a broker configured as the project ships it for production
    /// (`docker/mosquitto/mosquitto.secure.conf`: no anonymous access, the
    /// shipped ACL `docker/mosquitto/acl`) with the users of
    /// `password_file`, read where it is (so [`TestBroker::reload`] picks
    /// up changes to it). Killed on drop.
    pub async fn start_secure(password_file: &std::path::Path) -> Self {
        Self::start_from(
            include_str!("../../../docker/mosquitto/mosquitto.secure.conf"),
            Some(password_file),
        )
        .await
    }

    /// Starts Mosquitto with a shipped config, its listener, persistence
    /// and log moved into a directory of the test's own; with a password
    /// file, the shipped ACL too.
    async fn start_from(shipped: &str, password_file: Option<&std::path::Path>) -> Self {
        let port = free_port();
        let directory = std::env::temp_dir().join(unique_name("stoker_test_broker"));
        std::fs::create_dir_all(directory.join("data")).expect("broker directory");
        let acl = directory.join("acl");
        if password_file.is_some() {
            std::fs::write(&acl, include_str!("../../../docker/mosquitto/acl"))
                .expect("broker ACL");
        }
        let mut config = String::new();
        for line in shipped.lines() {
            let keyword = line.split_whitespace().next().unwrap_or_default();
            match (keyword, password_file) {
                ("listener", _) => config.push_str(&format!("listener {port} 127.0.0.1\n")),
                ("persistence_location", _) => config.push_str(&format!(
                    "persistence_location {}/\n",
                    directory.join("data").display()
                )),
                ("password_file", Some(file)) => {
                    config.push_str(&format!("password_file {}\n", file.display()));
                }
                ("acl_file", Some(_)) => {
                    config.push_str(&format!("acl_file {}\n", acl.display()));
                }
                ("log_dest" | "pid_file" | "user" | "log_type", _)
                | ("connection_messages", None) => {}
                _ => {
                    config.push_str(line);
                    config.push('\n');
                }
            }
        }
        config.push_str(&format!(
            "log_dest file {}\nlog_type error\nlog_type warning\n",
            directory.join("mosquitto.log").display()
        ));
        if password_file.is_some() {
            // Notices too: they say why a client was refused.
            config.push_str("log_type notice\n");
        }
        // As root, Mosquitto would switch to user `mosquitto`, which cannot
        // write the test's directory.
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        config.push_str(&format!("user {user}\n"));
        std::fs::write(directory.join("mosquitto.conf"), config).expect("broker config");
        let mut broker = Self {
            port,
            directory,
            child: None,
        };
        broker.spawn().await;
        broker
    }

    /// SIGHUP: the broker reads its password and ACL files again (and
    /// disconnects clients whose user is gone). Returns at once; the
    /// reload follows within milliseconds.
    pub fn reload(&self) {
        if let Some(child) = &self.child {
            let _ = std::process::Command::new("kill")
                .args(["-HUP", &child.id().to_string()])
                .status();
        }
    }

    /// The broker's log so far (empty if none).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.directory.join("mosquitto.log")).unwrap_or_default()
    }

    async fn spawn(&mut self) {
        let child = std::process::Command::new("mosquitto")
            .arg("-c")
            .arg(self.directory.join("mosquitto.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mosquitto must be installed (scripts/dev-up installs it)");
        self.child = Some(child);
        wait_for_port(self.port, "the test broker").await;
    }

    /// Stops the broker (SIGTERM: it saves its persistent state).
    pub fn stop(&mut self) {
        stop_child(&mut self.child);
    }

    /// Stops and starts the broker again on the same port and state.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// The broker's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Publishes at QoS 1 and waits for every acknowledgement.
    pub async fn publish_qos1(&self, messages: &[(String, Vec<u8>)]) {
        publish_qos1_to(self.port, messages).await;
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

async fn wait_for_port(port: u16, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not start on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn stop_child(child: &mut Option<std::process::Child>) {
    if let Some(mut running) = child.take() {
        let _ = std::process::Command::new("kill")
            .arg(running.id().to_string())
            .status();
        let _ = running.wait();
    }
}

/// An InfluxDB server (Debian's `influxd`, 1.x) of the test's own, on free
/// ports with its data in a temporary directory, for tests that stop and
/// restart InfluxDB without disturbing the shared one. Removed on drop.
#[derive(Debug)]
pub struct TestInfluxServer {
    port: u16,
    directory: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl TestInfluxServer {
    /// Starts `influxd` and waits until it answers.
    pub async fn start() -> Self {
        let port = free_port();
        let rpc_port = free_port();
        let directory = std::env::temp_dir().join(unique_name("stoker_test_influxd"));
        std::fs::create_dir_all(&directory).expect("influxd directory");
        let config = format!(
            "reporting-enabled = false\nbind-address = \"127.0.0.1:{rpc_port}\"\n\
             [meta]\n  dir = \"{dir}/meta\"\n  logging-enabled = false\n\
             [data]\n  dir = \"{dir}/data\"\n  wal-dir = \"{dir}/wal\"\n  query-log-enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n\
             [monitor]\n  store-enabled = false\n\
             [logging]\n  level = \"warn\"\n",
            dir = directory.display()
        );
        std::fs::write(directory.join("influxdb.conf"), config).expect("influxd config");
        let mut server = Self {
            port,
            directory,
            child: None,
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let child = std::process::Command::new("influxd")
            .arg("-config")
            .arg(self.directory.join("influxdb.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("influxd must be installed (scripts/dev-up installs it)");
        self.child = Some(child);
        wait_for_port(self.port, "influxd").await;
    }

    /// Stops the server (SIGTERM).
    pub fn stop(&mut self) {
        stop_child(&mut self.child);
    }

    /// Starts it again on the same port and data.
    pub async fn start_again(&mut self) {
        self.spawn().await;
    }

    /// `http://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Settings for database `database` on this server.
    pub fn options(&self, database: &str) -> InfluxOptions {
        InfluxOptions {
            url: self.url(),
            bucket: database.to_owned(),
            ..InfluxOptions::default()
        }
    }
}

impl Drop for TestInfluxServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

/// A Redis server of the test's own on a free port (nothing persisted),
/// for tests that stop Redis. Killed on drop.
#[derive(Debug)]
pub struct TestRedisServer {
    port: u16,
    child: Option<std::process::Child>,
}

impl TestRedisServer {
    /// Starts `redis-server` and waits until it accepts connections.
    pub async fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            child: None,
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/dev-up installs it)");
        self.child = Some(child);
        wait_for_port(self.port, "redis-server").await;
    }

    /// Kills the server (SIGKILL): no shutdown of any kind.
    pub fn kill(&mut self) {
        if let Some(mut running) = self.child.take() {
            let _ = running.kill();
            let _ = running.wait();
        }
    }

    /// Stops the server.
    pub fn stop(&mut self) {
        stop_child(&mut self.child);
    }

    /// Starts it again on the same port (empty: Redis only caches).
    pub async fn start_again(&mut self) {
        self.spawn().await;
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for TestRedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `condition` every 20 ms until it holds; panics with `what` after
/// `limit`.
pub async fn wait_until<F: FnMut() -> bool>(what: &str, limit: Duration, mut condition: F) {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A unique MQTT client id with a readable stem.
pub fn unique_client_id(stem: &str) -> String {
    format!("{stem}-{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_names_are_recognised_by_their_timestamp() {
        assert!(is_stale("stoker_test_1000_abc", "stoker_test"));
        assert!(!is_stale(&unique_name("stoker_test"), "stoker_test"));
        assert!(!is_stale("stoker_other_1000_abc", "stoker_test"));
    }
}

/// A Postgres server of the test's own (Debian's binaries, `initdb` into a
/// temporary directory, trust auth, fsync off), on a free port, for tests
/// that stop and restart Postgres without disturbing the shared one.
/// Database `stoker` exists. Removed on drop.
///
/// Postgres refuses to run as root: when the test runs as root, the server
/// runs as the `postgres` system user.
#[derive(Debug)]
pub struct TestPostgresServer {
    port: u16,
    directory: std::path::PathBuf,
    bin: std::path::PathBuf,
    user: Option<(u32, u32)>,
    child: Option<std::process::Child>,
}

impl TestPostgresServer {
    /// Creates the cluster, starts it and creates database `stoker`.
    pub async fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("Postgres server binaries under /usr/lib/postgresql (package postgresql)")
            .filter_map(|entry| entry.ok().map(|entry| entry.path().join("bin")))
            .filter(|bin| bin.join("postgres").exists())
            .max()
            .expect("a Postgres server version under /usr/lib/postgresql");
        let directory = std::env::temp_dir().join(unique_name("stoker_test_postgres"));
        std::fs::create_dir_all(&directory).expect("postgres directory");
        let user = Self::run_as();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&directory, Some(uid), Some(gid)).expect("chown");
        }
        let mut server = Self {
            port: free_port(),
            directory,
            bin,
            user,
            child: None,
        };
        let status = server
            .command("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(server.directory.join("data"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run initdb");
        assert!(status.success(), "initdb failed");
        server.spawn().await;
        let (client, connection) = tokio_postgres::connect(
            &format!("postgres://postgres@127.0.0.1:{}/postgres", server.port),
            tokio_postgres::NoTls,
        )
        .await
        .expect("connect to the test Postgres server");
        tokio::spawn(connection);
        client
            .execute("CREATE DATABASE stoker", &[])
            .await
            .expect("create database stoker");
        server
    }

    /// The `postgres` user's uid and gid when running as root.
    fn run_as() -> Option<(u32, u32)> {
        let me = std::process::Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&me.stdout).trim() != "0" {
            return None;
        }
        let id = |flag: &str| -> Option<u32> {
            let output = std::process::Command::new("id")
                .args([flag, "postgres"])
                .output()
                .ok()?;
            String::from_utf8_lossy(&output.stdout).trim().parse().ok()
        };
        Some((id("-u")?, id("-g")?))
    }

    fn command(&self, program: &str) -> std::process::Command {
        use std::os::unix::process::CommandExt as _;
        let mut command = std::process::Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        command
    }

    async fn spawn(&mut self) {
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.directory.join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.directory)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "log_min_messages=fatal",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        wait_for_port(self.port, "postgres").await;
        // The port opens before the server accepts sessions.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio_postgres::connect(
            &format!("postgres://postgres@127.0.0.1:{}/postgres", self.port),
            tokio_postgres::NoTls,
        )
        .await
        .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "postgres did not accept connections"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server: fast shutdown (SIGINT), open sessions are ended.
    pub fn stop(&mut self) {
        if let Some(mut running) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .args(["-INT", &running.id().to_string()])
                .status();
            let _ = running.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub async fn start_again(&mut self) {
        self.spawn().await;
    }

    /// `postgres://postgres@127.0.0.1:{port}/stoker`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/stoker", self.port)
    }
}

impl Drop for TestPostgresServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .args(["-QUIT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}
