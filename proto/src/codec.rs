//! The strict CBOR codec: one encoding per value.
//!
//! `decode` refuses input larger than the caller's cap, trailing bytes after the value, and any
//! input that does not re-encode to exactly the same bytes. The last rule rejects, in one
//! place, everything a canonical encoder would never produce: indefinite lengths, non-minimal
//! integers, duplicate or reordered map keys, tags, floats where integers belong, unknown
//! fields. Signatures are made over exact bytes, so a value has exactly one byte form.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Largest nesting depth the decoder follows (serde_cbor's own limit is larger; our types are
/// shallow, and deeper input fails on type mismatch well before this).
pub const MAX_DEPTH: usize = 16;

/// Why bytes were refused as CBOR.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("{what} is {len} bytes, over the {cap}-byte cap")]
    TooLarge { what: &'static str, len: usize, cap: usize },
    #[error("{what} is not valid CBOR for its type: {detail}")]
    Malformed { what: &'static str, detail: String },
    #[error("{what} has trailing bytes after the CBOR value")]
    TrailingBytes { what: &'static str },
    #[error("{what} is not in canonical CBOR form (indefinite lengths, non-minimal integers, tags, duplicate or unknown fields)")]
    NotCanonical { what: &'static str },
    #[error("could not encode {what}: {detail}")]
    Encode { what: &'static str, detail: String },
}

/// Encodes `value` as CBOR (definite lengths, minimal integers, struct fields in declaration
/// order).
pub fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, CodecError> {
    serde_cbor::to_vec(value).map_err(|e| CodecError::Encode { what, detail: e.to_string() })
}

/// Decodes `bytes` as a `T`, refusing oversize, trailing or non-canonical input. `what` names the
/// thing being decoded in errors (`"checkpoint"`, `"leaf 12"`...).
pub fn decode<T: Serialize + DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
    cap: usize,
) -> Result<T, CodecError> {
    if bytes.len() > cap {
        return Err(CodecError::TooLarge { what, len: bytes.len(), cap });
    }
    check_depth(what, bytes)?;
    let mut deserializer = serde_cbor::Deserializer::from_slice(bytes);
    let value = T::deserialize(&mut deserializer)
        .map_err(|e| CodecError::Malformed { what, detail: e.to_string() })?;
    deserializer.end().map_err(|_| CodecError::TrailingBytes { what })?;
    let again = encode(what, &value)?;
    if again != bytes {
        return Err(CodecError::NotCanonical { what });
    }
    Ok(value)
}

/// Refuses input nested deeper than [`MAX_DEPTH`] before any decoding, by a linear scan of the
/// CBOR heads (definite and indefinite arrays and maps, and tags, count as a level).
fn check_depth(what: &'static str, bytes: &[u8]) -> Result<(), CodecError> {
    let malformed = || CodecError::Malformed { what, detail: "truncated CBOR item".to_owned() };
    // Stack of items still expected at each open container level (u64::MAX = indefinite).
    let mut stack: Vec<u64> = Vec::new();
    let mut pos = 0usize;
    loop {
        // Close finished definite containers.
        while let Some(&remaining) = stack.last() {
            if remaining == 0 {
                stack.pop();
            } else {
                break;
            }
        }
        if pos >= bytes.len() {
            return Ok(());
        }
        let head = bytes[pos];
        pos += 1;
        if head == 0xff {
            // Break: closes an indefinite container (its parent counted it when it opened).
            if stack.last() == Some(&u64::MAX) {
                stack.pop();
                continue;
            }
            return Err(CodecError::Malformed { what, detail: "unexpected break".to_owned() });
        }
        let major = head >> 5;
        let info = head & 0x1f;
        let arg: Option<u64> = match info {
            0..=23 => Some(u64::from(info)),
            24..=27 => {
                let n = 1usize << (info - 24);
                let slice = bytes.get(pos..pos + n).ok_or_else(malformed)?;
                pos += n;
                Some(slice.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
            }
            31 => None,
            _ => return Err(CodecError::Malformed { what, detail: "reserved CBOR head".to_owned() }),
        };
        match (major, arg) {
            (2 | 3, Some(len)) => {
                let len = usize::try_from(len).map_err(|_| malformed())?;
                pos = pos.checked_add(len).filter(|&p| p <= bytes.len()).ok_or_else(malformed)?;
                consume_one(&mut stack);
            }
            (4, Some(n)) | (5, Some(n)) => {
                let items = if major == 5 { n.saturating_mul(2) } else { n };
                consume_one(&mut stack);
                if items > 0 {
                    stack.push(items);
                }
            }
            (2..=5, None) => {
                consume_one(&mut stack);
                stack.push(u64::MAX);
            }
            (6, Some(_)) => {
                // A tag wraps the next item: it adds a level until that item is read.
                consume_one(&mut stack);
                stack.push(1);
            }
            _ => consume_one(&mut stack),
        }
        if stack.len() > MAX_DEPTH {
            return Err(CodecError::Malformed {
                what,
                detail: format!("nested deeper than {MAX_DEPTH} levels"),
            });
        }
    }
}

fn consume_one(stack: &mut [u64]) {
    if let Some(top) = stack.last_mut() {
        if *top != u64::MAX {
            *top -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        name: String,
        size: u64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    }

    fn sample() -> Sample {
        Sample { name: "a".into(), size: 7, data: vec![1, 2, 3] }
    }

    #[test]
    fn round_trip() {
        let bytes = encode("sample", &sample()).unwrap();
        assert_eq!(decode::<Sample>("sample", &bytes, 1024).unwrap(), sample());
    }

    #[test]
    fn malformed_cbor_trailing_bytes_rejected() {
        let mut bytes = encode("sample", &sample()).unwrap();
        bytes.push(0);
        assert!(matches!(decode::<Sample>("sample", &bytes, 1024), Err(CodecError::TrailingBytes { .. })));
    }

    #[test]
    fn malformed_cbor_oversize_rejected() {
        let bytes = encode("sample", &sample()).unwrap();
        assert!(matches!(
            decode::<Sample>("sample", &bytes, bytes.len() - 1),
            Err(CodecError::TooLarge { .. })
        ));
    }

    #[test]
    fn malformed_cbor_non_minimal_integer_rejected() {
        // {"name": "a", "size": 7 as a two-byte integer, "data": h'010203'}
        let mut bytes = vec![0xa3, 0x64];
        bytes.extend_from_slice(b"name");
        bytes.extend_from_slice(&[0x61, b'a', 0x64]);
        bytes.extend_from_slice(b"size");
        bytes.extend_from_slice(&[0x18, 7, 0x64]);
        bytes.extend_from_slice(b"data");
        bytes.extend_from_slice(&[0x43, 1, 2, 3]);
        assert!(matches!(decode::<Sample>("sample", &bytes, 1024), Err(CodecError::NotCanonical { .. })));
    }

    #[test]
    fn malformed_cbor_indefinite_length_rejected() {
        let canonical = encode("sample", &sample()).unwrap();
        // Same map, but as an indefinite-length map (0xbf ... 0xff).
        let mut bytes = vec![0xbf];
        bytes.extend_from_slice(&canonical[1..]);
        bytes.push(0xff);
        assert!(decode::<Sample>("sample", &bytes, 1024).is_err());
    }

    #[test]
    fn malformed_cbor_duplicate_map_key_rejected() {
        let mut bytes = vec![0xa4, 0x64];
        bytes.extend_from_slice(b"name");
        bytes.extend_from_slice(&[0x61, b'a', 0x64]);
        bytes.extend_from_slice(b"size");
        bytes.extend_from_slice(&[0x07, 0x64]);
        bytes.extend_from_slice(b"size");
        bytes.extend_from_slice(&[0x08, 0x64]);
        bytes.extend_from_slice(b"data");
        bytes.extend_from_slice(&[0x43, 1, 2, 3]);
        assert!(decode::<Sample>("sample", &bytes, 1024).is_err());
    }

    #[test]
    fn malformed_cbor_float_where_integer_belongs_rejected() {
        let mut bytes = vec![0xa3, 0x64];
        bytes.extend_from_slice(b"name");
        bytes.extend_from_slice(&[0x61, b'a', 0x64]);
        bytes.extend_from_slice(b"size");
        bytes.extend_from_slice(&[0xf9, 0x47, 0x00]); // half float 7.0
        bytes.extend_from_slice(&[0x64]);
        bytes.extend_from_slice(b"data");
        bytes.extend_from_slice(&[0x43, 1, 2, 3]);
        assert!(decode::<Sample>("sample", &bytes, 1024).is_err());
    }

    #[test]
    fn malformed_cbor_tag_rejected() {
        let canonical = encode("sample", &sample()).unwrap();
        let mut bytes = vec![0xd8, 0x20]; // tag 32 (URI) wrapping the map
        bytes.extend_from_slice(&canonical);
        assert!(decode::<Sample>("sample", &bytes, 1024).is_err());
    }

    #[test]
    fn malformed_cbor_over_deep_nesting_rejected_quickly() {
        // 100 000 nested arrays: refused by the depth scan, not by recursion.
        let bytes = vec![0x81; 100_000];
        let err = decode::<Sample>("sample", &bytes, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("nested deeper"), "{err}");
        let bytes = vec![0x9f; 100_000];
        assert!(decode::<Sample>("sample", &bytes, 1 << 20).is_err());
    }

    #[test]
    fn an_indefinite_item_is_counted_once_by_its_parent() {
        // [[_ ]]: the break closes the inner array, which the outer one counted when it opened
        // (counting it again underflowed the outer's count: found by the `envelope` fuzz target).
        assert!(check_depth("sample", &[0x81, 0x9f, 0xff]).is_ok());
        // [[_ ], 16 nested arrays]: 17 levels deep. Counted twice, the break closed the outer
        // array early and the nest below it passed as 16 levels.
        let mut bytes = vec![0x82, 0x9f, 0xff];
        bytes.extend_from_slice(&[0x81; MAX_DEPTH]);
        bytes.push(0x00);
        let err = check_depth("sample", &bytes).unwrap_err();
        assert!(err.to_string().contains("nested deeper"), "{err}");
        bytes.remove(3);
        assert!(check_depth("sample", &bytes).is_ok());
    }

    #[test]
    fn malformed_cbor_unknown_field_rejected() {
        #[derive(Serialize)]
        struct Extra {
            name: String,
            size: u64,
            #[serde(with = "serde_bytes")]
            data: Vec<u8>,
            extra: u8,
        }
        let bytes = encode("extra", &Extra { name: "a".into(), size: 7, data: vec![1], extra: 1 }).unwrap();
        assert!(decode::<Sample>("sample", &bytes, 1024).is_err());
    }

    #[test]
    fn truncated_input_rejected() {
        let bytes = encode("sample", &sample()).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode::<Sample>("sample", &bytes[..cut], 1024).is_err(), "accepted cut at {cut}");
        }
    }
}
