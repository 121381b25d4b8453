//! SASL PLAIN (RFC 4616): one message, `\0user\0password`.

use super::{Mechanism, Secret};
use crate::error::Result;

pub(crate) struct Plain {
    message: Vec<u8>,
}

impl Plain {
    pub(crate) fn new(username: &str, password: &Secret) -> Plain {
        let mut message = Vec::with_capacity(username.len() + password.expose().len() + 2);
        message.push(0);
        message.extend_from_slice(username.as_bytes());
        message.push(0);
        message.extend_from_slice(password.expose().as_bytes());
        Plain { message }
    }
}

impl Mechanism for Plain {
    fn first(&mut self) -> Result<Vec<u8>> {
        Ok(std::mem::take(&mut self.message))
    }

    fn next(&mut self, _server: &[u8]) -> Result<Option<Vec<u8>>> {
        // Success or failure comes as the SaslAuthenticate error code.
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_layout() {
        let mut p = Plain::new("alice", &Secret::new("pw"));
        assert_eq!(p.first().unwrap(), b"\0alice\0pw");
        assert_eq!(p.next(b"").unwrap(), None);
    }
}
