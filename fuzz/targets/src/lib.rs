//! airlock's fuzz targets: one function per decoder that takes untrusted bytes.
//!
//! Each `pub fn NAME(data: &[u8])` must return normally on every input. A panic is a bug: either
//! in the decoder, or a broken invariant asserted here (what the strict CBOR codec accepts
//! re-encodes to the same bytes, a note that parses formats back to the same bytes, a parsed
//! range lies inside the blob...). The same functions are driven by cargo-fuzz
//! (`fuzz/fuzz_targets/`) and by the stable short run (`tests/short_run.rs`); [`seeds`] builds
//! the valid inputs of the committed corpus.

use std::collections::BTreeSet;

use airlock_client::bundle_reader::read_bundle;
use airlock_keys::{
    parse_policy, parse_verifier_key, parse_witness_verifier_key, verifier_key, witness_verifier_key,
};
use airlock_proto::api::query::{parse_range, Query, MAX_QUERY_LEN};
use airlock_proto::api::{
    decode_digest_bucket, decode_name_bucket, encode_digest_bucket, encode_name_bucket, BundleManifest,
    ClientFold, LeavesPage, LogSnapshot, Proof, MAX_PAGE_BYTES, MAX_PROOF_BYTES, MAX_SAVED_LOG_BYTES,
    MAX_SNAPSHOT_BYTES,
};
use airlock_proto::envelope::{MAX_ENVELOPE_BYTES, MAX_PAYLOAD_TYPE_LEN, MAX_SIGNATURES};
use airlock_proto::merkle::{leaf_hash, verify_inclusion, MAX_PROOF_LEN};
use airlock_proto::note::{is_key_name_valid, MAX_NOTE_SIGNATURES};
use airlock_proto::proof::TlogProof;
use airlock_proto::statement::check_origin;
use airlock_proto::{codec, Checkpoint, Envelope, Note, PayloadType, Statement};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub mod seeds;

/// A fuzz target.
pub type Target = fn(&[u8]);

/// Every target by name (the name of its `fuzz/fuzz_targets/<name>.rs`, corpus and regressions
/// directories).
pub const TARGETS: &[(&str, Target)] = &[
    ("envelope", envelope),
    ("statement", statement),
    ("checkpoint", checkpoint),
    ("proof", proof),
    ("bodies", bodies),
    ("bundle", bundle),
    ("request", request),
    ("policy", policy),
];

/// Most leaves of one decoded body the targets go on to decode as envelopes (keeps each input
/// cheap; the envelope target covers the rest).
const MAX_LEAVES_FOLLOWED: usize = 8;

/// `Envelope::from_bytes` and the strict codec's decode of an envelope; an accepted envelope
/// re-encodes to its bytes, respects the caps, and its payload is decoded as the statement it
/// names.
pub fn envelope(data: &[u8]) {
    let strict = codec::decode::<Envelope>("envelope", data, MAX_ENVELOPE_BYTES);
    if let Ok(value) = &strict {
        assert_reencodes("envelope", value, data);
    }
    let Ok(envelope) = Envelope::from_bytes(data) else { return };
    assert!(envelope.signatures.len() <= MAX_SIGNATURES, "envelope over the signature cap accepted");
    assert!(
        !envelope.payload_type.is_empty() && envelope.payload_type.len() <= MAX_PAYLOAD_TYPE_LEN,
        "envelope payload type outside 1..={MAX_PAYLOAD_TYPE_LEN} bytes accepted"
    );
    assert!(strict.as_ref().ok() == Some(&envelope), "from_bytes accepted what the codec refused");
    match envelope.to_bytes() {
        Ok(bytes) => assert!(bytes == data, "accepted envelope does not re-encode to its bytes"),
        Err(e) => panic!("accepted envelope does not encode: {e}"),
    }
    let signed = envelope.signed_bytes();
    assert!(signed.ends_with(&envelope.payload), "PAE does not end with the payload");
    follow_statement(&envelope.payload_type, &envelope.payload);
}

/// `Statement::decode` under the payload type chosen by the first byte; an accepted payload
/// encodes back to the same type and bytes, and no other payload type accepts it.
pub fn statement(data: &[u8]) {
    let Some((&selector, payload)) = data.split_first() else { return };
    let chosen = PayloadType::ALL[usize::from(selector) % PayloadType::ALL.len()];
    let Ok(decoded) = Statement::decode(chosen.as_str(), payload) else { return };
    check_statement(chosen, payload, &decoded);
    for other in PayloadType::ALL.into_iter().filter(|&t| t != chosen) {
        assert!(
            Statement::decode(other.as_str(), payload).is_err(),
            "a {chosen} payload was also accepted as {other}"
        );
    }
}

