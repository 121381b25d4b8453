//! The server side of SCRAM-SHA-256/512 (RFC 5802, RFC 7677) for the SASL
//! front. Written apart from the client (`net/sasl/scram.rs`) and checked
//! against the RFC's vectors on its own, so the two cannot share a mistake
//! and still pass each other.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use crate::net::sasl::base64;

/// Which SHA-2 the mechanism uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sha {
    S256,
    S512,
}

fn mac(sha: Sha, key: &[u8], msg: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    match sha {
        Sha::S256 => <Hmac<Sha256> as Mac>::new_from_slice(key).map(|mut m| {
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }),
        Sha::S512 => <Hmac<Sha512> as Mac>::new_from_slice(key).map(|mut m| {
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }),
    }
    .unwrap_or_default()
}

/// The credentials a SCRAM server stores for a user (RFC 5802 §3).
#[derive(Clone)]
pub(crate) struct Credential {
    salt: Vec<u8>,
    iterations: u32,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl Credential {
    pub(crate) fn new(sha: Sha, password: &str, salt: Vec<u8>, iterations: u32) -> Credential {
        let mut salted = vec![0u8; if sha == Sha::S256 { 32 } else { 64 }];
        match sha {
            Sha::S256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut salted)
            }
            Sha::S512 => {
                pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), &salt, iterations, &mut salted)
            }
        }
        let client_key = mac(sha, &salted, b"Client Key");
        let stored_key = match sha {
            Sha::S256 => Sha256::digest(&client_key).to_vec(),
            Sha::S512 => Sha512::digest(&client_key).to_vec(),
        };
        Credential {
            salt,
            iterations,
            stored_key,
            server_key: mac(sha, &salted, b"Server Key"),
        }
    }
}

/// What the server does after a client message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send this and wait for the next client message.
    Continue(Vec<u8>),
    /// Logged in as the user; send this final message.
    Done(Vec<u8>, String),
    /// The login failed, with Kafka's reason.
    Fail(String),
}

/// One SCRAM exchange, server side.
pub(crate) struct ScramServer {
    sha: Sha,
    server_nonce: String,
    bad_signature: bool,
    state: Option<(String, Credential, String, String)>, // user, credential, first-bare+server-first, nonce
}

const INVALID: &str =
    "Authentication failed during authentication due to invalid credentials with SASL mechanism";

impl ScramServer {
    pub(crate) fn new(sha: Sha, server_nonce: String, bad_signature: bool) -> ScramServer {
        ScramServer {
            sha,
            server_nonce,
            bad_signature,
            state: None,
        }
    }

