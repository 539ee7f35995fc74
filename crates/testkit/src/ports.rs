//! Loopback ports: a free one for a server of the test's own, and waiting
//! until a server listens on one.

use std::time::Duration;

/// A free port on 127.0.0.1 (the kernel's choice; free when asked, so
/// bind it soon).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Waits until something accepts connections on `port` (20 s at most;
/// panics naming `what` after that).
pub async fn wait_for_port(port: u16, what: &str) {
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