/// `Note::parse`, `Checkpoint::from_note_unverified` and `Checkpoint::from_text`: a note that
/// parses formats back to the same bytes, and a checkpoint that parses writes back its text.
pub fn checkpoint(data: &[u8]) {
    let note = Note::parse(data).ok();
    if let Some(note) = &note {
        assert!(note.to_bytes() == data, "parsed note does not format back to its bytes");
        assert!(!note.signatures().is_empty() && note.signatures().len() <= MAX_NOTE_SIGNATURES);
        assert!(note.text().ends_with('\n') && !note.text().contains("\n\n"));
        for signature in note.signatures() {
            assert!(is_key_name_valid(&signature.name), "invalid key name {:?} accepted", signature.name);
            assert!(!signature.signature.is_empty(), "empty signature accepted");
        }
    }
    if let Ok(checkpoint) = Checkpoint::from_note_unverified(data) {
        let Some(note) = &note else { panic!("checkpoint read from bytes that are not a note") };
        check_checkpoint(&checkpoint, note.text());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(checkpoint) = Checkpoint::from_text(text) {
            check_checkpoint(&checkpoint, text);
        }
    }
}

/// The tlog-proof file parser: an accepted file formats back to its bytes and holds at most
/// `MAX_PROOF_LEN` hashes; its checkpoint, entry and inclusion proof are then read as
/// `airlock proof verify` reads them (the outcome does not matter, only that nothing panics).
pub fn proof(data: &[u8]) {
    let Ok(parsed) = TlogProof::parse(data) else { return };
    assert!(parsed.hashes.len() <= MAX_PROOF_LEN, "proof over the hash cap accepted");
    assert!(parsed.to_bytes() == data, "parsed proof file does not format back to its bytes");
    let Ok(checkpoint) = Checkpoint::from_note_unverified(&parsed.checkpoint) else { return };
    let entry = parsed.extra.as_deref().unwrap_or_default();
    let _ = Envelope::from_bytes(entry);
    let hashes: Vec<_> = parsed.hashes.iter().map(|h| h.0).collect();
    let _ =
        verify_inclusion(&leaf_hash(entry), parsed.index, checkpoint.size, &hashes, &checkpoint.root_hash.0);
}

/// The strict codec on the CBOR bodies a client or mirror reads, each under its cap (the first
/// byte chooses the body): `LeavesPage` (the leaf-page reader), `Proof`, `ClientFold`,
/// `BundleManifest`; and the binary buckets of a client's index, whose decoded values must
/// encode and decode back to themselves. Decoded leaves and checkpoints are read on as the
/// client reads them.
pub fn bodies(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else { return };
    match selector % 6 {
        4 => {
            let Ok(bucket) = decode_name_bucket(body) else { return };
            let again = encode_name_bucket(&bucket).expect("a decoded name bucket encodes");
            assert!(decode_name_bucket(&again).ok() == Some(bucket), "a name bucket does not round-trip");
        }
        5 => {
            let Ok(bucket) = decode_digest_bucket(body) else { return };
            let again = encode_digest_bucket(&bucket);
            assert!(again == body, "a decoded digest bucket does not encode back to its bytes");
        }
        0 => {
            let Some(page) = decode_body::<LeavesPage>("leaves page", body, MAX_PAGE_BYTES) else { return };
            // What `Remote::leaves` checks next only needs the count to be sane.
            let _ = page.start.checked_add(page.leaves.len() as u64);
            follow_leaves(page.leaves.iter().map(|l| l.as_slice()));
        }
        1 => {
            let Some(proof) = decode_body::<Proof>("proof", body, MAX_PROOF_BYTES) else { return };
            let hashes: Vec<_> = proof.hashes.iter().map(|h| h.0).collect();
            let _ = verify_inclusion(&leaf_hash(body), 0, 1, &hashes, &[0; 32]);
        }
        2 => {
            let Some(saved) = decode_body::<ClientFold>("saved fold", body, MAX_SNAPSHOT_BYTES) else {
                return;
            };
            let Ok(log) = LogSnapshot::from_bytes(&saved.log) else { return };
            if let Some(note) = &log.checkpoint {
                let _ = Checkpoint::from_note_unverified(note);
            }
            follow_leaves(log.fold.roots.iter().map(|r| r.envelope.as_slice()));
        }
        _ => {
            let Some(manifest) = decode_body::<BundleManifest>("bundle manifest", body, MAX_SAVED_LOG_BYTES)
            else {
                return;
            };
            check_manifest(&manifest);
        }
    }
}

/// `read_bundle` over a tar stream: the manifest is decoded, then each blob member is read to a
/// sink (or skipped, by the digest's first bit, to cover both paths).
pub fn bundle(data: &[u8]) {
    let result = read_bundle(
        data,
        |manifest| {
            check_manifest(&manifest);
            Ok::<_, ()>(0usize)
        },
        |members, digest, member| {
            *members += 1;
            if digest.as_bytes()[0] & 1 == 0 {
                let copied = std::io::copy(member, &mut std::io::sink()).map_err(|_| ())?;
                assert!(copied as usize <= data.len(), "read more member bytes than the bundle holds");
            }
            Ok(())
        },
    );
    if let Ok(members) = result {
        // Every member takes at least one 512-byte header block.
        assert!(members * 512 <= data.len(), "more members than the bundle has room for");
    }
}