    fn name(&self) -> &'static str {
        match self.sha {
            Sha::S256 => "SCRAM-SHA-256",
            Sha::S512 => "SCRAM-SHA-512",
        }
    }

    /// Handles the client's next message; `lookup` finds a user's
    /// credential.
    pub(crate) fn step(&mut self, msg: &[u8], lookup: &dyn Fn(&str) -> Option<Credential>) -> Step {
        let Ok(msg) = std::str::from_utf8(msg) else {
            return Step::Fail("SCRAM message is not UTF-8".into());
        };
        match self.state.take() {
            None => {
                // gs2-header "n,," then client-first-message-bare.
                let Some(bare) = msg.strip_prefix("n,,") else {
                    return Step::Fail("unsupported gs2 header (channel binding?)".into());
                };
                let mut user = None;
                let mut nonce = None;
                for a in bare.split(',') {
                    if let Some(v) = a.strip_prefix("n=") {
                        user = Some(v.replace("=2C", ",").replace("=3D", "="));
                    } else if let Some(v) = a.strip_prefix("r=") {
                        nonce = Some(v.to_owned());
                    }
                }
                let (Some(user), Some(nonce)) = (user, nonce) else {
                    return Step::Fail("malformed client-first-message".into());
                };
                let Some(cred) = lookup(&user) else {
                    return Step::Fail(format!("{INVALID} {}", self.name()));
                };
                let full_nonce = format!("{nonce}{}", self.server_nonce);
                let server_first = format!(
                    "r={full_nonce},s={},i={}",
                    base64::encode(&cred.salt),
                    cred.iterations
                );
                self.state = Some((user, cred, format!("{bare},{server_first}"), full_nonce));
                Step::Continue(server_first.into_bytes())
            }
            Some((user, cred, first_part, nonce)) => {
                let Some((without_proof, proof)) = msg.rsplit_once(",p=") else {
                    return Step::Fail("client-final-message has no proof".into());
                };
                if without_proof != format!("c=biws,r={nonce}") {
                    return Step::Fail("client-final-message: wrong nonce or binding".into());
                }
                let Some(proof) = base64::decode(proof) else {
                    return Step::Fail("client proof is not base64".into());
                };
                let auth_message = format!("{first_part},{without_proof}");
                let signature = mac(self.sha, &cred.stored_key, auth_message.as_bytes());
                if proof.len() != signature.len() {
                    return Step::Fail(format!("{INVALID} {}", self.name()));
                }
                let client_key: Vec<u8> =
                    proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
                let check = match self.sha {
                    Sha::S256 => Sha256::digest(&client_key).to_vec(),
                    Sha::S512 => Sha512::digest(&client_key).to_vec(),
                };
                if check != cred.stored_key {
                    return Step::Fail(format!("{INVALID} {}", self.name()));
                }
                let mut v = mac(self.sha, &cred.server_key, auth_message.as_bytes());
                if self.bad_signature {
                    v[0] ^= 0xff;
                }
                Step::Done(format!("v={}", base64::encode(&v)).into_bytes(), user)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_user(sha: Sha) -> impl Fn(&str) -> Option<Credential> {
        move |u: &str| {
            (u == "user").then(|| {
                Credential::new(
                    sha,
                    "pencil",
                    base64::decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap(),
                    4096,
                )
            })
        }
    }

    /// RFC 7677 §3, played from the server's side.
    #[test]
    fn rfc7677_vector_server_side() {
        let mut s = ScramServer::new(Sha::S256, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(), false);
        let lookup = rfc_user(Sha::S256);
        assert_eq!(
            s.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &lookup),
            Step::Continue(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".to_vec()
            )
        );
        assert_eq!(
            s.step(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", &lookup),
            Step::Done(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(), "user".into())
        );
    }

    /// The SHA-512 vector computed with Python's hashlib for RFC 7677's
    /// inputs (the client checks the same one).
    #[test]
    fn sha512_vector_server_side() {
        let mut s = ScramServer::new(Sha::S512, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(), false);
        let lookup = rfc_user(Sha::S512);
        assert!(matches!(
            s.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &lookup),
            Step::Continue(_)
        ));
        assert_eq!(
            s.step(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=gMGXRcevScNtxZ6/8lQYpGtnsNAc3mGcmNomv+xnoOMw+3R2xNJdMNnzMlTN8PPC6wdp6dybEmDYXYTxwnYPJQ==", &lookup),
            Step::Done(b"v=ZQnYEgWQMFmmsM8aQMF0nDDCy/AgCzkwk8CmMZYcMg0vSVlKDanekLtifDSeVGT4+5ZxXnJq199RVG2rR7N7Zw==".to_vec(), "user".into())
        );
    }

    #[test]
    fn wrong_proofs_and_unknown_users_fail() {
        let lookup = rfc_user(Sha::S256);
        let mut s = ScramServer::new(Sha::S256, "X".into(), false);
        assert!(matches!(
            s.step(b"n,,n=nobody,r=abc", &lookup),
            Step::Fail(_)
        ));
        let mut s = ScramServer::new(Sha::S256, "X".into(), false);
        assert!(matches!(
            s.step(b"n,,n=user,r=abc", &lookup),
            Step::Continue(_)
        ));
        let bad = format!("c=biws,r=abcX,p={}", base64::encode(&[0u8; 32]));
        assert!(matches!(s.step(bad.as_bytes(), &lookup), Step::Fail(_)));
    }
}
