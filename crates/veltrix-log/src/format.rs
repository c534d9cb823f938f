//! Byte layout of segment headers, records and snapshot frames.
//!
//! Every integer is little-endian. `docs/LOG_FORMAT.md` describes the same bytes
//! for readers who do not read Rust; keep the two in step.

/// First eight bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"VLXWAL\0\0";
/// The only segment format version this build reads and writes.
pub const SEGMENT_VERSION: u16 = 1;
/// Size of the segment header: magic, version, flags, first seq, header crc.
pub const SEGMENT_HEADER_LEN: usize = 24;
/// Size of a record header: len, crc, seq.
pub const RECORD_HEADER_LEN: usize = 16;

/// First eight bytes of every snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"VLXSNAP\0";
/// The only snapshot format version this build reads and writes.
pub const SNAPSHOT_VERSION: u16 = 1;
/// Size of the snapshot frame header.
pub const SNAPSHOT_HEADER_LEN: usize = 32;

/// File name of the segment whose first record has sequence number `first_seq`.
pub fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

/// Parses a segment file name back to its first seq; `None` for other files.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    parse_numbered(name, ".seg")
}

/// File name of the snapshot covering the log up to and including `seq`.
pub fn snapshot_file_name(seq: u64) -> String {
    format!("{seq:020}.snap")
}

/// Parses a snapshot file name back to its seq; `None` for other files.
pub fn parse_snapshot_file_name(name: &str) -> Option<u64> {
    parse_numbered(name, ".snap")
}

fn parse_numbered(name: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_suffix(suffix)?;
    // Exactly 20 digits: anything else (editor backups, `.tmp` files) is not ours.
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Encodes a segment header.
pub fn encode_segment_header(first_seq: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..10].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    // 10..12: flags, zero in version 1.
    h[12..20].copy_from_slice(&first_seq.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

/// What is wrong with a segment header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderProblem {
    /// Fewer than [`SEGMENT_HEADER_LEN`] bytes.
    Short(usize),
    /// The magic bytes are not [`SEGMENT_MAGIC`].
    BadMagic,
    /// Magic is right but the version is not one we know.
    UnknownVersion(u16),
    /// Magic and version are right but the header checksum is wrong.
    BadChecksum,
    /// Flags must be zero in version 1.
    BadFlags(u16),
}

/// Decodes a segment header and returns its first seq.
pub fn decode_segment_header(bytes: &[u8]) -> Result<u64, HeaderProblem> {
    if bytes.len() < SEGMENT_HEADER_LEN {
        return Err(HeaderProblem::Short(bytes.len()));
    }
    if bytes[0..8] != SEGMENT_MAGIC {
        return Err(HeaderProblem::BadMagic);
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != SEGMENT_VERSION {
        return Err(HeaderProblem::UnknownVersion(version));
    }
    let stored = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
    if stored != crc32c::crc32c(&bytes[0..20]) {
        return Err(HeaderProblem::BadChecksum);
    }
    let flags = u16::from_le_bytes([bytes[10], bytes[11]]);
    if flags != 0 {
        return Err(HeaderProblem::BadFlags(flags));
    }
    Ok(u64::from_le_bytes(
        bytes[12..20].try_into().expect("8 bytes"),
    ))
}

/// Record checksum: crc32c over the length field, then seq and payload.
///
/// The length is covered so that a flipped length bit is reported as a checksum
/// mismatch rather than silently reframing the rest of the segment.
pub fn record_crc(len_bytes: [u8; 4], seq: u64, payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&len_bytes);
    let crc = crc32c::crc32c_append(crc, &seq.to_le_bytes());
    crc32c::crc32c_append(crc, payload)
}

/// Appends one encoded record to `out`.
pub fn encode_record(out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    let len =
        u32::try_from(payload.len()).expect("payload length checked against max_record_bytes");
    let len_bytes = len.to_le_bytes();
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&record_crc(len_bytes, seq, payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// A decoded record header (not yet checked against its payload).
#[derive(Debug, Clone, Copy)]
pub struct RecordHeader {
    /// Payload length in bytes.
    pub len: u32,
    /// Stored checksum.
    pub crc: u32,
    /// Stored sequence number.
    pub seq: u64,
}

/// Reads a record header from the first 16 bytes of `b`.
pub fn decode_record_header(b: &[u8]) -> RecordHeader {
    RecordHeader {
        len: u32::from_le_bytes(b[0..4].try_into().expect("4 bytes")),
        crc: u32::from_le_bytes(b[4..8].try_into().expect("4 bytes")),
        seq: u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")),
    }
}

impl RecordHeader {
    /// Whether `payload` matches the stored checksum.
    pub fn checks(&self, payload: &[u8]) -> bool {
        record_crc(self.len.to_le_bytes(), self.seq, payload) == self.crc
    }
}

/// Encodes a whole snapshot file: header then payload.
pub fn encode_snapshot(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = snapshot_header_of_parts(seq, &[payload]);
    out.extend_from_slice(payload);
    out
}

/// The header of a snapshot file whose payload is `parts` end to end (its
/// checksum covers them), so the parts can be written after it without
/// being joined.
pub fn snapshot_header_of_parts(seq: u64, parts: &[&[u8]]) -> Vec<u8> {
    let checksums: Vec<(u32, usize)> = parts
        .iter()
        .map(|part| (crc32c::crc32c(part), part.len()))
        .collect();
    snapshot_header_of_checksums(seq, &checksums)
}

/// As [`snapshot_header_of_parts`], from each part's CRC-32C and length
/// (combined, not read again: a writer that knows the checksums of parts it
/// wrote before need not stream them through the CPU once more).
pub fn snapshot_header_of_checksums(seq: u64, parts: &[(u32, usize)]) -> Vec<u8> {
    let len: usize = parts.iter().map(|(_, len)| len).sum();
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER_LEN);
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(len as u64).to_le_bytes());
    let crc = parts
        .iter()
        .filter(|(_, len)| *len > 0)
        .fold(crc32c::crc32c(&out[0..28]), |crc, &(part, len)| {
            crc32c::crc32c_combine(crc, part, len)
        });
    out.extend_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(out.len(), SNAPSHOT_HEADER_LEN);
    out
}

/// Why a snapshot file could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotProblem {
    /// Wrong magic, short file, bad length or checksum: skip it.
    Corrupt(String),
    /// Written by a newer build: refuse rather than fall back (see the docs).
    NewerVersion(u16),
}

