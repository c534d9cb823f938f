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
/// The snapshot format version this build writes; it reads this one and
/// version 1 (a whole payload, no piece table).
pub const SNAPSHOT_VERSION: u16 = 2;
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

/// Size of one entry of a format-2 snapshot's piece table: source seq,
/// offset, length, CRC-32C.
pub const PIECE_ENTRY_LEN: usize = 28;

/// Where one piece of a snapshot's payload is. The payload is the pieces
/// end to end, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceEntry {
    /// Seq of the snapshot file that holds the bytes: the file's own seq for
    /// a piece written in it, an older snapshot's for a piece unchanged since
    /// that one was written.
    pub source: u64,
    /// Byte offset of the piece in the source file.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// CRC-32C of the piece's bytes.
    pub crc: u32,
}

/// A decoded snapshot file: its seq and where each piece of its payload is.
/// Pieces held in the file itself are checked already; pieces held
/// elsewhere are checked against their CRC when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    /// The log seq the snapshot covers.
    pub seq: u64,
    /// The format version it was written in (1 or 2).
    pub version: u16,
    /// The pieces, in payload order.
    pub pieces: Vec<PieceEntry>,
}

impl SnapshotFile {
    /// Seqs of the older snapshot files this one takes pieces from,
    /// ascending, without repeats.
    pub fn sources(&self) -> Vec<u64> {
        sources_of(self.seq, &self.pieces)
    }
}

/// Seqs of the files other than snapshot `seq` that `pieces` are held in,
/// ascending, without repeats.
pub fn sources_of(seq: u64, pieces: &[PieceEntry]) -> Vec<u64> {
    let mut sources: Vec<u64> = pieces
        .iter()
        .map(|piece| piece.source)
        .filter(|&source| source != seq)
        .collect();
    sources.sort_unstable();
    sources.dedup();
    sources
}

/// One piece-table entry from its [`PIECE_ENTRY_LEN`] bytes.
pub fn decode_piece_entry(entry: &[u8; PIECE_ENTRY_LEN]) -> PieceEntry {
    let u64_at = |at: usize| u64::from_le_bytes(entry[at..at + 8].try_into().expect("8 bytes"));
    PieceEntry {
        source: u64_at(0),
        offset: u64_at(8),
        len: u64_at(16),
        crc: u32::from_le_bytes(entry[24..28].try_into().expect("4 bytes")),
    }
}

/// Encodes a whole snapshot file holding `payload` itself (no pieces
/// elsewhere): header, a table of one piece, the payload.
pub fn encode_snapshot(seq: u64, payload: &[u8]) -> Vec<u8> {
    let crc = crc32c::crc32c(payload);
    let (mut out, _) = snapshot_head(
        seq,
        &[Placed::Here {
            crc,
            len: payload.len(),
        }],
    );
    out.extend_from_slice(payload);
    out
}

/// One piece of a snapshot about to be written: its bytes follow the table
/// (`Here`), or they are in an older snapshot file (`Elsewhere`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// Written in this file, after the table, in order.
    Here {
        /// CRC-32C of the bytes.
        crc: u32,
        /// Their length.
        len: usize,
    },
    /// Already in an older snapshot file.
    Elsewhere(PieceEntry),
}

/// The head of a format-2 snapshot file (header, piece count, table) whose
/// pieces are `placed`, and the offset at which each `Here` piece will sit.
/// The header's checksum is combined from the CRCs of the head and of each
/// `Here` piece, so the pieces can be written after it without being read
/// again.
pub fn snapshot_head(seq: u64, placed: &[Placed]) -> (Vec<u8>, Vec<u64>) {
    let count = u32::try_from(placed.len()).expect("fewer than 2^32 snapshot pieces");
    let table_len = 4 + placed.len() * PIECE_ENTRY_LEN;
    let mut table = Vec::with_capacity(table_len);
    table.extend_from_slice(&count.to_le_bytes());
    let mut next = (SNAPSHOT_HEADER_LEN + table_len) as u64;
    let mut offsets = Vec::new();
    let mut body = table_len as u64;
    let mut crc_parts = Vec::with_capacity(placed.len());
    for piece in placed {
        let entry = match *piece {
            Placed::Here { crc, len } => {
                offsets.push(next);
                crc_parts.push((crc, len));
                let entry = PieceEntry {
                    source: seq,
                    offset: next,
                    len: len as u64,
                    crc,
                };
                next += len as u64;
                body += len as u64;
                entry
            }
            Placed::Elsewhere(entry) => {
                assert!(
                    entry.source < seq,
                    "a snapshot takes pieces from older ones only"
                );
                entry
            }
        };
        table.extend_from_slice(&entry.source.to_le_bytes());
        table.extend_from_slice(&entry.offset.to_le_bytes());
        table.extend_from_slice(&entry.len.to_le_bytes());
        table.extend_from_slice(&entry.crc.to_le_bytes());
    }
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER_LEN + table_len);
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&body.to_le_bytes());
    let crc = crc_parts.iter().filter(|(_, len)| *len > 0).fold(
        crc32c::crc32c_append(crc32c::crc32c(&out[0..28]), &table),
        |crc, &(part, len)| crc32c::crc32c_combine(crc, part, len),
    );
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&table);
    (out, offsets)
}

