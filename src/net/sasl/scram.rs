//! SASL SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), client side.
//!
//! The client nonce comes from the operating system's CSPRNG; the salted
//! password is PBKDF2-HMAC; the server's final signature is checked, so a
//! server that does not know the password cannot complete the login.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use super::{base64, Mechanism, SaslMechanism, Secret};
use crate::error::{Error, ErrorKind, Result};

/// The iteration counts Kafka brokers accept (`ScramMechanism`).
const MIN_ITERATIONS: u32 = 4096;
const MAX_ITERATIONS: u32 = 16384;

/// The hash a SCRAM mechanism is built on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            // HMAC takes keys of any length: this cannot fail.
            match <M as hmac::digest::KeyInit>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            }
        }
        match self {
            Hash::Sha256 => run::<Hmac<Sha256>>(key, data),
            Hash::Sha512 => run::<Hmac<Sha512>>(key, data),
        }
    }

    fn h(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn hi(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Hash::Sha256 => {
                let mut out = vec![0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out
            }
            Hash::Sha512 => {
                let mut out = vec![0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out
            }
        }
    }
}

enum State {
    Initial,
    SentFirst,
    SentFinal { server_signature: Vec<u8> },
    Done,
}

/// The client side of one SCRAM exchange.
pub(crate) struct ScramClient {
    hash: Hash,
    password: Secret,
    nonce: String,
    first_bare: String,
    state: State,
}

fn fail(why: impl Into<String>) -> Error {
    Error::new(ErrorKind::Authentication, why)
}

/// RFC 5802 `saslname`: `=` and `,` escaped.
fn sasl_name(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

impl ScramClient {
    pub(crate) fn new(mechanism: SaslMechanism, user: &str, password: &Secret) -> Result<Self> {
        let mut raw = [0u8; 24];
        getrandom::getrandom(&mut raw).map_err(|e| {
            fail(format!(
                "the operating system's random number generator failed ({e}); no SCRAM nonce"
            ))
        })?;
        let hash = match mechanism {
            SaslMechanism::ScramSha512 => Hash::Sha512,
            _ => Hash::Sha256,
        };
        Ok(ScramClient::with_nonce(
            hash,
            user,
            password,
            base64::encode(&raw),
        ))
    }

    fn with_nonce(hash: Hash, user: &str, password: &Secret, nonce: String) -> ScramClient {
        ScramClient {
            hash,
            password: password.clone(),
            first_bare: format!("n={},r={nonce}", sasl_name(user)),
            nonce,
            state: State::Initial,
        }
    }

    fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| fail("the server-first-message is not UTF-8"))?;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attr in server_first.split(',') {
            match attr.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = Some(v),
                Some(("i", v)) => iterations = Some(v),
                Some(("e", v)) => return Err(fail(format!("the broker answered `{v}`"))),
                Some(("m", _)) => {
                    return Err(fail(
                        "the broker requires a SCRAM extension this client lacks",
                    ))
                }
                _ => {}
            }
        }
        let nonce = nonce.ok_or_else(|| fail("the server-first-message has no nonce"))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(fail(
                "the server nonce does not extend the client nonce (RFC 5802 §5.1)",
            ));
        }
        let salt = salt
            .and_then(base64::decode)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| fail("the server-first-message has no valid salt"))?;
        let iterations: u32 = iterations
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| fail("the server-first-message has no valid iteration count"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(fail(format!(
                "the iteration count {iterations} is outside {MIN_ITERATIONS}..={MAX_ITERATIONS}"
            )));
        }
        let h = self.hash;
        let salted = h.hi(self.password.expose().as_bytes(), &salt, iterations);
        let client_key = h.hmac(&salted, b"Client Key");
        let stored_key = h.h(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let client_signature = h.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = h.hmac(&salted, b"Server Key");
        self.state = State::SentFinal {
            server_signature: h.hmac(&server_key, auth_message.as_bytes()),
        };
        Ok(format!("{without_proof},p={}", base64::encode(&proof)).into_bytes())
    }
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Mechanism for ScramClient {
    fn first(&mut self) -> Result<Vec<u8>> {
        self.state = State::SentFirst;
        Ok(format!("n,,{}", self.first_bare).into_bytes())
    }

    fn next(&mut self, server: &[u8]) -> Result<Option<Vec<u8>>> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::SentFirst => self.client_final(server).map(Some),
            State::SentFinal { server_signature } => {
                let text = String::from_utf8_lossy(server);
                if let Some(e) = text.strip_prefix("e=") {
                    return Err(fail(format!("the broker answered `{e}`")));
                }
                let v = text
                    .strip_prefix("v=")
                    .map(|v| v.split(',').next().unwrap_or(v))
                    .and_then(base64::decode)
                    .ok_or_else(|| fail("the server-final-message has no verifier"))?;
                if !same(&v, &server_signature) {
                    return Err(fail(
                        "the broker's SCRAM server signature does not verify: it cannot prove it knows the password (a wrong or impersonated broker); not logged in",
                    ));
                }
                Ok(None)
            }
            State::Initial | State::Done => Err(fail("SCRAM exchange out of order")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(hash: Hash, nonce: &str, server_first: &str, want_final: &str, server_final: &str) {
        let mut c = ScramClient::with_nonce(hash, "user", &Secret::new("pencil"), nonce.into());
        assert_eq!(
            c.first().unwrap(),
            format!("n,,n=user,r={nonce}").as_bytes()
        );
        let fin = c.next(server_first.as_bytes()).unwrap().unwrap();
        assert_eq!(String::from_utf8(fin).unwrap(), want_final);
        assert_eq!(c.next(server_final.as_bytes()).unwrap(), None);
    }

    /// RFC 7677 §3.
    #[test]
    fn rfc7677_sha256_vector() {
        run(
            Hash::Sha256,
            "rOprNGfwEbeRWgbNEkqO",
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        );
    }

    /// SCRAM-SHA-512 has no RFC vector; this one was computed with Python's
    /// hashlib/hmac (an independent implementation) for RFC 7677's inputs.
    #[test]
    fn sha512_known_answer() {
        run(
            Hash::Sha512,
            "rOprNGfwEbeRWgbNEkqO",
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            SHA512_FINAL,
            SHA512_SERVER_FINAL,
        );
    }

    const SHA512_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=gMGXRcevScNtxZ6/8lQYpGtnsNAc3mGcmNomv+xnoOMw+3R2xNJdMNnzMlTN8PPC6wdp6dybEmDYXYTxwnYPJQ==";
    const SHA512_SERVER_FINAL: &str =
        "v=ZQnYEgWQMFmmsM8aQMF0nDDCy/AgCzkwk8CmMZYcMg0vSVlKDanekLtifDSeVGT4+5ZxXnJq199RVG2rR7N7Zw==";

    #[test]
    fn a_bad_server_signature_fails() {
        let mut c = ScramClient::with_nonce(
            Hash::Sha256,
            "user",
            &Secret::new("pencil"),
            "rOprNGfwEbeRWgbNEkqO".into(),
        );
        c.first().unwrap();
        c.next(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap();
        let e = c
            .next(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Authentication);
        assert!(e.to_string().contains("server signature"), "{e}");
    }

    #[test]
    fn hostile_server_first_messages_fail() {
        for bad in [
            "r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "r=abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "r=abcX,s=!!,i=4096",
            "r=abcX,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1",
            "r=abcX,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999",
            "e=unknown-user",
            "m=ext,r=abcX,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        ] {
            let mut c = ScramClient::with_nonce(Hash::Sha256, "u", &Secret::new("p"), "abc".into());
            c.first().unwrap();
            let e = c.next(bad.as_bytes()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Authentication, "{bad}");
        }
        assert_eq!(sasl_name("a=b,c"), "a=3Db=2Cc");
    }

    proptest::proptest! {
        /// Whatever a server sends, the client answers or fails; it never
        /// panics (both steps, with arbitrary bytes).
        #[test]
        fn arbitrary_server_messages_never_panic(
            first in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            last in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            prefix in proptest::prelude::any::<bool>(),
        ) {
            let mut c = ScramClient::with_nonce(Hash::Sha256, "u", &Secret::new("p"), "abc".into());
            c.first().unwrap();
            let mut msg = if prefix {
                b"r=abcX,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,".to_vec()
            } else {
                Vec::new()
            };
            msg.extend_from_slice(&first);
            if c.next(&msg).is_ok() {
                let _ = c.next(&last);
            }
            let _ = base64::decode(&String::from_utf8_lossy(&last));
        }
    }
}
