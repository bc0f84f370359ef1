//! A software WebAuthn authenticator (the client side of the protocol, browser included) for
//! the passkey cases: it reads the options nauth answers, and builds what
//! `navigator.credentials.create` / `.get` would give back, with a real P-256 key. The
//! attestation is `none`: `authData` = SHA-256(rpId) | flags | signCount | AAGUID |
//! credential id | COSE key; an assertion signs `authData || SHA-256(clientDataJSON)`. The
//! engine's verification (webauthn-rs) is therefore fully real. Written from the WebAuthn
//! Level 3 and CTAP 2 specifications, not from the engine.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::Signer;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// User present.
const UP: u8 = 0x01;
/// User verified.
const UV: u8 = 0x04;
/// Backup eligible.
const BE: u8 = 0x08;
/// Backed up.
const BS: u8 = 0x10;
/// Attested credential data included.
const AT: u8 = 0x40;

/// One credential the authenticator holds (a resident key: it keeps the user handle).
#[derive(Clone)]
pub struct SoftCredential {
    /// The credential id.
    pub id: Vec<u8>,
    /// The user handle of the account it was made for (`user.id` of the options).
    pub user_handle: Vec<u8>,
    /// The signature counter, raised before each assertion.
    pub counter: u32,
    key: SigningKey,
}

impl std::fmt::Debug for SoftCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftCredential")
            .field("id", &B64.encode(&self.id))
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

/// A software authenticator and the browser around it. Clone it to make a clone of the
/// device (same keys, same counters from then on).
#[derive(Debug, Clone)]
pub struct SoftAuthenticator {
    /// The origin the "browser" puts in `clientDataJSON` (change it to act as another site).
    pub origin: String,
    /// The relying party id the authenticator scopes its credentials to.
    pub rp_id: String,
    /// Whether the user is verified (PIN or biometric): the UV flag.
    pub user_verified: bool,
    /// Whether the credentials are synced passkeys (BE and BS flags).
    pub backed_up: bool,
    /// Whether the counter moves (false: always 0, like most synced passkeys).
    pub counts: bool,
    /// The authenticator model's AAGUID.
    pub aaguid: [u8; 16],
    /// The credentials it holds, oldest first.
    pub credentials: Vec<SoftCredential>,
}

fn cbor_head(major: u8, n: u64) -> Vec<u8> {
    let m = major << 5;
    match n {
        0..=23 => vec![m | n as u8],
        24..=0xff => vec![m | 24, n as u8],
        0x100..=0xffff => {
            let mut v = vec![m | 25];
            v.extend((n as u16).to_be_bytes());
            v
        }
        _ => {
            let mut v = vec![m | 26];
            v.extend((n as u32).to_be_bytes());
            v
        }
    }
}

fn cbor_int(i: i64) -> Vec<u8> {
    if i >= 0 {
        cbor_head(0, i as u64)
    } else {
        cbor_head(1, (-1 - i) as u64)
    }
}

fn cbor_bytes(b: &[u8]) -> Vec<u8> {
    let mut v = cbor_head(2, b.len() as u64);
    v.extend(b);
    v
}

fn cbor_text(s: &str) -> Vec<u8> {
    let mut v = cbor_head(3, s.len() as u64);
    v.extend(s.as_bytes());
    v
}

/// The base64url string of `v` decoded (a missing or bad value is a test failure).
fn unb64(v: &Value, what: &str) -> Vec<u8> {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"));
    B64.decode(s.trim_end_matches('='))
        .unwrap_or_else(|e| panic!("{what} is not base64url: {e}"))
}

impl SoftAuthenticator {
    /// An authenticator for `rp_id`, in a browser on `origin`; user verification on, not
    /// synced, counting.
    pub fn new(rp_id: &str, origin: &str) -> Self {
        SoftAuthenticator {
            origin: origin.into(),
            rp_id: rp_id.into(),
            user_verified: true,
            backed_up: false,
            counts: true,
            aaguid: *b"nauth-soft-authn",
            credentials: Vec::new(),
        }
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        json!({
            "type": kind,
            "challenge": challenge,
            "origin": self.origin,
            "crossOrigin": false,
        })
        .to_string()
        .into_bytes()
    }

    fn flags(&self) -> u8 {
        let mut f = UP;
        if self.user_verified {
            f |= UV;
        }
        if self.backed_up {
            f |= BE | BS;
        }
        f
    }

