//! Did-you-mean suggestions for unknown names.

/// How similar a candidate must be, as normalized Damerau-Levenshtein.
const MIN_SIMILARITY: f64 = 0.7;
/// Or how few edits away it may be (for names long enough that two edits
/// still leave most of the word).
const MAX_EDITS: usize = 2;
const MIN_LEN_FOR_EDITS: usize = 4;
/// Above this many candidates a plain list stops being helpful.
const MAX_LISTED: usize = 8;

/// The closest candidate to `name`, if it is close enough to be a likely typo.
/// Ties go to the earliest candidate, so suggestions are deterministic.
pub(crate) fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(&str, f64)> = None;
    for candidate in candidates {
        let similarity = strsim::normalized_damerau_levenshtein(name, candidate);
        let edits = strsim::damerau_levenshtein(name, candidate);
        let close =
            similarity >= MIN_SIMILARITY || (edits <= MAX_EDITS && name.len() >= MIN_LEN_FOR_EDITS);
        if close && best.is_none_or(|(_, s)| similarity > s) {
            best = Some((candidate, similarity));
        }
    }
    best.map(|(candidate, _)| candidate)
}

/// Help text for an unknown name: a suggestion when one is close, otherwise
/// the list of valid names when it is short.
pub(crate) fn help(name: &str, candidates: &[&str]) -> Option<String> {
    if let Some(candidate) = closest(name, candidates.iter().copied()) {
        return Some(format!("did you mean \"{candidate}\"?"));
    }
    match candidates.len() {
        0 => None,
        n if n <= MAX_LISTED => {
            let quoted: Vec<String> = candidates.iter().map(|c| format!("\"{c}\"")).collect();
            Some(format!("expected one of {}", quoted.join(", ")))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(closest("amout", ["amount", "currency"]), Some("amount"));
        assert_eq!(closest("purchse", ["login", "purchase"]), Some("purchase"));
        assert_eq!(closest("plaec", ["place"]), Some("place"));
        assert_eq!(closest("zzz", ["amount"]), None);
        assert_eq!(closest("ab", ["id"]), None);
        assert_eq!(
            help("x", &["a", "b"]).as_deref(),
            Some("expected one of \"a\", \"b\"")
        );
        assert_eq!(help("x", &[]), None);
    }
}