/// Decodes a snapshot file, returning (seq, payload).
pub fn decode_snapshot(bytes: &[u8]) -> Result<(u64, &[u8]), SnapshotProblem> {
    use SnapshotProblem::Corrupt;
    if bytes.len() < SNAPSHOT_HEADER_LEN {
        return Err(Corrupt(format!(
            "file is {} bytes, shorter than the {SNAPSHOT_HEADER_LEN}-byte header",
            bytes.len()
        )));
    }
    if bytes[0..8] != SNAPSHOT_MAGIC {
        return Err(Corrupt("bad magic (not a Veltrix snapshot)".into()));
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version > SNAPSHOT_VERSION {
        return Err(SnapshotProblem::NewerVersion(version));
    }
    if version != SNAPSHOT_VERSION {
        return Err(Corrupt(format!("unknown format version {version}")));
    }
    let seq = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let len = u64::from_le_bytes(bytes[20..28].try_into().expect("8 bytes"));
    let stored = u32::from_le_bytes(bytes[28..32].try_into().expect("4 bytes"));
    let have = (bytes.len() - SNAPSHOT_HEADER_LEN) as u64;
    if len != have {
        return Err(Corrupt(format!(
            "header says {len} payload bytes but the file holds {have}"
        )));
    }
    let payload = &bytes[SNAPSHOT_HEADER_LEN..];
    let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[0..28]), payload);
    if crc != stored {
        return Err(Corrupt(format!(
            "checksum mismatch (stored {stored:#010x}, computed {crc:#010x})"
        )));
    }
    if bytes[10..12] != [0, 0] {
        return Err(Corrupt("non-zero flags".into()));
    }
    Ok((seq, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = encode_segment_header(42);
        assert_eq!(decode_segment_header(&h), Ok(42));
        let mut bad = h;
        bad[13] ^= 1;
        assert_eq!(decode_segment_header(&bad), Err(HeaderProblem::BadChecksum));
        assert_eq!(
            decode_segment_header(&h[..10]),
            Err(HeaderProblem::Short(10))
        );
    }

    #[test]
    fn names() {
        assert_eq!(segment_file_name(1), "00000000000000000001.seg");
        assert_eq!(parse_segment_file_name("00000000000000000001.seg"), Some(1));
        assert_eq!(parse_segment_file_name("1.seg"), None);
        assert_eq!(
            parse_segment_file_name("00000000000000000001.seg.tmp"),
            None
        );
        assert_eq!(
            parse_snapshot_file_name(&snapshot_file_name(u64::MAX)),
            Some(u64::MAX)
        );
    }

    #[test]
    fn record_layout_is_documented_layout() {
        let mut out = Vec::new();
        encode_record(&mut out, 7, b"abc");
        assert_eq!(out.len(), 16 + 3);
        assert_eq!(&out[0..4], &3u32.to_le_bytes());
        assert_eq!(&out[8..16], &7u64.to_le_bytes());
        let mut covered = Vec::new();
        covered.extend_from_slice(&out[0..4]);
        covered.extend_from_slice(&out[8..]);
        assert_eq!(&out[4..8], &crc32c::crc32c(&covered).to_le_bytes());
        let h = decode_record_header(&out);
        assert!(h.checks(b"abc"));
    }

    #[test]
    fn snapshot_round_trip() {
        let s = encode_snapshot(9, b"state");
        assert_eq!(decode_snapshot(&s), Ok((9, &b"state"[..])));
        let mut bad = s.clone();
        *bad.last_mut().unwrap() ^= 0x80;
        assert!(matches!(
            decode_snapshot(&bad),
            Err(SnapshotProblem::Corrupt(_))
        ));
        let mut newer = s;
        newer[8] = 2;
        assert_eq!(
            decode_snapshot(&newer),
            Err(SnapshotProblem::NewerVersion(2))
        );
    }
}
