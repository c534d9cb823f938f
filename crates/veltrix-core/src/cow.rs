//! A vector whose clones share storage, so the server can copy the whole
//! state for a snapshot without stalling ingest.
//!
//! [`CowVec`] keeps its elements in chunks of [`CHUNK`] behind `Arc`s:
//! cloning copies one pointer a chunk (a 10-million-element vector clones in
//! about ten thousand reference-count increments), and the first write to a
//! chunk after a clone copies that chunk only (`Arc::make_mut`). Appends
//! touch the last chunk only, so an append-only vector (grants, spends, dead
//! letters, dedup keys) pays at most one partial chunk copy a clone.
//!
//! Chunks are also the unit the snapshot encoder caches by: a chunk whose
//! `Arc` is the one it encoded last time has not changed (`Arc::make_mut`
//! never writes into an allocation another `Arc` or a `Weak` still points
//! to; it copies or moves the value first).
//!
//! Hand-written rather than taken from a persistent-collections crate
//! (`im`, `rpds`): those trade every read for a tree walk, while the engine
//! reads and appends far more often than it snapshots; here a read is two
//! indexings and an append is a `Vec::push`.

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use std::sync::Arc;

/// Elements a chunk; a power of two so indexing is a shift and a mask.
pub const CHUNK: usize = 1024;
const SHIFT: u32 = CHUNK.trailing_zeros();

pub struct CowVec<T> {
    /// Every chunk but the last holds exactly `CHUNK` elements.
    chunks: Vec<Arc<Vec<T>>>,
    len: usize,
}

impl<T> Default for CowVec<T> {
    fn default() -> Self {
        CowVec {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Clone for CowVec<T> {
    /// Shares every chunk: O(len / CHUNK), whatever `T` is.
    fn clone(&self) -> Self {
        CowVec {
            chunks: self.chunks.clone(),
            len: self.len,
        }
    }
}

impl<T> CowVec<T> {
    pub fn new() -> Self {
        CowVec::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, index: usize) -> Option<&T> {
        if index >= self.len {
            return None;
        }
        Some(&self.chunks[index >> SHIFT][index & (CHUNK - 1)])
    }

    pub fn last(&self) -> Option<&T> {
        self.chunks.last().and_then(|chunk| chunk.last())
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + Clone {
        self.chunks.iter().flat_map(|chunk| chunk.iter())
    }

    /// The elements from `start` on (empty when `start >= len`).
    pub fn iter_from(&self, start: usize) -> impl Iterator<Item = &T> + Clone {
        let first = start >> SHIFT;
        let skip = start & (CHUNK - 1);
        self.chunks
            .get(first..)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .flat_map(move |(i, chunk)| {
                chunk[if i == 0 { skip.min(chunk.len()) } else { 0 }..].iter()
            })
    }

    /// Whether the chunk holding `index` is shared with a clone (a write to
    /// it would copy the chunk first). False past the end.
    pub fn is_shared_at(&self, index: usize) -> bool {
        index < self.len && Arc::strong_count(&self.chunks[index >> SHIFT]) > 1
    }

    /// The chunks, in order; every one but the last is full.
    pub fn chunks(&self) -> &[Arc<Vec<T>>] {
        &self.chunks
    }

    fn check(&self) {
        debug_assert_eq!(
            self.len,
            self.chunks.iter().map(|c| c.len()).sum::<usize>(),
            "CowVec length matches its chunks"
        );
        debug_assert!(
            self.chunks
                .iter()
                .rev()
                .skip(1)
                .all(|chunk| chunk.len() == CHUNK),
            "every chunk but the last is full"
        );
    }
}

impl<T: Clone> CowVec<T> {
    pub fn push(&mut self, value: T) {
        if self.len & (CHUNK - 1) == 0 {
            let mut chunk = Vec::with_capacity(CHUNK);
            chunk.push(value);
            self.chunks.push(Arc::new(chunk));
        } else {
            let last = self.chunks.last_mut().expect("a partial chunk exists");
            let chunk = Arc::make_mut(last);
            // A copied chunk has only the capacity it needed.
            chunk.reserve_exact(CHUNK - chunk.len());
            chunk.push(value);
        }
        self.len += 1;
    }

    /// Appends every value of `values`, copying a shared last chunk at most
    /// once: `push` pays an atomic uniqueness check per value, and on the
    /// engine thread that check also waits for the stores before it.
    pub fn extend_from_slice(&mut self, mut values: &[T]) {
        while !values.is_empty() {
            let room = CHUNK - (self.len & (CHUNK - 1));
            let (now, rest) = values.split_at(room.min(values.len()));
            if self.len & (CHUNK - 1) == 0 {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.extend_from_slice(now);
                self.chunks.push(Arc::new(chunk));
            } else {
                let last = self.chunks.last_mut().expect("a partial chunk exists");
                let chunk = Arc::make_mut(last);
                chunk.reserve_exact(CHUNK - chunk.len());
                chunk.extend_from_slice(now);
            }
            self.len += now.len();
            values = rest;
        }
        self.check();
    }

    /// The element at `index`, copying its chunk first if it is shared.
    pub fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        if index >= self.len {
            return None;
        }
        Some(&mut Arc::make_mut(&mut self.chunks[index >> SHIFT])[index & (CHUNK - 1)])
    }

    /// Gives this vector its own copy of its last chunk if a clone shares
    /// it: the chunk an append writes to, so the clone's next append does
    /// not copy it.
    pub fn unshare_last_chunk(&mut self) {
        if let Some(last) = self.chunks.last_mut() {
            Arc::make_mut(last);
        }
    }

    /// Every element, mutably; copies every shared chunk.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.chunks
            .iter_mut()
            .flat_map(|chunk| Arc::make_mut(chunk).iter_mut())
    }

    pub fn pop(&mut self) -> Option<T> {
        let last = self.chunks.last_mut()?;
        let value = Arc::make_mut(last).pop();
        if last.is_empty() {
            self.chunks.pop();
        }
        self.len -= 1;
        self.check();
        value
    }

    /// Removes the elements at `positions` (ascending, no repeats, each
    /// below `len`), keeping the order of the others. Costs a copy of the
    /// elements after the first position.
    pub fn remove_sorted(&mut self, positions: &[usize]) {
        let Some(&first) = positions.first() else {
            return;
        };
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]) && positions[positions.len() - 1] < self.len,
            "positions to remove are ascending and in range"
        );
        let mut doomed = positions.iter().peekable();
        let kept: Vec<T> = self
            .iter_from(first)
            .enumerate()
            .filter(|(offset, _)| {
                let removed = doomed.peek() == Some(&&(first + offset));
                if removed {
                    doomed.next();
                }
                !removed
            })
            .map(|(_, value)| value.clone())
            .collect();
        self.truncate(first);
        self.extend(kept);
    }

    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        self.chunks.truncate(len.div_ceil(CHUNK));
        let keep = len - self.chunks.len().saturating_sub(1) * CHUNK;
        if let Some(last) = self.chunks.last_mut()
            && last.len() != keep
        {
            Arc::make_mut(last).truncate(keep);
        }
        self.len = len;
        self.check();
    }
}

