//! What `stoker check` says about a link's TLS: the protocol, and when
//! the server's certificate expires (read from its DER: the validity's
//! notAfter, UTCTime or GeneralizedTime).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::CertificateDer;

/// "TLS 1.3, certificate valid until 2027-12-07 19:00:00 UTC (364 days)"
/// for a client connection after its handshake.
pub fn describe(connection: &rustls::ClientConnection) -> String {
    let version = match connection.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2",
        _ => "TLS",
    };
    let expiry = connection
        .peer_certificates()
        .and_then(<[CertificateDer<'_>]>::first)
        .and_then(|cert| not_after(cert.as_ref()));
    match expiry {
        Some(expires) => format!("{version}, certificate {}", describe_expiry(expires)),
        None => format!("{version}, certificate expiry unreadable"),
    }
}

/// Connects to `host:port`, does the TLS handshake with `tls` (the server
/// verified by name) and describes it as [`describe`] does: how `stoker
/// check` reports a link whose client hides its TLS (Redis, InfluxDB).
pub async fn probe(host: &str, port: u16, tls: &crate::ClientTls) -> Result<String, String> {
    let connector = tls.connector().map_err(|error| error.to_string())?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let stream = tokio::net::TcpStream::connect((bare, port))
        .await
        .map_err(|error| format!("cannot connect to {host}:{port}: {error}"))?;
    let stream = connector
        .connect(host, stream)
        .await
        .map_err(|error| format!("TLS handshake failed: {error}"))?;
    Ok(describe(stream.get_ref().1))
}

/// "valid until … (N days)", or "EXPIRED on …".
pub fn describe_expiry(expires: SystemTime) -> String {
    let date = format_utc(expires);
    match expires.duration_since(SystemTime::now()) {
        Ok(left) => format!("valid until {date} ({} days)", left.as_secs() / 86_400),
        Err(_) => format!("EXPIRED on {date}"),
    }
}

/// When a DER certificate stops being valid; `None` if it cannot be read.
pub fn not_after(der: &[u8]) -> Option<SystemTime> {
    let (certificate, _) = element(der, 0x30)?;
    let (tbs, _) = element(certificate, 0x30)?;
    let mut rest = tbs;
    // [0] version, optional.
    if rest.first() == Some(&0xa0) {
        rest = element(rest, 0xa0)?.1;
    }
    for tag in [0x02, 0x30, 0x30] {
        // serialNumber, signature, issuer
        rest = element(rest, tag)?.1;
    }
    let (validity, _) = element(rest, 0x30)?;
    // notBefore, then notAfter.
    let (_, rest) = any_element(validity)?;
    let tag = *rest.first()?;
    let (time, _) = element(rest, tag)?;
    parse_time(tag, time)
}

/// The `tls-server-end-point` channel binding of a server certificate
/// (RFC 5929): its hash with the hash of its signature algorithm, SHA-256
/// for MD5 and SHA-1. `None` for an algorithm that names no hash (Ed25519,
/// RSA-PSS): the client then binds nothing, which SCRAM allows.
pub fn tls_server_end_point(der: &[u8]) -> Option<Vec<u8>> {
    use sha2::Digest as _;
    let (certificate, _) = element(der, 0x30)?;
    let (_tbs, rest) = element(certificate, 0x30)?;
    let (algorithm, _) = element(rest, 0x30)?;
    let (oid, _) = element(algorithm, 0x06)?;
    // 1.2.840.113549.1.1.x (RSA) and 1.2.840.10045.4.x (ECDSA).
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
    const ECDSA_SHA2: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
    let bits = match oid {
        [prefix @ .., last] if prefix == RSA => match *last {
            4 | 5 | 11 => 256,
            12 => 384,
            13 => 512,
            _ => return None,
        },
        _ if oid == ECDSA_SHA1 => 256,
        [prefix @ .., last] if prefix == ECDSA_SHA2 => match *last {
            2 => 256,
            3 => 384,
            4 => 512,
            _ => return None,
        },
        _ => return None,
    };
    Some(match bits {
        256 => sha2::Sha256::digest(der).to_vec(),
        384 => sha2::Sha384::digest(der).to_vec(),
        _ => sha2::Sha512::digest(der).to_vec(),
    })
}

/// One DER element of `tag`: its contents and what follows it.
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *input.first()? != tag {
        return None;
    }
    let (length, header) = length(&input[1..])?;
    let body = input.get(1 + header..1 + header + length)?;
    Some((body, &input[1 + header + length..]))
}

/// Any one element: its contents and what follows.
fn any_element(input: &[u8]) -> Option<(&[u8], &[u8])> {
    element(input, *input.first()?)
}

/// A DER length: its value and how many bytes it took.
fn length(input: &[u8]) -> Option<(usize, usize)> {
    let first = *input.first()?;
    if first < 0x80 {
        return Some((usize::from(first), 1));
    }
    let count = usize::from(first & 0x7f);
    if count == 0 || count > 4 {
        return None;
    }
    let mut value = 0usize;
    for byte in input.get(1..=count)? {
        value = (value << 8) | usize::from(*byte);
    }
    Some((value, 1 + count))
}

/// UTCTime (0x17, YYMMDDHHMMSSZ) or GeneralizedTime (0x18,
/// YYYYMMDDHHMMSSZ).
fn parse_time(tag: u8, text: &[u8]) -> Option<SystemTime> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let short: i64 = text.get(..2)?.parse().ok()?;
            (
                if short >= 50 {
                    1900 + short
                } else {
                    2000 + short
                },
                text.get(2..)?,
            )
        }
        0x18 => (text.get(..4)?.parse().ok()?, text.get(4..)?),
        _ => return None,
    };
    let field = |at: usize| -> Option<i64> { rest.get(at..at + 2)?.parse().ok() };
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    let seconds = u64::try_from(seconds).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// "YYYY-MM-DD HH:MM:SS UTC".
fn format_utc(time: SystemTime) -> String {
    let seconds = time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
    });
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_convert_both_ways() {
        let time = parse_time(0x17, b"271207190000Z").unwrap();
        assert_eq!(format_utc(time), "2027-12-07 19:00:00 UTC");
        let time = parse_time(0x18, b"20480229235959Z").unwrap();
        assert_eq!(format_utc(time), "2048-02-29 23:59:59 UTC");
        assert!(parse_time(0x17, b"nonsense").is_none());
        assert!(not_after(b"\x30\x03\x02\x01\x00").is_none());
        assert!(not_after(b"").is_none());
    }
}
