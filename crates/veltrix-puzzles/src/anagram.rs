//! `anagram`: a word from the stage list with its letters shuffled (never left
//! as the word itself).
//!
//! Uniqueness: the solver collects every word of the stage list ∪ the shipped
//! dictionary with the same letter multiset as the scramble; exactly one must
//! exist.

use crate::Attempt;
use crate::Candidate;
use crate::PuzzleData;
use crate::SolverStats;
use crate::derive::Rng;
use crate::dictionary::{WordSet, sorted_letters};

/// Shuffles tried per derivation before giving up on it: a word such as
/// "aaa" has no arrangement other than itself, and one such as "ab" has only
/// one, so the bound matters for correctness, not just speed.
const SHUFFLES_PER_DERIVATION: usize = 16;

/// Words with the letters of `scramble`, and the number of words compared.
pub(crate) fn solve(scramble: &str, set: &WordSet) -> (Vec<String>, u64) {
    let found = set.anagrams_of(&sorted_letters(scramble));
    let nodes = found.len() as u64 + set.stage.len() as u64;
    (found.into_iter().map(|(word, _)| word).collect(), nodes)
}

/// Whether any arrangement of `word` differs from it.
pub(crate) fn can_scramble(word: &str) -> bool {
    let bytes = word.as_bytes();
    bytes.windows(2).any(|pair| pair[0] != pair[1])
}

pub(crate) fn attempt(words: &[String], set: &WordSet, rng: &mut Rng) -> Attempt {
    let word = &words[rng.below(words.len())];
    if !can_scramble(word) {
        return Attempt::Rejected;
    }
    let mut letters: Vec<u8> = word.bytes().collect();
    let mut scrambled = false;
    for _ in 0..SHUFFLES_PER_DERIVATION {
        rng.shuffle(&mut letters);
        if letters != word.as_bytes() {
            scrambled = true;
            break;
        }
    }
    if !scrambled {
        return Attempt::Rejected;
    }
    // Letters come from a validated a–z word, so this is ASCII.
    let scramble: String = letters.iter().map(|&byte| char::from(byte)).collect();
    let (solutions, nodes) = solve(&scramble, set);
    if solutions.len() != 1 {
        return Attempt::Rejected;
    }
    // Paired with the generator: the one solution must be the chosen word.
    debug_assert_eq!(&solutions[0], word);
    let shown = scramble.to_ascii_uppercase();
    Attempt::Accepted(Candidate {
        difficulty: "standard".to_owned(),
        text: format!(
            "Unscramble these letters into an English word that uses every letter exactly \
             once: {shown}"
        ),
        answer: word.clone(),
        data: PuzzleData::Anagram { letters: shown },
        solver: SolverStats {
            nodes,
            technique: "letter-multiset".to_owned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dictionary::shipped;

    #[test]
    fn ambiguous_and_unique_words() {
        let stage = vec!["listen".to_owned(), "compass".to_owned()];
        let set = WordSet {
            stage: &stage,
            shipped: shipped(),
        };
        assert!(solve("enlits", &set).0.len() >= 2);
        assert_eq!(solve("spmoacs", &set).0, vec!["compass".to_owned()]);
    }

    #[test]
    fn unscramblable_words() {
        assert!(!can_scramble("aaa"));
        assert!(!can_scramble("a"));
        assert!(can_scramble("ab"));
    }
}
