//! Base64 (RFC 4648): the standard alphabet with padding for SCRAM, the URL
//! alphabet without padding for JWTs. Forty lines instead of a dependency.

#[cfg_attr(not(feature = "scram"), allow(dead_code))]
const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn encode_with(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// Standard alphabet, padded.
#[cfg_attr(not(feature = "scram"), allow(dead_code))]
pub(crate) fn encode(data: &[u8]) -> String {
    encode_with(data, STD, true)
}

/// URL alphabet, unpadded (JWT segments).
pub(crate) fn encode_url(data: &[u8]) -> String {
    encode_with(data, URL, false)
}

/// Decodes the standard alphabet (padding required); `None` when malformed.
#[cfg_attr(not(feature = "scram"), allow(dead_code))]
pub(crate) fn decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if s.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for (ci, chunk) in s.chunks(4).enumerate() {
        let last = ci == s.len() / 4 - 1;
        let mut n = 0u32;
        let mut pads = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let v = if c == b'=' && last && i >= 2 {
                pads += 1;
                0
            } else if pads > 0 {
                return None;
            } else {
                STD.iter().position(|&a| a == c)? as u32
            };
            n = (n << 6) | v;
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pads]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain.as_bytes()), enc);
            assert_eq!(decode(enc).unwrap(), plain.as_bytes());
            assert_eq!(encode_url(plain.as_bytes()), enc.trim_end_matches('='));
        }
        assert_eq!(encode_url(&[0xfb, 0xff]), "-_8");
        for bad in ["Zg=", "Z===", "Zg==Zg==", "Zm9*"] {
            assert!(decode(bad).is_none(), "{bad}");
        }
    }
}
