//! The load generator's HTTP/1.1: pre-built requests, response heads and
//! chunked bodies parsed by hand, one keep-alive connection per task.

use super::*;

/// A GET to InfluxDB's `/query` on the test database.
pub(crate) async fn influx_query_target(
    base: &str,
    database: &str,
    query: &str,
) -> anyhow::Result<Target> {
    let url = reqwest::Url::parse_with_params(
        &format!("{}/query", base.trim_end_matches('/')),
        [("db", database), ("epoch", "ms"), ("q", query)],
    )
    .with_context(|| format!("InfluxDB URL {base}"))?;
    if url.scheme() != "http" {
        return Err(anyhow!(
            "the InfluxDB baseline speaks plain HTTP only; INFLUX_URL is {base}"
        ));
    }
    let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = url.port_or_known_default().unwrap_or(8086);
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .with_context(|| format!("resolving {host}"))?
        .next()
        .ok_or_else(|| anyhow!("{host} resolves to no address"))?;
    let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    Ok(Target::get(addr, &format!("{host}:{port}"), &path, ""))
}

// ------------------------------------------------------------------ client
/// One request to send again and again: the address and the request bytes.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) path: String,
    pub(crate) request: Arc<[u8]>,
    /// HTTPS: the connector (trusting the run's CA) and the name the
    /// server's certificate is verified for.
    pub(crate) tls: Option<(stoker_tls::Connector, String)>,
}

impl Target {
    /// `GET path` with `extra_headers` (each ending in CRLF).
    pub(crate) fn get(addr: SocketAddr, host: &str, path: &str, extra_headers: &str) -> Self {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: stoker-bench-api\r\nAccept: application/json\r\n{extra_headers}\r\n"
        );
        Self {
            addr,
            path: path.to_owned(),
            request: Arc::from(request.into_bytes()),
            tls: None,
        }
    }

    /// The same request over TLS, the certificate verified for `name`.
    pub(crate) fn over_tls(self, connector: stoker_tls::Connector, name: &str) -> Self {
        Self {
            tls: Some((connector, name.to_owned())),
            ..self
        }
    }
}

/// How a response's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(usize),
    Chunked,
}

/// A parsed status line and headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) status: u16,
    /// Bytes of the status line and headers, blank line included.
    pub(crate) len: usize,
    pub(crate) framing: Framing,
    /// `Connection: close`: the server closes after this response.
    pub(crate) close: bool,
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The head of a response, once `data` holds all of it.
pub(crate) fn parse_head(data: &[u8]) -> Result<Option<Head>, String> {
    let Some(end) = find(data, b"\r\n\r\n") else {
        if data.len() > 64 * 1024 {
            return Err("response headers over 64 KiB".into());
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&data[..end]).map_err(|_| "non-UTF-8 response head")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    let mut close = status_line.starts_with("HTTP/1.0");
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    let framing = if chunked {
        Framing::Chunked
    } else if let Some(length) = length {
        Framing::Length(length)
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::Length(0)
    } else {
        return Err(format!(
            "answer {status} has neither Content-Length nor chunked encoding"
        ));
    };
    Ok(Some(Head {
        status,
        len: end + 4,
        framing,
        close,
    }))
}

/// Decodes a chunked body from `data` into `out` once `data` holds all of
/// it; returns the bytes it took (trailers included).
pub(crate) fn parse_chunked(data: &[u8], out: &mut Vec<u8>) -> Result<Option<usize>, String> {
    out.clear();
    let mut at = 0;
    loop {
        let Some(line_end) = find(&data[at..], b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&data[at..at + line_end]).map_err(|_| "bad chunk size")?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        at += line_end + 2;
        if size == 0 {
            // Trailers, each ending in CRLF, then an empty line.
            loop {
                let Some(line_end) = find(&data[at..], b"\r\n") else {
                    return Ok(None);
                };
                at += line_end + 2;
                if line_end == 0 {
                    return Ok(Some(at));
                }
            }
        }
        if data.len() < at + size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&data[at..at + size]);
        if &data[at + size..at + size + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF".into());
        }
        at += size + 2;
    }
}

/// Where the body of the last response is.
#[derive(Debug, Clone)]
pub(crate) enum BodyAt {
    Buffer(Range<usize>),
    Decoded,
}