impl<T> std::ops::Index<usize> for CowVec<T> {
    type Output = T;

    fn index(&self, index: usize) -> &T {
        match self.get(index) {
            Some(value) => value,
            None => panic!("index {index} out of range for a CowVec of {}", self.len),
        }
    }
}

impl<T: Clone> std::ops::IndexMut<usize> for CowVec<T> {
    fn index_mut(&mut self, index: usize) -> &mut T {
        let len = self.len;
        match self.get_mut(index) {
            Some(value) => value,
            None => panic!("index {index} out of range for a CowVec of {len}"),
        }
    }
}

impl<T: Clone> FromIterator<T> for CowVec<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut vec = CowVec::new();
        vec.extend(iter);
        vec
    }
}

impl<T: Clone> Extend<T> for CowVec<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for value in iter {
            self.push(value);
        }
        self.check();
    }
}

impl<T: Clone> From<Vec<T>> for CowVec<T> {
    fn from(vec: Vec<T>) -> Self {
        vec.into_iter().collect()
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for CowVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: PartialEq> PartialEq for CowVec<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<T: Eq> Eq for CowVec<T> {}

/// Serialized as a plain sequence: the same bytes as a `Vec<T>`, so
/// snapshots do not depend on the chunking.
impl<T: serde::Serialize> serde::Serialize for CowVec<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len))?;
        for value in self.iter() {
            seq.serialize_element(value)?;
        }
        seq.end()
    }
}