/// Why a snapshot file could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotProblem {
    /// Wrong magic, short file, bad length or checksum: skip it.
    Corrupt(String),
    /// Written by a newer build: refuse rather than fall back (see the docs).
    NewerVersion(u16),
}

/// Decodes and checks a snapshot file of either format: the header, the
/// checksum of the whole file and, in format 2, the piece table (each piece
/// held in the file is checked against its own CRC on the way, at no extra
/// cost: the file's checksum is combined from them).
pub fn decode_snapshot(bytes: &[u8]) -> Result<SnapshotFile, SnapshotProblem> {
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
    if version == 0 {
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
    let checksum_mismatch = |crc: u32| {
        Corrupt(format!(
            "checksum mismatch (stored {stored:#010x}, computed {crc:#010x})"
        ))
    };
    let body = &bytes[SNAPSHOT_HEADER_LEN..];
    let header_crc = crc32c::crc32c(&bytes[0..28]);
    if version == 1 {
        let crc = crc32c::crc32c(body);
        let whole = crc32c::crc32c_combine(header_crc, crc, body.len());
        if whole != stored {
            return Err(checksum_mismatch(whole));
        }
        check_flags(bytes)?;
        let pieces = vec![PieceEntry {
            source: seq,
            offset: SNAPSHOT_HEADER_LEN as u64,
            len,
            crc,
        }];
        return Ok(SnapshotFile {
            seq,
            version,
            pieces,
        });
    }
    let (pieces, table_len) = match decode_table(seq, body) {
        Ok(table) => table,
        Err(problem) => {
            // A damaged table is most often a damaged file: say so when the
            // checksum disagrees, rather than what the damage looks like.
            let whole = crc32c::crc32c_append(header_crc, body);
            if whole != stored {
                return Err(checksum_mismatch(whole));
            }
            return Err(Corrupt(problem));
        }
    };
    let mut crc = crc32c::crc32c_append(header_crc, &body[..table_len]);
    let mut mismatched_piece = None;
    for (index, piece) in pieces.iter().enumerate().filter(|(_, p)| p.source == seq) {
        let start = piece.offset as usize;
        let here = &bytes[start..start + piece.len as usize];
        let piece_crc = crc32c::crc32c(here);
        if piece_crc != piece.crc && mismatched_piece.is_none() {
            mismatched_piece = Some(index);
        }
        crc = crc32c::crc32c_combine(crc, piece_crc, here.len());
    }
    if crc != stored {
        return Err(checksum_mismatch(crc));
    }
    if let Some(index) = mismatched_piece {
        return Err(Corrupt(format!(
            "piece {index} does not match the checksum in the piece table"
        )));
    }
    check_flags(bytes)?;
    Ok(SnapshotFile {
        seq,
        version,
        pieces,
    })
}

fn check_flags(bytes: &[u8]) -> Result<(), SnapshotProblem> {
    if bytes[10..12] != [0, 0] {
        return Err(SnapshotProblem::Corrupt("non-zero flags".into()));
    }
    Ok(())
}

/// The piece table at the start of a format-2 body, and its length in
/// bytes. Pieces held in the file must follow the table back to back, in
/// order, up to the end of the file; pieces held elsewhere must come from
/// older snapshots.
fn decode_table(seq: u64, body: &[u8]) -> Result<(Vec<PieceEntry>, usize), String> {
    let count = match body.get(0..4) {
        Some(count) => u32::from_le_bytes(count.try_into().expect("4 bytes")) as usize,
        None => return Err("no piece table".into()),
    };
    let table_len = count
        .checked_mul(PIECE_ENTRY_LEN)
        .and_then(|len| len.checked_add(4))
        .filter(|&len| len <= body.len())
        .ok_or_else(|| format!("a table of {count} pieces does not fit in the file"))?;
    let mut next = (SNAPSHOT_HEADER_LEN + table_len) as u64;
    let end = (SNAPSHOT_HEADER_LEN + body.len()) as u64;
    let mut pieces = Vec::with_capacity(count);
    for (index, entry) in body[4..table_len].as_chunks().0.iter().enumerate() {
        let piece = decode_piece_entry(entry);
        if piece.source == seq {
            if piece.offset != next || piece.len > end - next {
                return Err(format!(
                    "piece {index} says it is at bytes {}..+{} of the file, but the next piece held here starts at {next} and the file ends at {end}",
                    piece.offset, piece.len
                ));
            }
            next += piece.len;
        } else if piece.source > seq {
            return Err(format!(
                "piece {index} is taken from snapshot {}, which is newer than this one",
                piece.source
            ));
        } else if piece.offset < SNAPSHOT_HEADER_LEN as u64
            || piece.offset.checked_add(piece.len).is_none()
        {
            return Err(format!(
                "piece {index} is at an impossible offset {} of snapshot {}",
                piece.offset, piece.source
            ));
        }
        pieces.push(piece);
    }
    if next != end {
        return Err(format!(
            "the pieces held here end at byte {next} but the file goes on to {end}"
        ));
    }
    Ok((pieces, table_len))
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
        let decoded = decode_snapshot(&s).unwrap();
        assert_eq!((decoded.seq, decoded.version), (9, 2));
        let piece = decoded.pieces[0];
        assert_eq!(decoded.pieces.len(), 1);
        assert_eq!(&s[piece.offset as usize..][..piece.len as usize], b"state");
        assert_eq!(piece.crc, crc32c::crc32c(b"state"));
        assert!(decoded.sources().is_empty());
        let mut bad = s.clone();
        *bad.last_mut().unwrap() ^= 0x80;
        assert!(matches!(
            decode_snapshot(&bad),
            Err(SnapshotProblem::Corrupt(_))
        ));
        let mut newer = s;
        newer[8] = 3;
        assert_eq!(
            decode_snapshot(&newer),
            Err(SnapshotProblem::NewerVersion(3))
        );
    }

    /// A format-1 file (what builds before format 2 wrote): header, then
    /// the payload, checksummed as one.
    #[test]
    fn format_one_files_still_read_as_one_piece() {
        let mut v1 = Vec::new();
        v1.extend_from_slice(&SNAPSHOT_MAGIC);
        v1.extend_from_slice(&1u16.to_le_bytes());
        v1.extend_from_slice(&0u16.to_le_bytes());
        v1.extend_from_slice(&500u64.to_le_bytes());
        v1.extend_from_slice(&5u64.to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&v1), b"state");
        v1.extend_from_slice(&crc.to_le_bytes());
        v1.extend_from_slice(b"state");
        let decoded = decode_snapshot(&v1).unwrap();
        assert_eq!(
            decoded.pieces,
            vec![PieceEntry {
                source: 500,
                offset: 32,
                len: 5,
                crc: crc32c::crc32c(b"state")
            }]
        );
        assert_eq!(decoded.version, 1);
        v1[33] ^= 1;
        assert!(matches!(
            decode_snapshot(&v1),
            Err(SnapshotProblem::Corrupt(_))
        ));
    }

    #[test]
    fn pieces_elsewhere_are_listed_and_checked_for_sense() {
        let elsewhere = PieceEntry {
            source: 40,
            offset: 96,
            len: 1000,
            crc: 7,
        };
        let placed = [
            Placed::Here {
                crc: crc32c::crc32c(b"ab"),
                len: 2,
            },
            Placed::Elsewhere(elsewhere),
            Placed::Here {
                crc: crc32c::crc32c(b"cde"),
                len: 3,
            },
        ];
        let (mut file, offsets) = snapshot_head(50, &placed);
        assert_eq!(offsets, vec![32 + 4 + 3 * 28, 32 + 4 + 3 * 28 + 2]);
        file.extend_from_slice(b"abcde");
        let decoded = decode_snapshot(&file).unwrap();
        assert_eq!(decoded.pieces[1], elsewhere);
        assert_eq!(decoded.pieces[2].offset, offsets[1]);
        assert_eq!(decoded.sources(), vec![40]);

        // A table that lies about where its own pieces are, with a
        // checksum that matches: refused with what is wrong.
        let mut lying = file.clone();
        lying[32 + 4 + 8] ^= 1; // first piece's offset
        let crc = crc32c::crc32c_append(crc32c::crc32c(&lying[0..28]), &lying[32..]);
        lying[28..32].copy_from_slice(&crc.to_le_bytes());
        match decode_snapshot(&lying) {
            Err(SnapshotProblem::Corrupt(why)) => assert!(why.contains("piece 0"), "{why}"),
            other => panic!("{other:?}"),
        }
        // A piece that says it comes from a newer snapshot.
        let mut newer_source = file.clone();
        newer_source[32 + 4 + 28..][..8].copy_from_slice(&60u64.to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&newer_source[0..28]), &newer_source[32..]);
        newer_source[28..32].copy_from_slice(&crc.to_le_bytes());
        match decode_snapshot(&newer_source) {
            Err(SnapshotProblem::Corrupt(why)) => assert!(why.contains("newer"), "{why}"),
            other => panic!("{other:?}"),
        }
        // A piece held here whose bytes do not match its own checksum.
        let mut wrong_crc = file;
        wrong_crc[32 + 4 + 24] ^= 1;
        let crc = crc32c::crc32c_append(crc32c::crc32c(&wrong_crc[0..28]), &wrong_crc[32..]);
        wrong_crc[28..32].copy_from_slice(&crc.to_le_bytes());
        match decode_snapshot(&wrong_crc) {
            Err(SnapshotProblem::Corrupt(why)) => assert!(why.contains("piece 0"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
