//! Size-prefixed framing: every request and response is an int32 length
//! followed by that many bytes.

use std::io::Read;

use super::api::Request;
use super::header::RequestHeader;
use crate::error::{Error, Result};

/// The default cap on a received frame (kafka-python's
/// `receive_message_max_bytes` is unbounded; the Java client uses 100 MiB
/// for `socket.request.max.bytes` on the broker side).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// Encodes a whole framed request (length prefix, header, body) for
/// `version` into `out`, which is cleared first.
pub fn encode_request<R: Request>(
    out: &mut Vec<u8>,
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
) -> Result<()> {
    out.clear();
    out.extend_from_slice(&[0; 4]);
    let header = RequestHeader {
        api_key: R::API_KEY.0,
        api_version: version,
        correlation_id,
        client_id: client_id.map(str::to_owned),
        unknown_tagged_fields: Vec::new(),
    };
    header.encode(out, R::request_header_version(version))?;
    request.encode(out, version)?;
    let len = i32::try_from(out.len() - 4)
        .map_err(|_| Error::protocol("request is larger than 2 GiB"))?;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Reads one frame (without its length prefix) from `r`.
///
/// A length that is negative or larger than `max` is a protocol error and
/// nothing is allocated for it. The buffer grows as bytes arrive rather than
/// all at once, so a peer that announces a large frame and stalls costs
/// nothing.
pub fn read_frame(r: &mut impl Read, max: usize) -> Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            // A clean close between frames: the peer hung up (a broker
            // that does not know the request does exactly this).
            Error::new(
                crate::ErrorKind::Disconnected,
                "the peer closed the connection",
            )
        } else {
            Error::io("reading a frame length", e)
        }
    })?;
    if looks_like_tls(len) {
        return Err(Error::new(
            crate::ErrorKind::Tls,
            "the broker answered with a TLS record (probably an alert rejecting a plaintext request): the listener expects TLS; set security_protocol to SSL (or SASL_SSL)",
        ));
    }
    let len = i32::from_be_bytes(len);
    if len < 0 || len as usize > max {
        return Err(Error::protocol(format!(
            "frame length {len} is outside 0..={max} (receive_message_max_bytes); the peer may not be a Kafka broker"
        )));
    }
    let len = len as usize;
    let mut buf = Vec::with_capacity(len.min(1 << 20));
    let got = r
        .take(len as u64)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("reading a frame", e))?;
    if got != len {
        return Err(Error::new(
            crate::ErrorKind::Disconnected,
            format!("connection closed after {got} of a {len}-byte frame"),
        ));
    }
    Ok(buf)
}

/// Whether four bytes read as a frame length are the start of a TLS record
/// instead: content type alert (21) or handshake (22), then version 3.0 to
/// 3.4. As a length that is over 350 MB, so no real frame is mistaken.
fn looks_like_tls(b: [u8; 4]) -> bool {
    matches!(b, [0x15 | 0x16, 0x03, 0x00..=0x04, _])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_limits() {
        let mut data: &[u8] = &[0, 0, 0, 3, 1, 2, 3];
        assert_eq!(read_frame(&mut data, 10).unwrap(), vec![1, 2, 3]);
        let mut data: &[u8] = &[0, 0, 0, 11, 1, 2, 3];
        assert!(read_frame(&mut data, 10).is_err());
        let mut data: &[u8] = &[0xff, 0, 0, 0];
        assert!(read_frame(&mut data, 10).is_err());
        let mut data: &[u8] = &[0, 0, 0, 5, 1, 2];
        assert!(read_frame(&mut data, 10).is_err());
        let mut data: &[u8] = &[0, 0];
        assert!(read_frame(&mut data, 10).is_err());
        let mut data: &[u8] = &[];
        let e = read_frame(&mut data, 10).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Disconnected, "{e}");
        // A TLS alert (what a TLS listener answers a plaintext request).
        let mut data: &[u8] = &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32];
        let e = read_frame(&mut data, 1 << 30).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Tls);
        assert!(e.to_string().contains("security_protocol"), "{e}");
    }
}
