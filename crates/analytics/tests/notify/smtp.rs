//! A real SMTP server of the test's own: aiosmtpd (`smtp_server.py`, run
//! through `scripts/smtp-server`, which installs it), on a free port,
//! optionally requiring STARTTLS with a certificate of the test's CA and a
//! login. Every message it accepts is read back from its output file.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use stoker_testkit::{CertFiles, free_port};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long the first start may take: it may install aiosmtpd.
const START_PATIENCE: Duration = Duration::from_secs(300);

pub(crate) struct SmtpServer {
    pub(crate) port: u16,
    out: PathBuf,
    child: Child,
}

impl SmtpServer {
    /// A plain server (no TLS, no login).
    pub(crate) async fn start() -> Self {
        Self::start_with(None, None).await
    }

    /// A server offering and requiring STARTTLS with `cert`, and requiring
    /// `login` (user, password) when given.
    pub(crate) async fn start_with(cert: Option<&CertFiles>, login: Option<(&str, &str)>) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/notify/smtp_server.py");
        let port = free_port();
        let out = std::env::temp_dir().join(format!(
            "stoker_test_smtp_{}.jsonl",
            uuid::Uuid::new_v4().simple()
        ));
        let mut command = Command::new(root.join("scripts/smtp-server"));
        command
            .arg(program)
            .args(["--port", &port.to_string(), "--out"])
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(cert) = cert {
            command
                .arg("--cert")
                .arg(&cert.cert)
                .arg("--key")
                .arg(&cert.key);
        }
        if let Some((user, password)) = login {
            command.args(["--user", user, "--password", password]);
        }
        let mut child = command.spawn().expect("scripts/smtp-server starts");
        let stdout = child.stdout.take().expect("its output");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(START_PATIENCE, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.trim() == "ready" {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(ready, Ok(true), "the SMTP server did not start");
        Self { port, out, child }
    }

    /// Every message accepted so far: `{"mail_from", "rcpt_tos", "data",
    /// "tls", "login"}`.
    pub(crate) fn messages(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_file(&self.out);
    }
}

/// A message's decoded subject and text (lettre encodes non-ASCII and
/// long lines; the tests read them back).
pub(crate) fn subject_and_text(message: &Value) -> (String, String) {
    let data = message["data"]
        .as_str()
        .unwrap_or_default()
        .replace("\r\n", "\n");
    let (head, body) = data.split_once("\n\n").unwrap_or((&data, ""));
    let mut subject = String::new();
    let mut in_subject = false;
    let mut quoted_printable = false;
    let mut base64 = false;
    for line in head.lines() {
        if let Some(rest) = line.strip_prefix("Subject: ") {
            subject.push_str(rest);
            in_subject = true;
        } else if in_subject && line.starts_with([' ', '\t']) {
            subject.push_str(line);
        } else {
            in_subject = false;
        }
        if line.eq_ignore_ascii_case("Content-Transfer-Encoding: quoted-printable") {
            quoted_printable = true;
        }
        if line.eq_ignore_ascii_case("Content-Transfer-Encoding: base64") {
            base64 = true;
        }
    }
    let text = if quoted_printable {
        decode_quoted_printable(body)
    } else if base64 {
        base64_decode(&body.split_whitespace().collect::<String>()).unwrap_or_default()
    } else {
        body.to_owned()
    };
    (decode_words(&subject), text)
}

/// RFC 2047 encoded words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`) as text.
fn decode_words(text: &str) -> String {
    let mut out = String::new();
    for word in text.split_whitespace() {
        let decoded = word
            .strip_prefix("=?utf-8?")
            .or_else(|| word.strip_prefix("=?UTF-8?"))
            .and_then(|rest| rest.strip_suffix("?="))
            .and_then(|rest| {
                let (encoding, payload) = rest.split_once('?')?;
                match encoding {
                    "b" | "B" => base64_decode(payload),
                    _ => Some(decode_quoted_printable(&payload.replace('_', " "))),
                }
            });
        match decoded {
            Some(decoded) => out.push_str(&decoded),
            None => {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(word);
            }
        }
    }
    out
}

fn decode_quoted_printable(text: &str) -> String {
    let mut bytes = Vec::new();
    let text = text.replace("=\n", "");
    let raw = text.as_bytes();
    let mut index = 0;
    while index < raw.len() {
        if raw[index] == b'='
            && index + 2 < raw.len() + 1
            && let Some(byte) = text
                .get(index + 1..index + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            bytes.push(byte);
            index += 3;
            continue;
        }
        bytes.push(raw[index]);
        index += 1;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn base64_decode(text: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut bytes = Vec::new();
    for c in text.bytes().filter(|c| *c != b'=') {
        let value = ALPHABET.iter().position(|a| *a == c)? as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            bytes.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    String::from_utf8(bytes).ok()
}
