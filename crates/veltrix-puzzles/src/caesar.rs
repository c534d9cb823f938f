//! `caesar`: a word from the stage list, every letter moved the same number of
//! places (1..=25) along A–Z.
//!
//! Uniqueness: the solver tries every rotation of the ciphertext (0..=25) and
//! counts those that are words of the stage list ∪ the shipped dictionary.
//! Exactly one must be; rotation 0 is included so a ciphertext that is itself
//! a word is rejected too (it would read as an answer).

use crate::Attempt;
use crate::Candidate;
use crate::PuzzleData;
use crate::SolverStats;
use crate::derive::Rng;
use crate::dictionary::{Source, WordSet};

/// Moves every letter of a lowercase a–z word `shift` places forward.
pub(crate) fn rotate(word: &str, shift: u8) -> String {
    word.bytes()
        .map(|byte| char::from(b'a' + (byte - b'a' + shift % 26) % 26))
        .collect()
}

/// Other shifts (1..=25) of `word` that land on a word of the set: any such
/// collision makes every instance of `word` ambiguous, whatever the shift.
pub(crate) fn collisions(word: &str, set: &WordSet) -> Vec<(u8, String, Source)> {
    (1..26u8)
        .filter_map(|shift| {
            let rotated = rotate(word, shift);
            set.find(&rotated).map(|source| (shift, rotated, source))
        })
        .collect()
}

/// Rotations of `ciphertext` that are words, and the number tried (26).
pub(crate) fn solve(ciphertext: &str, set: &WordSet) -> (Vec<String>, u64) {
    let solutions = (0..26u8)
        .map(|shift| rotate(ciphertext, shift))
        .filter(|candidate| set.find(candidate).is_some())
        .collect();
    (solutions, 26)
}

pub(crate) fn attempt(words: &[String], set: &WordSet, rng: &mut Rng) -> Attempt {
    let word = &words[rng.below(words.len())];
    let shift = 1 + rng.below(25) as u8;
    let ciphertext = rotate(word, shift);
    let (solutions, nodes) = solve(&ciphertext, set);
    if solutions.len() != 1 {
        return Attempt::Rejected;
    }
    // Paired with the generator: the one solution must be the chosen word.
    debug_assert_eq!(&solutions[0], word);
    let shown = ciphertext.to_ascii_uppercase();
    Attempt::Accepted(Candidate {
        difficulty: "standard".to_owned(),
        text: format!(
            "Decode this Caesar-shifted word. Every letter was moved the same number of \
             places (1 to 25) forward along the alphabet A-Z, wrapping from Z to A. \
             Answer with the original word: {shown}"
        ),
        answer: word.clone(),
        data: PuzzleData::Caesar { ciphertext: shown },
        solver: SolverStats {
            nodes,
            technique: "all-shifts".to_owned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dictionary::shipped;

    #[test]
    fn rotation() {
        assert_eq!(rotate("abc", 1), "bcd");
        assert_eq!(rotate("xyz", 3), "abc");
        assert_eq!(rotate("compass", 26), "compass");
        assert_eq!(rotate(&rotate("lantern", 7), 19), "lantern");
    }

    #[test]
    fn finds_ambiguous_words() {
        let stage = vec!["cheer".to_owned()];
        let set = WordSet {
            stage: &stage,
            shipped: shipped(),
        };
        // cheer + 7 = jolly.
        let stage_with = vec!["cheer".to_owned(), "jolly".to_owned()];
        let set_with = WordSet {
            stage: &stage_with,
            shipped: shipped(),
        };
        assert!(
            collisions("cheer", &set_with)
                .iter()
                .any(|(shift, word, _)| *shift == 7 && word == "jolly")
        );
        assert_eq!(
            collisions("cheer", &set)
                .iter()
                .any(|(_, word, _)| word == "jolly"),
            shipped().contains("jolly")
        );
    }

    #[test]
    fn solves_unique_instance() {
        let stage = vec!["compass".to_owned()];
        let set = WordSet {
            stage: &stage,
            shipped: shipped(),
        };
        let (solutions, nodes) = solve(&rotate("compass", 3), &set);
        assert_eq!(solutions, vec!["compass".to_owned()]);
        assert_eq!(nodes, 26);
    }
}