    /// `navigator.credentials.create({ publicKey })`: a new resident credential, and the
    /// `PublicKeyCredential` as JSON. Panics when one of `excludeCredentials` is held (the
    /// browser's `InvalidStateError`).
    pub fn create(&mut self, public_key: &Value) -> Value {
        for ex in public_key["excludeCredentials"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let id = unb64(&ex["id"], "excludeCredentials.id");
            assert!(
                !self.credentials.iter().any(|c| c.id == id),
                "InvalidStateError: the authenticator already holds an excluded credential"
            );
        }
        let challenge = public_key["challenge"].as_str().expect("challenge");
        let user_handle = unb64(&public_key["user"]["id"], "user.id");
        let key = loop {
            let secret = crate::secrets::random_bytes::<32>();
            if let Ok(k) = SigningKey::from_slice(&secret) {
                break k;
            }
        };
        let id = crate::secrets::random_bytes::<32>().to_vec();
        let point = key.verifying_key().to_encoded_point(false);
        let mut cose = cbor_head(5, 5);
        cose.extend(cbor_int(1)); // kty: EC2
        cose.extend(cbor_int(2));
        cose.extend(cbor_int(3)); // alg: ES256
        cose.extend(cbor_int(-7));
        cose.extend(cbor_int(-1)); // crv: P-256
        cose.extend(cbor_int(1));
        cose.extend(cbor_int(-2));
        cose.extend(cbor_bytes(point.x().expect("x")));
        cose.extend(cbor_int(-3));
        cose.extend(cbor_bytes(point.y().expect("y")));
        let mut auth = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        auth.push(self.flags() | AT);
        auth.extend(0u32.to_be_bytes());
        auth.extend(self.aaguid);
        auth.extend((id.len() as u16).to_be_bytes());
        auth.extend(&id);
        auth.extend(cose);
        let mut att = cbor_head(5, 3);
        att.extend(cbor_text("fmt"));
        att.extend(cbor_text("none"));
        att.extend(cbor_text("attStmt"));
        att.extend(cbor_head(5, 0));
        att.extend(cbor_text("authData"));
        att.extend(cbor_bytes(&auth));
        let client_data = self.client_data("webauthn.create", challenge);
        self.credentials.push(SoftCredential {
            id: id.clone(),
            user_handle,
            counter: 0,
            key,
        });
        json!({
            "id": B64.encode(&id),
            "rawId": B64.encode(&id),
            "type": "public-key",
            "response": {
                "attestationObject": B64.encode(&att),
                "clientDataJSON": B64.encode(&client_data),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        })
    }

    /// `navigator.credentials.get({ publicKey })` with the newest credential the options
    /// allow (any held one when `allowCredentials` is empty: a discoverable sign-in).
    pub fn get(&mut self, public_key: &Value) -> Value {
        let allowed: Vec<Vec<u8>> = public_key["allowCredentials"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| unb64(&c["id"], "allowCredentials.id"))
            .collect();
        let i = self
            .credentials
            .iter()
            .rposition(|c| allowed.is_empty() || allowed.contains(&c.id))
            .expect("NotAllowedError: no credential for these options");
        self.get_with(i, public_key)
    }

    /// `navigator.credentials.get` answered with the credential at `index`, whatever the
    /// options allow.
    pub fn get_with(&mut self, index: usize, public_key: &Value) -> Value {
        let challenge = public_key["challenge"].as_str().expect("challenge");
        let flags = self.flags();
        let counts = self.counts;
        let client_data = self.client_data("webauthn.get", challenge);
        let rp_hash = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        let cred = &mut self.credentials[index];
        if counts {
            cred.counter += 1;
        }
        let mut auth = rp_hash;
        auth.push(flags);
        auth.extend(cred.counter.to_be_bytes());
        let mut signed = auth.clone();
        signed.extend(Sha256::digest(&client_data));
        let sig: p256::ecdsa::Signature = cred.key.sign(&signed);
        json!({
            "id": B64.encode(&cred.id),
            "rawId": B64.encode(&cred.id),
            "type": "public-key",
            "response": {
                "authenticatorData": B64.encode(&auth),
                "clientDataJSON": B64.encode(&client_data),
                "signature": B64.encode(sig.to_der().as_bytes()),
                "userHandle": B64.encode(&cred.user_handle),
            },
            "clientExtensionResults": {},
        })
    }
}
