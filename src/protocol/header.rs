//! Request and response headers (versions 0–2 and 0–1), hand-written because
//! the client id stays a non-compact string even in flexible versions.

use super::api::ApiKey;
use super::primitives::{put_tagged_fields, Decoder, Encoder, RawTaggedField};
use crate::error::{Error, Result};

/// The header in front of every request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestHeader {
    /// The API key of the request.
    pub api_key: i16,
    /// The version of the request body.
    pub api_version: i16,
    /// Matches the response to the request.
    pub correlation_id: i32,
    /// The client id (header v1+).
    pub client_id: Option<String>,
    /// Tagged fields (header v2).
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

impl RequestHeader {
    /// Writes the header in `header_version` (0, 1 or 2).
    pub fn encode(&self, out: &mut Vec<u8>, header_version: i16) -> Result<()> {
        if !(0..=2).contains(&header_version) {
            return Err(Error::protocol(format!(
                "request header version {header_version} does not exist"
            )));
        }
        out.put_i16(self.api_key);
        out.put_i16(self.api_version);
        out.put_i32(self.correlation_id);
        if header_version >= 1 {
            out.put_nullable_string(self.client_id.as_deref())?;
        }
        if header_version >= 2 {
            put_tagged_fields(out, &[], &self.unknown_tagged_fields)?;
        }
        Ok(())
    }

    /// Reads a header in `header_version`.
    pub fn decode(d: &mut Decoder<'_>, header_version: i16) -> Result<RequestHeader> {
        let mut h = RequestHeader {
            api_key: d.i16()?,
            api_version: d.i16()?,
            correlation_id: d.i32()?,
            ..RequestHeader::default()
        };
        if header_version >= 1 {
            h.client_id = d.nullable_string()?;
        }
        if header_version >= 2 {
            h.unknown_tagged_fields = d.tagged_fields(|_, _| Ok(false))?;
        }
        Ok(h)
    }

    /// The API key as an [`ApiKey`].
    pub fn key(&self) -> ApiKey {
        ApiKey(self.api_key)
    }
}

/// The header in front of every response.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResponseHeader {
    /// The correlation id of the request this answers.
    pub correlation_id: i32,
    /// Tagged fields (header v1).
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

impl ResponseHeader {
    /// Writes the header in `header_version` (0 or 1).
    pub fn encode(&self, out: &mut Vec<u8>, header_version: i16) -> Result<()> {
        out.put_i32(self.correlation_id);
        if header_version >= 1 {
            put_tagged_fields(out, &[], &self.unknown_tagged_fields)?;
        }
        Ok(())
    }

    /// Reads a header in `header_version`.
    pub fn decode(d: &mut Decoder<'_>, header_version: i16) -> Result<ResponseHeader> {
        let mut h = ResponseHeader {
            correlation_id: d.i32()?,
            ..ResponseHeader::default()
        };
        if header_version >= 1 {
            h.unknown_tagged_fields = d.tagged_fields(|_, _| Ok(false))?;
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Bytes;

    #[test]
    fn request_header_v2_bytes() {
        let h = RequestHeader {
            api_key: 18,
            api_version: 3,
            correlation_id: 7,
            client_id: Some("ab".into()),
            unknown_tagged_fields: vec![],
        };
        let mut out = Vec::new();
        h.encode(&mut out, 2).unwrap();
        assert_eq!(out, [0, 18, 0, 3, 0, 0, 0, 7, 0, 2, b'a', b'b', 0]);
        let b = Bytes::from(out);
        let mut d = Decoder::new(&b);
        assert_eq!(RequestHeader::decode(&mut d, 2).unwrap(), h);
        d.finish("header").unwrap();
    }
}
