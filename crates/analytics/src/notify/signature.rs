//! The webhook signature: HMAC-SHA256 over `{timestamp}.{body}`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The `X-Stoker-Signature` header value of a webhook request:
/// `sha256=` and the lowercase hex HMAC-SHA256, keyed with `secret`, of
/// the `X-Stoker-Timestamp` value (unix seconds), a dot, and the body.
///
/// A receiver recomputes it from the raw body and the timestamp header,
/// compares it in constant time, and refuses timestamps far from its own
/// clock (a replayed request carries an old one).
///
/// ```
/// let header = stoker_analytics::notify::signature(b"hunter2", 1_700_000_000, r#"{"alert":"a1","transition":"fired"}"#);
/// assert_eq!(header, "sha256=0637936a39d57ad97f2d15e444e788fc94023ef6d32b9acd18eb1805809d9774");
/// ```
pub fn signature(secret: &[u8], timestamp: i64, body: &str) -> String {
    let mac = hmac_sha256(
        secret,
        &[timestamp.to_string().as_bytes(), b".", body.as_bytes()],
    );
    let mut header = String::with_capacity(7 + 64);
    header.push_str("sha256=");
    for byte in mac {
        header.push(char::from(HEX[usize::from(byte >> 4)]));
        header.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    header
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length (longer ones are hashed first).
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 1.
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], &[b"Hi There"])),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        // Test case 2: a key shorter than the block, data in two parts.
        assert_eq!(
            hex(&hmac_sha256(
                b"Jefe",
                &[b"what do ya want ", b"for nothing?"]
            )),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn signature_covers_timestamp_and_body() {
        // Computed independently: printf '%s' '1700000000.{…}' | openssl dgst -sha256 -hmac hunter2
        assert_eq!(
            signature(
                b"hunter2",
                1_700_000_000,
                r#"{"alert":"a1","transition":"fired"}"#
            ),
            "sha256=0637936a39d57ad97f2d15e444e788fc94023ef6d32b9acd18eb1805809d9774"
        );
        assert_eq!(
            signature(b"", 1_700_000_000, ""),
            "sha256=c1da1b6c6b8e9da7f4bbb90f7cab0820f271ad19ccbf80c88479c4e14f37d1c6"
        );
        let body = r#"{"alert":"a1"}"#;
        assert_ne!(signature(b"k", 1, body), signature(b"k", 2, body));
        assert_ne!(signature(b"k", 1, body), signature(b"j", 1, body));
    }
}
