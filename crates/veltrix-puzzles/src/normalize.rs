//! Answer normalization and hashing shared by every answer in Veltrix.

use sha2::{Digest, Sha256};

/// Answer normalization used for every answer in Veltrix: trim, lowercase
/// (Unicode), inner whitespace runs collapsed to one ASCII space.
///
/// "Whitespace" is Unicode whitespace (`char::is_whitespace`). Lowercasing
/// never produces whitespace, so lowercasing each run of non-whitespace
/// separately gives the same result as lowercasing the whole string; this is
/// the exact form `veltrix-config` uses for `answer_sha256`.
pub fn normalize_answer(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for (index, piece) in raw.split_whitespace().enumerate() {
        if index > 0 {
            out.push(' ');
        }
        out.extend(piece.chars().flat_map(char::to_lowercase));
    }
    out
}

/// SHA-256 of the normalized answer.
pub fn answer_digest(raw: &str) -> [u8; 32] {
    digest_normalized(&normalize_answer(raw))
}

/// SHA-256 of an answer that is already normalized.
pub(crate) fn digest_normalized(normalized: &str) -> [u8; 32] {
    debug_assert_eq!(normalize_answer(normalized), normalized);
    Sha256::digest(normalized.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples() {
        assert_eq!(normalize_answer("  Hello   World "), "hello world");
        assert_eq!(normalize_answer("\tA\u{00a0}\nB\r\n"), "a b");
        assert_eq!(normalize_answer(""), "");
        assert_eq!(normalize_answer("   "), "");
        assert_eq!(normalize_answer("ÉCOLE Straße"), "école straße");
    }

    #[test]
    fn digest_is_sha256_of_normalized() {
        assert_eq!(
            hex::encode(answer_digest("  Hello   World ")),
            // sha256("hello world")
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
    }
}
