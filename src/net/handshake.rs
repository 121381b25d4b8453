//! The connection handshake: ApiVersions (and, in a later release, SASL),
//! run on the raw stream before the reader thread starts.

use std::io::Write;
use std::time::Instant;

use super::connection::ConnectionOptions;
use super::transport::Stream;
use crate::bytes::Bytes;
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use crate::protocol::{
    encode_request, read_frame, ApiKey, BrokerVersions, Decoder, ErrorCode, Message, Request,
    ResponseHeader,
};

/// The version of ApiVersions tried first (Kafka 2.4+ understands v3; a
/// broker that does not answers UNSUPPORTED_VERSION in v0 with its range).
const FIRST_TRY: i16 = 3;

/// Runs ApiVersions on `stream` and returns what the broker supports.
pub(crate) fn run(
    stream: &mut Stream,
    opts: &ConnectionOptions,
    deadline: Instant,
) -> Result<BrokerVersions> {
    let mut version = FIRST_TRY.min(ApiVersionsRequest::MAX_VERSION);
    for attempt in 0..3 {
        let response = match exchange(stream, opts, version, attempt, deadline) {
            Ok(r) => r,
            // Only a broker that hangs up on the request (pre-0.10) counts
            // as refusing it; resets during a restart are retried instead.
            Err(e) if e.kind() == ErrorKind::Disconnected && attempt == 0 => {
                let Some(release) = opts.api_version else {
                    return Err(e);
                };
                log::warn!(
                    "broker {} refused ApiVersions ({e}); assuming the versions of Kafka {release:?} (api_version)",
                    opts.addr
                );
                let versions = BrokerVersions::for_kafka_release(release).ok_or_else(|| {
                    Error::config(
                        "api_version",
                        format!("{release:?}: brokers older than 0.10.0 are not supported"),
                    )
                })?;
                // The broker hung up: talk to it on a new connection.
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(handshake_timeout(opts));
                }
                *stream = opts.transport.connect(&opts.addr, left)?;
                return Ok(versions);
            }
            Err(e) => return Err(e),
        };
        let code = ErrorCode(response.error_code);
        if code == ErrorCode::UNSUPPORTED_VERSION {
            // The broker says which ApiVersions versions it speaks.
            let theirs = response
                .api_keys
                .iter()
                .find(|k| k.api_key == ApiKey::API_VERSIONS.0)
                .map_or(0, |k| k.max_version);
            let next = theirs.min(version - 1).max(0);
            if next == version {
                break;
            }
            version = next;
            continue;
        }
        code.check(|| format!("ApiVersions handshake with broker {}", opts.addr))?;
        return Ok(BrokerVersions::new(
            response
                .api_keys
                .iter()
                .map(|k| (k.api_key, k.min_version, k.max_version)),
        ));
    }
    Err(Error::new(
        ErrorKind::UnsupportedVersion,
        format!(
            "broker {} accepts no ApiVersions version this client speaks",
            opts.addr
        ),
    ))
}

fn exchange(
    stream: &mut Stream,
    opts: &ConnectionOptions,
    version: i16,
    correlation_id: i32,
    deadline: Instant,
) -> Result<ApiVersionsResponse> {
    let request = ApiVersionsRequest {
        client_software_name: "kafka-blocking".into(),
        client_software_version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    };
    let mut frame = Vec::with_capacity(64);
    encode_request(
        &mut frame,
        &request,
        version,
        correlation_id,
        Some(&opts.client_id),
    )?;
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(handshake_timeout(opts));
    }
    stream
        .writer
        .set_write_timeout(Some(left))
        .and_then(|_| stream.writer.write_all(&frame))
        .map_err(|e| Error::io(format!("sending ApiVersions to broker {}", opts.addr), e))?;
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(handshake_timeout(opts));
    }
    stream
        .reader
        .set_read_timeout(Some(left))
        .map_err(|e| Error::io("configuring the socket", e))?;
    let body = read_frame(&mut stream.reader, opts.max_frame).map_err(|e| {
        if e.kind() == ErrorKind::Timeout {
            handshake_timeout(opts)
        } else {
            e.context(format_args!(
                "ApiVersions handshake with broker {}",
                opts.addr
            ))
        }
    })?;
    let body = Bytes::from(body);
    let mut d = Decoder::new(&body);
    let header =
        ResponseHeader::decode(&mut d, ApiVersionsRequest::response_header_version(version))?;
    if header.correlation_id != correlation_id {
        return Err(Error::protocol(format!(
            "ApiVersions answer from {} has correlation id {} instead of {correlation_id}",
            opts.addr, header.correlation_id
        )));
    }
    let start = d.position();
    let rest = body.slice(start..);
    // A broker that does not know `version` answers in v0.
    let mut d = Decoder::new(&rest);
    match ApiVersionsResponse::decode(&mut d, version).and_then(|r| {
        d.finish("ApiVersions response")?;
        Ok(r)
    }) {
        Ok(r) => Ok(r),
        Err(e) if version > 0 => {
            let mut d0 = Decoder::new(&rest);
            let r = ApiVersionsResponse::decode(&mut d0, 0).map_err(|_| e)?;
            Ok(r)
        }
        Err(e) => Err(e),
    }
}

fn handshake_timeout(opts: &ConnectionOptions) -> Error {
    Error::timeout(format!(
        "broker {} did not complete the ApiVersions handshake within socket_connection_setup_timeout_ms ({} ms)",
        opts.addr,
        opts.connect_timeout.as_millis()
    ))
}
