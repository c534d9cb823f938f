//! The shipped English word list and the stage word list, seen as one set.
//!
//! The shipped list (`data/words.txt`, one lowercase a–z word per line,
//! sorted) only ever *adds* rejections: a word in it makes some other word's
//! puzzle ambiguous. It is built once per process; lookups are binary searches
//! over sorted vectors, so no hash seed (and no `RandomState`) is involved.

use std::sync::OnceLock;

const WORDS_TEXT: &str = include_str!("../data/words.txt");

pub(crate) struct Dictionary {
    /// Sorted, deduplicated words.
    words: Vec<&'static str>,
    /// (sorted letters, word), sorted by the letters: anagram classes are
    /// contiguous runs.
    by_letters: Vec<(Box<[u8]>, &'static str)>,
}

static DICTIONARY: OnceLock<Dictionary> = OnceLock::new();

pub(crate) fn shipped() -> &'static Dictionary {
    DICTIONARY.get_or_init(|| {
        let mut words: Vec<&'static str> = WORDS_TEXT
            .lines()
            .map(str::trim)
            .filter(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase()))
            .collect();
        words.sort_unstable();
        words.dedup();
        let mut by_letters: Vec<(Box<[u8]>, &'static str)> = words
            .iter()
            .map(|word| (sorted_letters(word), *word))
            .collect();
        by_letters.sort_unstable();
        Dictionary { words, by_letters }
    })
}

impl Dictionary {
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.words.len()
    }

    pub(crate) fn words(&self) -> &[&'static str] {
        &self.words
    }

    pub(crate) fn contains(&self, word: &str) -> bool {
        self.words.binary_search(&word).is_ok()
    }

    /// Shipped words whose letters are exactly `letters` (already sorted).
    pub(crate) fn with_letters<'a>(
        &'a self,
        letters: &'a [u8],
    ) -> impl Iterator<Item = &'static str> + 'a {
        let start = self
            .by_letters
            .partition_point(|(key, _)| &key[..] < letters);
        self.by_letters[start..]
            .iter()
            .take_while(move |(key, _)| &key[..] == letters)
            .map(|(_, word)| *word)
    }
}

pub(crate) fn sorted_letters(word: &str) -> Box<[u8]> {
    let mut letters: Box<[u8]> = word.as_bytes().into();
    letters.sort_unstable();
    letters
}

/// Where a word that collides with another was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Listed,
    Dictionary,
}

impl Source {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Source::Listed => "listed",
            Source::Dictionary => "dictionary",
        }
    }
}

/// The words a player could plausibly answer: the stage list ∪ the shipped
/// list. `stage` holds normalized, validated words.
pub(crate) struct WordSet<'a> {
    pub(crate) stage: &'a [String],
    pub(crate) shipped: &'static Dictionary,
}

impl WordSet<'_> {
    /// Which list holds `word`, preferring the stage list.
    pub(crate) fn find(&self, word: &str) -> Option<Source> {
        if self.stage.iter().any(|listed| listed == word) {
            Some(Source::Listed)
        } else if self.shipped.contains(word) {
            Some(Source::Dictionary)
        } else {
            None
        }
    }

    /// Distinct words (stage ∪ shipped) with exactly these sorted letters.
    pub(crate) fn anagrams_of(&self, letters: &[u8]) -> Vec<(String, Source)> {
        let mut found: Vec<(String, Source)> = Vec::new();
        for listed in self.stage {
            if listed.len() == letters.len()
                && &sorted_letters(listed)[..] == letters
                && !found.iter().any(|(word, _)| word == listed)
            {
                found.push((listed.clone(), Source::Listed));
            }
        }
        for word in self.shipped.with_letters(letters) {
            if !found.iter().any(|(seen, _)| seen == word) {
                found.push((word.to_owned(), Source::Dictionary));
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_list_is_clean() {
        let dictionary = shipped();
        assert!(dictionary.len() > 3000, "only {} words", dictionary.len());
        let raw: Vec<&str> = WORDS_TEXT.lines().collect();
        assert_eq!(
            raw.len(),
            dictionary.len(),
            "lines must be unique a-z words"
        );
        assert!(
            raw.windows(2).all(|pair| pair[0] < pair[1]),
            "data/words.txt must stay sorted"
        );
        assert!(dictionary.contains("compass"));
        assert!(!dictionary.contains("qqq"));
    }

    #[test]
    fn anagram_classes() {
        let stage = vec!["tinsel".to_owned()];
        let set = WordSet {
            stage: &stage,
            shipped: shipped(),
        };
        let found = set.anagrams_of(&sorted_letters("listen"));
        let words: Vec<&str> = found.iter().map(|(word, _)| word.as_str()).collect();
        assert!(
            words.contains(&"listen") && words.contains(&"silent") && words.contains(&"tinsel")
        );
        assert_eq!(found.iter().filter(|(word, _)| word == "tinsel").count(), 1);
    }
}
