//! The connection handshake: ApiVersions, then SASL when configured, run on
//! the raw stream before the reader thread starts.

use std::io::Write;
use std::time::Instant;

use super::connection::{decode_response, ConnectionOptions};
use super::sasl::{self, Session};
use super::transport::Stream;
use crate::bytes::Bytes;
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use crate::protocol::{
    encode_request, read_frame, ApiKey, BrokerVersions, Decoder, ErrorCode, Message, Request,
    ResponseHeader,
};

/// What the handshake learnt.
pub(crate) struct Handshake {
    pub(crate) versions: BrokerVersions,
    pub(crate) session: Session,
}

/// Runs ApiVersions, then the SASL login when `opts` asks for one.
pub(crate) fn run(
    stream: &mut Stream,
    opts: &ConnectionOptions,
    deadline: Instant,
) -> Result<Handshake> {
    let versions = api_versions(stream, opts, deadline)?;
    let session = match &opts.sasl {
        None => Session::default(),
        Some(config) => {
            let mut ex = RawExchange {
                stream,
                opts,
                deadline,
                correlation_id: 100,
            };
            sasl::authenticate(&mut ex, config, &versions, &opts.addr)?
        }
    };
    Ok(Handshake { versions, session })
}

/// SASL requests on the raw stream, before the reader thread exists.
struct RawExchange<'a> {
    stream: &'a mut Stream,
    opts: &'a ConnectionOptions,
    deadline: Instant,
    correlation_id: i32,
}

impl sasl::Exchange for RawExchange<'_> {
    fn call<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response> {
        self.correlation_id += 1;
        let mut frame = Vec::with_capacity(64);
        encode_request(
            &mut frame,
            request,
            version,
            self.correlation_id,
            Some(&self.opts.client_id),
        )?;
        let what = R::API_KEY.name();
        let body = roundtrip(
            self.stream,
            self.opts,
            &frame,
            self.correlation_id,
            R::response_header_version(version),
            self.deadline,
            what,
        )?;
        decode_response::<R>(&body, version)
    }

    fn raw(&mut self, token: &[u8]) -> Result<Vec<u8>> {
        let mut frame = Vec::with_capacity(token.len() + 4);
        frame.extend_from_slice(&(token.len() as i32).to_be_bytes());
        frame.extend_from_slice(token);
        write_all(
            self.stream,
            self.opts,
            &frame,
            self.deadline,
            "a SASL token",
        )?;
        read_all(self.stream, self.opts, self.deadline, "a SASL token")
    }
}

/// The version of ApiVersions tried first (Kafka 2.4+ understands v3; a
/// broker that does not answers UNSUPPORTED_VERSION in v0 with its range).
const FIRST_TRY: i16 = 3;

/// Runs ApiVersions on `stream` and returns what the broker supports.
fn api_versions(
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
                    return Err(handshake_timeout(opts, "ApiVersions"));
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
        )
        .with_finalized_features(
            response
                .finalized_features
                .iter()
                .map(|f| (f.name.clone(), f.max_version_level)),
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
    let rest = roundtrip(
        stream,
        opts,
        &frame,
        correlation_id,
        ApiVersionsRequest::response_header_version(version),
        deadline,
        "ApiVersions",
    )?;
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

/// Writes `frame`, reads the answer and returns its body after the header.
fn roundtrip(
    stream: &mut Stream,
    opts: &ConnectionOptions,
    frame: &[u8],
    correlation_id: i32,
    header_version: i16,
    deadline: Instant,
    what: &str,
) -> Result<Bytes> {
    write_all(stream, opts, frame, deadline, what)?;
    let body = Bytes::from(read_all(stream, opts, deadline, what)?);
    let mut d = Decoder::new(&body);
    let header = ResponseHeader::decode(&mut d, header_version)?;
    if header.correlation_id != correlation_id {
        return Err(Error::protocol(format!(
            "{what} answer from {} has correlation id {} instead of {correlation_id}",
            opts.addr, header.correlation_id
        )));
    }
    let start = d.position();
    Ok(body.slice(start..))
}

fn write_all(
    stream: &mut Stream,
    opts: &ConnectionOptions,
    bytes: &[u8],
    deadline: Instant,
    what: &str,
) -> Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(handshake_timeout(opts, what));
    }
    stream
        .writer
        .set_write_timeout(Some(left))
        .and_then(|_| stream.writer.write_all(bytes))
        .map_err(|e| Error::io(format!("sending {what} to broker {}", opts.addr), e))
}

fn read_all(
    stream: &mut Stream,
    opts: &ConnectionOptions,
    deadline: Instant,
    what: &str,
) -> Result<Vec<u8>> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(handshake_timeout(opts, what));
    }
    stream
        .reader
        .set_read_timeout(Some(left))
        .map_err(|e| Error::io("configuring the socket", e))?;
    read_frame(&mut stream.reader, opts.max_frame).map_err(|e| {
        if e.kind() == ErrorKind::Timeout {
            handshake_timeout(opts, what)
        } else {
            e.context(format_args!("{what} handshake with broker {}", opts.addr))
        }
    })
}

fn handshake_timeout(opts: &ConnectionOptions, what: &str) -> Error {
    Error::timeout(format!(
        "broker {} did not complete the {what} handshake within socket_connection_setup_timeout_ms ({} ms)",
        opts.addr,
        opts.connect_timeout.as_millis()
    ))
}
