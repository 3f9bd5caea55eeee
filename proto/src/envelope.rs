//! The signed envelope and its pre-authentication encoding (DSSE v1).
//!
//! A signature covers `PAE(payload_type, payload)`, never a re-serialisation: the payload is
//! kept and served as the exact bytes that were signed. Key ids inside an envelope are hints
//! that say which key to try; the verifier computes key ids itself.

use serde::{Deserialize, Serialize};

use crate::bytes::{KeyId, SignatureBytes};
use crate::codec::{self, CodecError};
use crate::digest::Digest;

/// Largest encoded envelope accepted anywhere (a statement or a checkpoint).
pub const MAX_ENVELOPE_BYTES: usize = 1 << 20;
/// Largest log entry (a leaf's envelope bytes): the 65,535 bytes a tlog-tiles entry bundle can
/// carry, so that every leaf can be served as a tile entry.
pub const MAX_ENTRY_BYTES: usize = 65_535;
/// Most signatures one envelope may carry.
pub const MAX_SIGNATURES: usize = 32;
/// Longest payload type accepted.
pub const MAX_PAYLOAD_TYPE_LEN: usize = 64;

/// One signature: which key (a hint) and the 64 signature bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub key_id: KeyId,
    pub sig: SignatureBytes,
}

/// `{payload_type, payload, signatures}`; the payload is an encoded statement or checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub payload_type: String,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    pub signatures: Vec<Signature>,
}

/// Why an envelope could not be merged with another.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(
        "refusing to merge signatures over different payloads: {left_type} {left} and {right_type} {right}"
    )]
    DifferentPayloads { left_type: String, left: Digest, right_type: String, right: Digest },
    #[error("merged envelope would carry more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
}

/// DSSE v1 pre-authentication encoding:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths as ASCII decimal.
///
/// ```
/// assert_eq!(airlock_proto::pae("t", b"ab"), b"DSSEv1 1 t 2 ab".to_vec());
/// ```
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// An envelope with no signatures yet.
    pub fn unsigned(payload_type: &str, payload: Vec<u8>) -> Self {
        Self { payload_type: payload_type.to_owned(), payload, signatures: Vec::new() }
    }

    /// The bytes a signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }

    /// BLAKE3 of the payload: what a signing tool shows before it signs.
    pub fn payload_digest(&self) -> Digest {
        Digest::of(&self.payload)
    }

    /// Encodes the envelope.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode("envelope", self)
    }

    /// Decodes an envelope with the strict codec and the structural caps.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        let envelope: Self = codec::decode("envelope", bytes, MAX_ENVELOPE_BYTES)?;
        if envelope.signatures.len() > MAX_SIGNATURES {
            return Err(CodecError::Malformed {
                what: "envelope",
                detail: format!("{} signatures, over the cap of {MAX_SIGNATURES}", envelope.signatures.len()),
            });
        }
        if envelope.payload_type.is_empty() || envelope.payload_type.len() > MAX_PAYLOAD_TYPE_LEN {
            return Err(CodecError::Malformed { what: "envelope", detail: "payload type length".to_owned() });
        }
        Ok(envelope)
    }

    /// Adds the signatures of `other` to this envelope. Both must carry the identical payload
    /// type and payload bytes; a signature already present (same key id and bytes) is kept once.
    pub fn merge(&mut self, other: &Envelope) -> Result<(), MergeError> {
        if self.payload_type != other.payload_type || self.payload != other.payload {
            return Err(MergeError::DifferentPayloads {
                left_type: self.payload_type.clone(),
                left: self.payload_digest(),
                right_type: other.payload_type.clone(),
                right: other.payload_digest(),
            });
        }
        for signature in &other.signatures {
            if !self.signatures.contains(signature) {
                if self.signatures.len() == MAX_SIGNATURES {
                    return Err(MergeError::TooManySignatures);
                }
                self.signatures.push(signature.clone());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(byte: u8) -> Signature {
        Signature { key_id: KeyId([byte; 32]), sig: SignatureBytes([byte; 64]) }
    }

    #[test]
    fn pae_matches_dsse_spec_vector() {
        // The DSSE specification's example.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn envelope_round_trips_byte_exact() {
        let mut e = Envelope::unsigned("airlock.release.v2", vec![1, 2, 3]);
        e.signatures.push(sig(1));
        let bytes = e.to_bytes().unwrap();
        let back = Envelope::from_bytes(&bytes).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn merge_signatures_over_same_payload() {
        let mut a = Envelope::unsigned("t", vec![9]);
        a.signatures.push(sig(1));
        let mut b = Envelope::unsigned("t", vec![9]);
        b.signatures.push(sig(2));
        b.signatures.push(sig(1));
        a.merge(&b).unwrap();
        assert_eq!(a.signatures, vec![sig(1), sig(2)]);
    }

    #[test]
    fn merging_envelopes_over_different_payloads_refused() {
        let mut a = Envelope::unsigned("t", vec![9]);
        let b = Envelope::unsigned("t", vec![8]);
        assert!(matches!(a.merge(&b), Err(MergeError::DifferentPayloads { .. })));
        let c = Envelope::unsigned("u", vec![9]);
        assert!(a.merge(&c).is_err());
    }

    #[test]
    fn too_many_signatures_refused_at_decode() {
        let mut e = Envelope::unsigned("t", vec![]);
        for i in 0..=MAX_SIGNATURES {
            e.signatures.push(sig(i as u8));
        }
        let bytes = e.to_bytes().unwrap();
        assert!(Envelope::from_bytes(&bytes).is_err());
    }
}