impl<'de, T: serde::Deserialize<'de> + Clone> serde::Deserialize<'de> for CowVec<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Elements<T>(std::marker::PhantomData<T>);

        impl<'de, T: serde::Deserialize<'de> + Clone> Visitor<'de> for Elements<T> {
            type Value = CowVec<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sequence")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CowVec<T>, A::Error> {
                let mut vec = CowVec::new();
                while let Some(value) = seq.next_element()? {
                    vec.push(value);
                }
                Ok(vec)
            }
        }

        deserializer.deserialize_seq(Elements(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Push(u32),
        ExtendFromSlice(Vec<u32>),
        Set(usize, u32),
        Truncate(usize),
        Pop,
        Remove(Vec<usize>),
        Clone,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => any::<u32>().prop_map(Op::Push),
            2 => proptest::collection::vec(any::<u32>(), 0..2500).prop_map(Op::ExtendFromSlice),
            3 => (any::<usize>(), any::<u32>()).prop_map(|(i, v)| Op::Set(i, v)),
            1 => any::<usize>().prop_map(Op::Truncate),
            1 => Just(Op::Pop),
            1 => proptest::collection::vec(any::<usize>(), 0..5).prop_map(Op::Remove),
            1 => Just(Op::Clone),
        ]
    }

    proptest! {
        /// A CowVec behaves like a Vec, and writing to it never changes a
        /// clone taken earlier.
        #[test]
        fn behaves_like_a_vec_and_clones_stay_frozen(
            ops in proptest::collection::vec(op(), 0..60),
            bulk in 0usize..3000,
        ) {
            let mut model: Vec<u32> = (0..bulk as u32).collect();
            let mut vec: CowVec<u32> = model.iter().copied().collect();
            let mut frozen: Vec<(Vec<u32>, CowVec<u32>)> = Vec::new();
            for op in ops {
                match op {
                    Op::Push(v) => {
                        model.push(v);
                        vec.push(v);
                    }
                    Op::ExtendFromSlice(values) => {
                        model.extend_from_slice(&values);
                        vec.extend_from_slice(&values);
                    }
                    Op::Set(i, v) if !model.is_empty() => {
                        let i = i % model.len();
                        model[i] = v;
                        vec[i] = v;
                    }
                    Op::Set(..) => prop_assert!(vec.get_mut(0).is_none()),
                    Op::Truncate(n) => {
                        let n = n % (model.len() + 2);
                        model.truncate(n);
                        vec.truncate(n);
                    }
                    Op::Pop => prop_assert_eq!(vec.pop(), model.pop()),
                    Op::Remove(picks) => {
                        let mut positions: Vec<usize> = picks
                            .iter()
                            .filter(|_| !model.is_empty())
                            .map(|p| p % model.len())
                            .collect();
                        positions.sort();
                        positions.dedup();
                        for &p in positions.iter().rev() {
                            model.remove(p);
                        }
                        vec.remove_sorted(&positions);
                    }
                    Op::Clone => frozen.push((model.clone(), vec.clone())),
                }
                vec.check();
                prop_assert_eq!(vec.len(), model.len());
            }
            prop_assert_eq!(vec.iter().copied().collect::<Vec<_>>(), model.clone());
            prop_assert_eq!(vec.last(), model.last());
            for start in [0, 1, CHUNK - 1, CHUNK, CHUNK + 5, model.len(), model.len() + 3] {
                let expected: Vec<u32> = model.iter().skip(start).copied().collect();
                prop_assert_eq!(vec.iter_from(start).copied().collect::<Vec<_>>(), expected);
            }
            for (model, copy) in frozen {
                prop_assert_eq!(copy.iter().copied().collect::<Vec<_>>(), model);
            }
        }
    }

    #[test]
    fn clones_share_chunks_until_written() {
        let mut a: CowVec<u64> = (0..3 * CHUNK as u64).collect();
        let b = a.clone();
        assert!(
            a.chunks()
                .iter()
                .zip(b.chunks())
                .all(|(x, y)| Arc::ptr_eq(x, y))
        );
        a[CHUNK + 1] = 7;
        let shared: Vec<bool> = a
            .chunks()
            .iter()
            .zip(b.chunks())
            .map(|(x, y)| Arc::ptr_eq(x, y))
            .collect();
        assert_eq!(shared, [true, false, true]);
        assert_eq!(b[CHUNK + 1], CHUNK as u64 + 1);
        assert_eq!(a[CHUNK + 1], 7);
    }

    #[test]
    fn serializes_like_a_vec() {
        let plain: Vec<String> = (0..2500).map(|i| format!("g{i}")).collect();
        let cow: CowVec<String> = plain.clone().into();
        let bytes = postcard::to_allocvec(&cow).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&plain).unwrap());
        let back: CowVec<String> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, cow);
    }

    #[test]
    #[should_panic(expected = "index 3 out of range for a CowVec of 3")]
    fn indexing_past_the_end_names_the_index() {
        let vec: CowVec<u8> = vec![1, 2, 3].into();
        let _ = vec[3];
    }
}
