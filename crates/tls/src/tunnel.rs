//! TLS for a client that can only speak plain streams to a TCP address or
//! a Unix socket (rumqttc built without its own TLS, which would bring a
//! second, vulnerable, rustls-webpki): the client connects to a private
//! Unix socket, and every connection made there is carried over TLS to the
//! server by this process, the server verified as for any other link.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpStream, UnixListener, UnixStream};

use crate::Connector;

/// A private Unix socket whose connections are carried over TLS to
/// `host:port`. Stops, and removes its socket, when dropped.
#[derive(Debug)]
pub struct Tunnel {
    directory: PathBuf,
    socket: PathBuf,
    last_error: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Tunnel {
    /// Opens the socket, in a directory only this user can enter. `label`
    /// names the link in logs ("alert notifications").
    pub fn open(
        label: &'static str,
        host: String,
        port: u16,
        connector: Connector,
    ) -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let number = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let directory =
            std::env::temp_dir().join(format!("stoker-tls-{}-{number}", std::process::id()));
        let _ = std::fs::remove_dir_all(&directory);
        std::fs::DirBuilder::new().mode(0o700).create(&directory)?;
        let socket = directory.join("s");
        let listener = UnixListener::bind(&socket)?;
        let last_error = Arc::new(Mutex::new(None));
        let task = tokio::spawn(serve(
            listener,
            label,
            host,
            port,
            connector,
            Arc::clone(&last_error),
        ));
        Ok(Self {
            directory,
            socket,
            last_error,
            task,
        })
    }

    /// The socket's path, for the client.
    pub fn path(&self) -> &Path {
        &self.socket
    }

    /// Why the last connection to the server failed, if it did (the
    /// client itself sees only a closed stream).
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .map(|error| error.clone())
            .unwrap_or_default()
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

async fn serve(
    listener: UnixListener,
    label: &'static str,
    host: String,
    port: u16,
    connector: Connector,
    last_error: Arc<Mutex<Option<String>>>,
) {
    let host: Arc<str> = host.into();
    loop {
        let local = match listener.accept().await {
            Ok((local, _)) => local,
            Err(error) => {
                tracing::warn!(link = label, %error, "TLS tunnel: cannot accept; stopping");
                return;
            }
        };
        let host = Arc::clone(&host);
        let connector = connector.clone();
        let last_error = Arc::clone(&last_error);
        tokio::spawn(async move {
            let outcome = carry(local, &host, port, &connector).await;
            let mut last = last_error
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match outcome {
                Ok(()) => *last = None,
                Err(error) => {
                    let error = error.to_string();
                    if last.as_deref() != Some(error.as_str()) {
                        tracing::warn!(link = label, server = %format!("{host}:{port}"), %error, "TLS connection failed");
                    }
                    *last = Some(error);
                }
            }
        });
    }
}

/// Connects to the server, verifies it, and copies both ways until either
/// side closes. An error only for a failed connection or handshake.
async fn carry(
    mut local: UnixStream,
    host: &str,
    port: u16,
    connector: &Connector,
) -> std::io::Result<()> {
    let tcp = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        TcpStream::connect((host, port)),
    )
    .await
    .map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no TCP connection within 10 s",
        )
    })??;
    tcp.set_nodelay(true)?;
    let mut remote = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        connector.connect(host, tcp),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no TLS handshake within 10 s"))?
    .map_err(|error| std::io::Error::new(error.kind(), format!("TLS handshake: {error}")))?;
    let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
    Ok(())
}