/// `Query::parse` of the input as a query string (when UTF-8), and `parse_range` of the bytes
/// after the first 8 against the blob size those 8 bytes give (big-endian): an accepted query
/// finds every key it was given, an accepted range lies inside the blob.
pub fn request(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(query) = Query::parse(Some(text)) {
            assert!(text.len() <= MAX_QUERY_LEN, "query string over the cap accepted");
            for pair in text.split('&').filter(|p| !p.is_empty()).take(8) {
                let key = pair.split_once('=').map_or(pair, |(k, _)| k);
                assert!(query.get(key).is_some(), "query lost the key {key:?}");
                let _ = query.optional_u64(key);
            }
            let _ = query.u64("start");
        }
    }
    let Some((size, value)) = data.split_first_chunk::<8>() else { return };
    let size = u64::from_be_bytes(*size);
    let Ok(value) = std::str::from_utf8(value) else { return };
    if let Ok(Some((first, last))) = parse_range(value, size) {
        assert!(first <= last && last < size, "range {first}-{last} outside a blob of {size} bytes");
    }
}

/// `parse_policy` of the input as a tlog-policy file, and `parse_verifier_key` /
/// `parse_witness_verifier_key` of its first words: an accepted policy only uses names defined
/// before, with thresholds its groups can meet; an accepted vkey formats back to itself.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(file) = parse_policy(text) {
        let mut defined: BTreeSet<&str> = file.witnesses.iter().map(|w| w.name.as_str()).collect();
        for group in &file.groups {
            assert!(
                group.threshold >= 1 && group.threshold as usize <= group.members.len(),
                "group {} needs {} of {} members",
                group.name,
                group.threshold,
                group.members.len()
            );
            for member in &group.members {
                assert!(defined.contains(member.as_str()), "group {} names undefined {member:?}", group.name);
            }
            defined.insert(&group.name);
        }
        if let Some(quorum) = &file.quorum {
            assert!(defined.contains(quorum.as_str()), "quorum names undefined {quorum:?}");
        }
        for (name, key) in &file.logs {
            assert!(is_key_name_valid(name));
            let _ = key.id();
        }
    }
    for word in text.split_whitespace().take(16) {
        if let Ok((name, key)) = parse_verifier_key(word) {
            assert!(verifier_key(&name, &key) == word, "vkey {word:?} does not format back to itself");
        }
        if let Ok((name, key)) = parse_witness_verifier_key(word) {
            assert!(
                witness_verifier_key(&name, &key) == word,
                "witness vkey {word:?} does not format back to itself"
            );
        }
    }
}

fn assert_reencodes<T: Serialize>(what: &'static str, value: &T, bytes: &[u8]) {
    match codec::encode(what, value) {
        Ok(again) => assert!(again == bytes, "{what} accepted by the strict codec re-encodes differently"),
        Err(e) => panic!("{what} accepted by the strict codec does not encode: {e}"),
    }
}

fn decode_body<T: Serialize + DeserializeOwned>(what: &'static str, bytes: &[u8], cap: usize) -> Option<T> {
    let value = codec::decode::<T>(what, bytes, cap).ok()?;
    assert!(bytes.len() <= cap, "{what} over its cap accepted");
    assert_reencodes(what, &value, bytes);
    Some(value)
}

fn check_statement(outer: PayloadType, payload: &[u8], statement: &Statement) {
    assert_eq!(statement.payload_type(), outer, "statement names a different type than its envelope");
    match statement.encode() {
        Ok((ty, bytes)) => {
            assert_eq!(ty, outer);
            assert!(bytes == payload, "accepted {outer} payload does not re-encode to its bytes");
        }
        Err(e) => panic!("accepted {outer} payload does not encode: {e}"),
    }
    if let Statement::Root(root) = statement {
        assert!(check_origin(&root.origin).is_ok());
        assert!(root.witness_policy().check().is_ok(), "root with an invalid witness policy accepted");
        // Evaluating the accepted policy must terminate without panicking.
        let _ = root.witness_policy().is_met(&|name| name.len() % 2 == 0);
    }
}

fn follow_statement(payload_type: &str, payload: &[u8]) {
    if let Ok(statement) = Statement::decode(payload_type, payload) {
        if let Some(outer) = PayloadType::parse(payload_type) {
            check_statement(outer, payload, &statement);
        }
    }
}

fn follow_leaves<'a>(leaves: impl Iterator<Item = &'a [u8]>) {
    for leaf in leaves.take(MAX_LEAVES_FOLLOWED) {
        if let Ok(envelope) = Envelope::from_bytes(leaf) {
            follow_statement(&envelope.payload_type, &envelope.payload);
        }
    }
}

fn check_checkpoint(checkpoint: &Checkpoint, text: &str) {
    assert!(checkpoint.to_text() == text, "parsed checkpoint does not write back its text");
    assert!(checkpoint.expires_at >= checkpoint.issued_at, "checkpoint expiring before issue accepted");
    assert!(check_origin(&checkpoint.origin).is_ok(), "invalid origin accepted");
}

fn check_manifest(manifest: &BundleManifest) {
    let _ = Checkpoint::from_note_unverified(&manifest.checkpoint);
    let _ = manifest.to_size.checked_sub(manifest.from_size);
    follow_leaves(manifest.leaves.iter().map(|l| l.as_slice()));
}