/// One keep-alive connection, reading one response at a time.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) addr: SocketAddr,
    pub(crate) tls: Option<(stoker_tls::Connector, String)>,
    pub(crate) stream: Option<MaybeTls<TcpStream>>,
    pub(crate) buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..filled]`.
    pub(crate) start: usize,
    pub(crate) filled: usize,
    pub(crate) decoded: Vec<u8>,
}

impl Conn {
    pub(crate) fn new(target: &Target) -> Self {
        Self {
            addr: target.addr,
            tls: target.tls.clone(),
            stream: None,
            buf: vec![0; READ_BUFFER],
            start: 0,
            filled: 0,
            decoded: Vec::new(),
        }
    }

    pub(crate) fn body(&self, at: &BodyAt) -> &[u8] {
        match at {
            BodyAt::Buffer(range) => &self.buf[range.clone()],
            BodyAt::Decoded => &self.decoded,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.stream = None;
        self.start = 0;
        self.filled = 0;
    }

    /// Sends `request` and reads its response: the status and where its body is.
    pub(crate) async fn exchange(&mut self, request: &[u8]) -> std::io::Result<(u16, BodyAt)> {
        let invalid =
            |message: String| std::io::Error::new(std::io::ErrorKind::InvalidData, message);
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(match &self.tls {
                None => MaybeTls::Plain(stream),
                Some((connector, name)) => {
                    MaybeTls::Tls(Box::new(connector.connect(name, stream).await?))
                }
            });
            self.start = 0;
            self.filled = 0;
        }
        // The previous response's bytes are no longer needed.
        if self.start > 0 {
            self.buf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(invalid("no connection".into()));
        };
        stream.write_all(request).await?;
        loop {
            let data = &self.buf[self.start..self.filled];
            if let Some(head) = parse_head(data).map_err(invalid)? {
                let done = match head.framing {
                    Framing::Length(length) if data.len() >= head.len + length => Some((
                        head.len + length,
                        BodyAt::Buffer(self.start + head.len..self.start + head.len + length),
                    )),
                    Framing::Length(_) => None,
                    Framing::Chunked => parse_chunked(&data[head.len..], &mut self.decoded)
                        .map_err(invalid)?
                        .map(|taken| (head.len + taken, BodyAt::Decoded)),
                };
                if let Some((taken, body)) = done {
                    self.start += taken;
                    if head.close {
                        // The body stays readable until the next exchange.
                        self.stream = None;
                    }
                    return Ok((head.status, body));
                }
            }
            if self.filled == self.buf.len() {
                let grown = self.buf.len() * 2;
                self.buf.resize(grown, 0);
            }
            let read = stream.read(&mut self.buf[self.filled..]).await?;
            if read == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
            self.filled += read;
        }
    }
}

/// One request on a fresh connection: status and body.
pub(crate) async fn probe(target: &Target) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut conn = Conn::new(target);
    let (status, at) = tokio::time::timeout(REQUEST_TIMEOUT, conn.exchange(&target.request))
        .await
        .map_err(|_| anyhow!("no answer within {REQUEST_TIMEOUT:?}"))?
        .with_context(|| format!("GET {} on {}", target.path, target.addr))?;
    Ok((status, conn.body(&at).to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_parsed_once_complete() {
        let text = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}";
        assert_eq!(parse_head(&text[..20]), Ok(None));
        let head = parse_head(text).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.framing, Framing::Length(15));
        assert_eq!(&text[head.len..], b"{\"status\":\"ok\"}");
        assert!(!head.close);
        let closing = parse_head(
            b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\ntransfer-encoding: chunked\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!((closing.status, closing.framing), (503, Framing::Chunked));
        assert!(closing.close);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
    }

    #[test]
    fn chunked_bodies_are_decoded_once_complete() {
        let data = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\nHTTP/1.1";
        let mut out = Vec::new();
        assert_eq!(parse_chunked(&data[..8], &mut out), Ok(None));
        assert_eq!(parse_chunked(&data[..30], &mut out), Ok(None));
        let taken = parse_chunked(data, &mut out).unwrap().unwrap();
        assert_eq!(out, b"hello, world");
        assert_eq!(&data[taken..], b"HTTP/1.1");
        assert!(parse_chunked(b"zz\r\n", &mut out).is_err());
    }

    #[test]
    fn requests_are_plain_http_1_1() {
        let target = Target::get(
            ([127, 0, 0, 1], 8080).into(),
            "127.0.0.1:8080",
            "/healthz",
            "Authorization: Bearer x\r\n",
        );
        let text = String::from_utf8(target.request.to_vec()).unwrap();
        assert!(text.starts_with("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
        assert!(text.ends_with("Authorization: Bearer x\r\n\r\n"));
    }
}
