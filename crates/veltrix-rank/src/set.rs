//! An order-statistic B+tree: a sorted set that also answers "what is the
//! position of this key" and "which key is at this position" in O(log n).
//!
//! Layout (see the crate README for the reasoning):
//!
//! - Two arenas, one for leaves and one for internal nodes. A node is a `u32`
//!   index; its `B` key slots live contiguously at `index * B .. index * B + B`
//!   in one flat `Vec<K>`. Slots past a node's length hold stale copies of some
//!   valid key, which is what lets the arena be plain safe `Vec<K>` with no
//!   `MaybeUninit` and no `K: Default` bound.
//! - An internal node with children `c0..c(m-1)` stores separator keys
//!   `s1..s(m-1)` (slot 0 is unused) and, per child, the number of keys in
//!   that child's subtree. Summing the counts to the left of the path gives a
//!   key's rank, and walking the counts gives `select`.
//! - Leaves are chained left to right so that `iter_from` walks keys without
//!   going back up the tree.
//!
//! **Invariants** (checked by [`OrderStatisticSet::check_invariants`]):
//!
//! 1. All leaves are at depth `height`; the root is a leaf when `height == 0`.
//! 2. Every node but the root holds between `B / 2` and `B` entries; an
//!    internal root holds at least 2 children and a leaf root at least 1 key
//!    (an empty set has no root at all).
//! 3. Keys within a leaf strictly increase; for child `j` of an internal node,
//!    `s(j) <= every key in cj < s(j+1)` (missing bounds are those of the
//!    parent). Separators may be stale after removals: they bound, they do not
//!    have to be present.
//! 4. `counts[j]` equals the number of keys under child `j`; the sum over the
//!    root equals `len`.
//! 5. The leaf chain visits exactly the leaves in key order and ends in `NIL`.
//! 6. Every arena slot is either reachable from the root or on a free list,
//!    never both.

use std::fmt;

/// Fan-out used when none is given: 32 keys per leaf, 32 children per node.
/// Measured against 16 and 64 in `benches/rank.rs` (see README).
pub const DEFAULT_FANOUT: usize = 32;

/// The "no node" index: an empty tree's root, and the last leaf's `next`.
const NIL: u32 = u32::MAX;

/// A sorted set of `K` with rank and select in O(log n).
///
/// `B` is the fan-out: the most keys a leaf holds and the most children an
/// internal node holds. It must be even and at least 4; tests use 4 so that
/// a few hundred operations already split and merge nodes on every level.
#[derive(Clone)]
pub struct OrderStatisticSet<K: Ord + Copy, const B: usize = DEFAULT_FANOUT> {
    /// Key slots of all leaves, `B` per leaf.
    leaf_keys: Vec<K>,
    /// Number of keys used in each leaf.
    leaf_len: Vec<u32>,
    /// The next leaf in key order, or `NIL`.
    leaf_next: Vec<u32>,
    /// Leaves freed by merges, reused before the arena grows.
    free_leaves: Vec<u32>,
    /// Separator key slots of all internal nodes, `B` per node; slot 0 unused.
    node_keys: Vec<K>,
    /// Child indices of all internal nodes, `B` per node.
    node_children: Vec<u32>,
    /// Subtree key count of each child, `B` per node.
    node_counts: Vec<usize>,
    /// Number of children used in each internal node.
    node_len: Vec<u32>,
    /// Internal nodes freed by merges.
    free_nodes: Vec<u32>,
    /// The root node: a leaf when `height == 0`, `NIL` when the set is empty.
    root: u32,
    /// Number of internal levels above the leaves.
    height: u32,
    /// Number of keys in the set.
    len: usize,
}

/// What happened below a node during an insert.
enum Grown<K> {
    /// The key was already present; nothing changed.
    Duplicate,
    /// The key was added and the child did not split.
    Absorbed,
    /// The key was added and the child split; `right` is the new right half
    /// holding `right_count` keys, all `>= separator`.
    Split {
        separator: K,
        right: u32,
        right_count: usize,
    },
}

/// A broken structural invariant, reported by `check_invariants`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvariantViolation(pub String);

impl fmt::Display for InvariantViolation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "order-statistic set invariant violated: {}",
            self.0
        )
    }
}

impl std::error::Error for InvariantViolation {}

macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(InvariantViolation(format!($($message)+)));
        }
    };
}

impl<K: Ord + Copy> OrderStatisticSet<K, DEFAULT_FANOUT> {
    /// An empty set with the default fan-out. Use `default()` (or
    /// `OrderStatisticSet::<K, B>::default()`) for another fan-out.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<K: Ord + Copy, const B: usize> Default for OrderStatisticSet<K, B> {
    fn default() -> Self {
        const {
            assert!(
                B >= 4 && B.is_multiple_of(2),
                "fan-out must be even and at least 4"
            );
            // Lengths are stored as u32.
            assert!(B < u32::MAX as usize);
        }
        Self {
            leaf_keys: Vec::new(),
            leaf_len: Vec::new(),
            leaf_next: Vec::new(),
            free_leaves: Vec::new(),
            node_keys: Vec::new(),
            node_children: Vec::new(),
            node_counts: Vec::new(),
            node_len: Vec::new(),
            free_nodes: Vec::new(),
            root: NIL,
            height: 0,
            len: 0,
        }
    }
}

impl<K: Ord + Copy + fmt::Debug, const B: usize> fmt::Debug for OrderStatisticSet<K, B> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_set().entries(self.iter_from(0)).finish()
    }
}

impl<K: Ord + Copy, const B: usize> PartialEq for OrderStatisticSet<K, B> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter_from(0).eq(other.iter_from(0))
    }
}

impl<K: Ord + Copy, const B: usize> Eq for OrderStatisticSet<K, B> {}

impl<K: Ord + Copy, const B: usize> FromIterator<K> for OrderStatisticSet<K, B> {
    fn from_iter<I: IntoIterator<Item = K>>(keys: I) -> Self {
        Self::from_keys(keys)
    }
}

impl<K: Ord + Copy, const B: usize> OrderStatisticSet<K, B> {
    /// Fewest entries a non-root node may hold.
    const MIN: usize = B / 2;

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the set holds no keys.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Builds a set from keys in any order (duplicates are dropped).
    ///
    /// O(n) when the keys already strictly increase, O(n log n) otherwise.
    /// Leaves and nodes are filled to about three quarters, so that the
    /// inserts that follow a rebuild do not split every node at once.
    pub fn from_keys(keys: impl IntoIterator<Item = K>) -> Self {
        let mut keys: Vec<K> = keys.into_iter().collect();
        if !keys.windows(2).all(|pair| pair[0] < pair[1]) {
            keys.sort_unstable();
            keys.dedup();
        }
        Self::bulk_load(&keys)
    }

    /// Adds `key`; false when it was already present.
    pub fn insert(&mut self, key: K) -> bool {
        if self.root == NIL {
            let leaf = self.alloc_leaf(key);
            self.leaf_keys[leaf as usize * B] = key;
            self.leaf_len[leaf as usize] = 1;
            self.root = leaf;
            self.height = 0;
            self.len = 1;
            return true;
        }
        match self.insert_below(self.root, self.height, key) {
            Grown::Duplicate => false,
            Grown::Absorbed => {
                self.len += 1;
                true
            }
            Grown::Split {
                separator,
                right,
                right_count,
            } => {
                let left_count = self.len + 1 - right_count;
                let node = self.alloc_node(separator);
                let base = node as usize * B;
                self.node_children[base] = self.root;
                self.node_children[base + 1] = right;
                self.node_counts[base] = left_count;
                self.node_counts[base + 1] = right_count;
                self.node_keys[base + 1] = separator;
                self.node_len[node as usize] = 2;
                self.root = node;
                self.height += 1;
                self.len += 1;
                true
            }
        }
    }

    /// Removes `key`; false when it was absent.
    pub fn remove(&mut self, key: &K) -> bool {
        if self.root == NIL {
            return false;
        }
        let found = self.remove_below(self.root, self.height, key);
        if !found {
            return false;
        }
        self.len -= 1;
        if self.height == 0 {
            if self.leaf_len[self.root as usize] == 0 {
                debug_assert_eq!(self.len, 0);
                self.free_leaves.push(self.root);
                self.root = NIL;
            }
        } else if self.node_len[self.root as usize] == 1 {
            // The root lost its last sibling pair: its only child becomes root.
            let old = self.root;
            self.root = self.node_children[old as usize * B];
            self.free_nodes.push(old);
            self.height -= 1;
        }
        true
    }

    /// True when `key` is in the set.
    pub fn contains(&self, key: &K) -> bool {
        self.rank(key).is_some()
    }

    /// The 0-based position of `key` in ascending order, or `None` if absent.
    pub fn rank(&self, key: &K) -> Option<usize> {
        if self.root == NIL {
            return None;
        }
        let mut node = self.root;
        let mut before = 0;
        for _ in 0..self.height {
            let slot = self.route(node, key);
            let base = node as usize * B;
            before += self.node_counts[base..base + slot].iter().sum::<usize>();
            node = self.node_children[base + slot];
        }
        self.search_leaf(node, key)
            .ok()
            .map(|position| before + position)
    }

    /// The key at 0-based position `index`, or `None` past the end.
    pub fn select(&self, index: usize) -> Option<K> {
        let (leaf, position) = self.locate(index)?;
        Some(self.leaf_keys[leaf as usize * B + position])
    }

    /// Keys in ascending order, starting at position `index` (empty past the end).
    pub fn iter_from(&self, index: usize) -> Iter<'_, K, B> {
        match self.locate(index) {
            Some((leaf, position)) => Iter {
                set: self,
                leaf,
                position,
                remaining: self.len - index,
            },
            None => Iter {
                set: self,
                leaf: NIL,
                position: 0,
                remaining: 0,
            },
        }
    }

    /// All keys in ascending order.
    pub fn iter(&self) -> Iter<'_, K, B> {
        self.iter_from(0)
    }

    /// Removes every key and releases the arenas.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Verifies every structural invariant listed in the module docs.
    /// O(n); meant for tests and debugging.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let leaf_arena = self.leaf_len.len();
        let node_arena = self.node_len.len();
        ensure!(
            self.leaf_keys.len() == leaf_arena * B && self.leaf_next.len() == leaf_arena,
            "leaf arena vectors disagree in size"
        );
        ensure!(
            self.node_keys.len() == node_arena * B
                && self.node_children.len() == node_arena * B
                && self.node_counts.len() == node_arena * B,
            "node arena vectors disagree in size"
        );
        let mut leaf_seen = vec![false; leaf_arena];
        let mut node_seen = vec![false; node_arena];
        let mut leaves_in_order = Vec::new();
        if self.root == NIL {
            ensure!(self.len == 0, "no root but len is {}", self.len);
            ensure!(self.height == 0, "no root but height is {}", self.height);
        } else {
            let mut walk = Walk {
                leaf_seen: &mut leaf_seen,
                node_seen: &mut node_seen,
                leaves_in_order: &mut leaves_in_order,
            };
            let total = self.check_subtree(self.root, self.height, None, None, true, &mut walk)?;
            ensure!(
                total == self.len,
                "tree holds {total} keys but len is {}",
                self.len
            );
        }
        // Invariant 5: the chain from the first leaf is the in-order leaf list.
        let mut chained = Vec::new();
        let mut leaf = leaves_in_order.first().copied().unwrap_or(NIL);
        while leaf != NIL {
            ensure!(
                (leaf as usize) < leaf_arena && chained.len() < leaves_in_order.len(),
                "leaf chain leaves the tree at leaf {leaf}"
            );
            chained.push(leaf);
            leaf = self.leaf_next[leaf as usize];
        }
        ensure!(
            chained == leaves_in_order,
            "leaf chain differs from in-order leaves"
        );
        // Invariant 6: free lists and reachable nodes partition the arenas.
        for &free in &self.free_leaves {
            let slot = leaf_seen.get_mut(free as usize);
            ensure!(
                slot.as_deref() == Some(&false),
                "free leaf {free} is reachable or listed twice"
            );
            if let Some(seen) = slot {
                *seen = true;
            }
        }
        for &free in &self.free_nodes {
            let slot = node_seen.get_mut(free as usize);
            ensure!(
                slot.as_deref() == Some(&false),
                "free node {free} is reachable or listed twice"
            );
            if let Some(seen) = slot {
                *seen = true;
            }
        }
        ensure!(
            leaf_seen.iter().all(|&seen| seen),
            "a leaf is neither reachable nor free"
        );
        ensure!(
            node_seen.iter().all(|&seen| seen),
            "a node is neither reachable nor free"
        );
        Ok(())
    }

    // ----- checks -----

    /// Checks the subtree under `node` (at `level`, 0 = leaf) against the
    /// bounds `lower <= key < upper` and returns its key count.
    fn check_subtree(
        &self,
        node: u32,
        level: u32,
        lower: Option<K>,
        upper: Option<K>,
        is_root: bool,
        walk: &mut Walk<'_>,
    ) -> Result<usize, InvariantViolation> {
        let in_bounds =
            |key: &K| lower.is_none_or(|low| low <= *key) && upper.is_none_or(|high| *key < high);
        if level == 0 {
            let index = node as usize;
            ensure!(
                index < walk.leaf_seen.len(),
                "leaf {node} outside the arena"
            );
            ensure!(!walk.leaf_seen[index], "leaf {node} reachable twice");
            walk.leaf_seen[index] = true;
            walk.leaves_in_order.push(node);
            let len = self.leaf_len[index] as usize;
            let fewest = if is_root { 1 } else { Self::MIN };
            ensure!((fewest..=B).contains(&len), "leaf {node} holds {len} keys");
            let keys = self.leaf_slice(node);
            ensure!(
                keys.windows(2).all(|pair| pair[0] < pair[1]),
                "leaf {node} keys not strictly increasing"
            );
            ensure!(
                keys.iter().all(in_bounds),
                "leaf {node} has a key outside its separators"
            );
            return Ok(len);
        }
        let index = node as usize;
        ensure!(
            index < walk.node_seen.len(),
            "node {node} outside the arena"
        );
        ensure!(!walk.node_seen[index], "node {node} reachable twice");
        walk.node_seen[index] = true;
        let len = self.node_len[index] as usize;
        let fewest = if is_root { 2 } else { Self::MIN };
        ensure!(
            (fewest..=B).contains(&len),
            "node {node} holds {len} children"
        );
        let base = index * B;
        let separators = &self.node_keys[base + 1..base + len];
        ensure!(
            separators.windows(2).all(|pair| pair[0] < pair[1]),
            "node {node} separators not strictly increasing"
        );
        ensure!(
            separators.iter().all(in_bounds),
            "node {node} separator outside its bounds"
        );
        let mut total = 0;
        for slot in 0..len {
            let child_lower = if slot == 0 {
                lower
            } else {
                Some(self.node_keys[base + slot])
            };
            let child_upper = if slot + 1 == len {
                upper
            } else {
                Some(self.node_keys[base + slot + 1])
            };
            let child = self.node_children[base + slot];
            let count =
                self.check_subtree(child, level - 1, child_lower, child_upper, false, walk)?;
            ensure!(
                count == self.node_counts[base + slot],
                "node {node} records {} keys under child {slot}, found {count}",
                self.node_counts[base + slot]
            );
            total += count;
        }
        Ok(total)
    }

    // ----- arena -----

    /// A leaf with length 0; `filler` initialises fresh key slots.
    fn alloc_leaf(&mut self, filler: K) -> u32 {
        if let Some(leaf) = self.free_leaves.pop() {
            self.leaf_len[leaf as usize] = 0;
            self.leaf_next[leaf as usize] = NIL;
            return leaf;
        }
        let leaf = self.leaf_len.len();
        // An arena of u32::MAX leaves needs more memory than any machine has;
        // NIL must stay unused as an index.
        assert!(leaf < NIL as usize, "leaf arena full");
        self.leaf_keys.extend(std::iter::repeat_n(filler, B));
        self.leaf_len.push(0);
        self.leaf_next.push(NIL);
        leaf as u32
    }

    /// An internal node with length 0; `filler` initialises fresh key slots.
    fn alloc_node(&mut self, filler: K) -> u32 {
        if let Some(node) = self.free_nodes.pop() {
            self.node_len[node as usize] = 0;
            return node;
        }
        let node = self.node_len.len();
        assert!(node < NIL as usize, "node arena full");
        self.node_keys.extend(std::iter::repeat_n(filler, B));
        self.node_children.extend(std::iter::repeat_n(NIL, B));
        self.node_counts.extend(std::iter::repeat_n(0, B));
        self.node_len.push(0);
        node as u32
    }

    fn leaf_slice(&self, leaf: u32) -> &[K] {
        let base = leaf as usize * B;
        &self.leaf_keys[base..base + self.leaf_len[leaf as usize] as usize]
    }

    /// The child slot of `node` whose key range holds `key`.
    fn route(&self, node: u32, key: &K) -> usize {
        let base = node as usize * B;
        let len = self.node_len[node as usize] as usize;
        // Separators live in slots 1..len; child `j` holds keys >= s(j).
        self.node_keys[base + 1..base + len]
            .iter()
            .filter(|separator| *separator <= key)
            .count()
    }

    /// `Ok(slot)` of `key` in `leaf`, or `Err(slot)` where it would go.
    fn search_leaf(&self, leaf: u32, key: &K) -> Result<usize, usize> {
        let keys = self.leaf_slice(leaf);
        let position = keys.iter().filter(|candidate| *candidate < key).count();
        match keys.get(position) {
            Some(found) if found == key => Ok(position),
            _ => Err(position),
        }
    }

    /// The leaf and slot holding the key at position `index`.
    fn locate(&self, index: usize) -> Option<(u32, usize)> {
        if index >= self.len {
            return None;
        }
        let mut node = self.root;
        let mut index = index;
        for _ in 0..self.height {
            let base = node as usize * B;
            let len = self.node_len[node as usize] as usize;
            let mut slot = 0;
            while slot + 1 < len && index >= self.node_counts[base + slot] {
                index -= self.node_counts[base + slot];
                slot += 1;
            }
            debug_assert!(
                index < self.node_counts[base + slot],
                "subtree counts disagree with len"
            );
            node = self.node_children[base + slot];
        }
        debug_assert!(index < self.leaf_len[node as usize] as usize);
        Some((node, index))
    }

    // ----- insert -----

    fn insert_below(&mut self, node: u32, level: u32, key: K) -> Grown<K> {
        if level == 0 {
            return self.insert_into_leaf(node, key);
        }
        let slot = self.route(node, &key);
        let child_slot = node as usize * B + slot;
        let child = self.node_children[child_slot];
        match self.insert_below(child, level - 1, key) {
            Grown::Duplicate => Grown::Duplicate,
            Grown::Absorbed => {
                self.node_counts[child_slot] += 1;
                Grown::Absorbed
            }
            Grown::Split {
                separator,
                right,
                right_count,
            } => {
                let left_count = self.node_counts[child_slot] + 1 - right_count;
                debug_assert!(left_count >= Self::MIN && right_count >= Self::MIN);
                self.node_counts[child_slot] = left_count;
                self.insert_into_node(node, slot + 1, separator, right, right_count)
            }
        }
    }

    fn insert_into_leaf(&mut self, leaf: u32, key: K) -> Grown<K> {
        let position = match self.search_leaf(leaf, &key) {
            Ok(_) => return Grown::Duplicate,
            Err(position) => position,
        };
        let len = self.leaf_len[leaf as usize] as usize;
        if len < B {
            self.place_in_leaf(leaf, position, key);
            return Grown::Absorbed;
        }
        // Full: move the upper half to a new right leaf, then place the key.
        let middle = B / 2;
        let right = self.alloc_leaf(key);
        let base = leaf as usize * B;
        let right_base = right as usize * B;
        self.leaf_keys
            .copy_within(base + middle..base + B, right_base);
        self.leaf_len[leaf as usize] = middle as u32;
        self.leaf_len[right as usize] = (B - middle) as u32;
        self.leaf_next[right as usize] = self.leaf_next[leaf as usize];
        self.leaf_next[leaf as usize] = right;
        if position < middle {
            self.place_in_leaf(leaf, position, key);
        } else {
            self.place_in_leaf(right, position - middle, key);
        }
        Grown::Split {
            separator: self.leaf_keys[right_base],
            right,
            right_count: self.leaf_len[right as usize] as usize,
        }
    }

    /// Inserts `key` at `position` of a leaf that has room.
    fn place_in_leaf(&mut self, leaf: u32, position: usize, key: K) {
        let base = leaf as usize * B;
        let len = self.leaf_len[leaf as usize] as usize;
        debug_assert!(len < B && position <= len);
        self.leaf_keys
            .copy_within(base + position..base + len, base + position + 1);
        self.leaf_keys[base + position] = key;
        self.leaf_len[leaf as usize] += 1;
    }

    /// Inserts child `child` (holding `count` keys, all `>= separator`) at
    /// `slot` of `node`, splitting `node` when it is full.
    fn insert_into_node(
        &mut self,
        node: u32,
        slot: usize,
        separator: K,
        child: u32,
        count: usize,
    ) -> Grown<K> {
        debug_assert!(slot >= 1);
        let len = self.node_len[node as usize] as usize;
        if len < B {
            self.place_in_node(node, slot, separator, child, count);
            return Grown::Absorbed;
        }
        let middle = B / 2;
        let right = self.alloc_node(separator);
        let base = node as usize * B;
        let right_base = right as usize * B;
        // Slot `middle`'s separator lands in the right node's unused slot 0
        // and is what the parent receives.
        self.node_keys
            .copy_within(base + middle..base + B, right_base);
        self.node_children
            .copy_within(base + middle..base + B, right_base);
        self.node_counts
            .copy_within(base + middle..base + B, right_base);
        self.node_len[node as usize] = middle as u32;
        self.node_len[right as usize] = (B - middle) as u32;
        if slot <= middle {
            self.place_in_node(node, slot, separator, child, count);
        } else {
            self.place_in_node(right, slot - middle, separator, child, count);
        }
        let right_len = self.node_len[right as usize] as usize;
        Grown::Split {
            separator: self.node_keys[right_base],
            right,
            right_count: self.node_counts[right_base..right_base + right_len]
                .iter()
                .sum(),
        }
    }

    /// Inserts an entry at `slot` (>= 1) of a node that has room.
    fn place_in_node(&mut self, node: u32, slot: usize, separator: K, child: u32, count: usize) {
        let base = node as usize * B;
        let len = self.node_len[node as usize] as usize;
        debug_assert!(len < B && slot >= 1 && slot <= len);
        self.node_keys
            .copy_within(base + slot..base + len, base + slot + 1);
        self.node_children
            .copy_within(base + slot..base + len, base + slot + 1);
        self.node_counts
            .copy_within(base + slot..base + len, base + slot + 1);
        self.node_keys[base + slot] = separator;
        self.node_children[base + slot] = child;
        self.node_counts[base + slot] = count;
        self.node_len[node as usize] += 1;
    }

    // ----- remove -----

    /// Removes `key` under `node`; on success, repairs any child left with
    /// fewer than `MIN` entries. The caller repairs `node` itself.
    fn remove_below(&mut self, node: u32, level: u32, key: &K) -> bool {
        if level == 0 {
            let Ok(position) = self.search_leaf(node, key) else {
                return false;
            };
            let base = node as usize * B;
            let len = self.leaf_len[node as usize] as usize;
            self.leaf_keys
                .copy_within(base + position + 1..base + len, base + position);
            self.leaf_len[node as usize] -= 1;
            return true;
        }
        let slot = self.route(node, key);
        let child = self.node_children[node as usize * B + slot];
        if !self.remove_below(child, level - 1, key) {
            return false;
        }
        self.node_counts[node as usize * B + slot] -= 1;
        let child_level = level - 1;
        let child_len = if child_level == 0 {
            self.leaf_len[child as usize]
        } else {
            self.node_len[child as usize]
        } as usize;
        if child_len < Self::MIN {
            self.repair_child(node, slot, child_level);
        }
        true
    }

    /// Child `slot` of `parent` holds `MIN - 1` entries: borrow one from a
    /// sibling that can spare it, or merge with a sibling.
    fn repair_child(&mut self, parent: u32, slot: usize, child_level: u32) {
        let parent_len = self.node_len[parent as usize] as usize;
        // Every internal node has >= 2 children, so a sibling exists.
        debug_assert!(parent_len >= 2);
        let base = parent as usize * B;
        let entries = |set: &Self, child: u32| -> usize {
            if child_level == 0 {
                set.leaf_len[child as usize] as usize
            } else {
                set.node_len[child as usize] as usize
            }
        };
        let left_spare = slot > 0 && entries(self, self.node_children[base + slot - 1]) > Self::MIN;
        let right_spare =
            slot + 1 < parent_len && entries(self, self.node_children[base + slot + 1]) > Self::MIN;
        match (child_level == 0, left_spare, right_spare) {
            (true, true, _) => self.leaf_borrow_from_left(parent, slot),
            (true, false, true) => self.leaf_borrow_from_right(parent, slot),
            (false, true, _) => self.node_borrow_from_left(parent, slot),
            (false, false, true) => self.node_borrow_from_right(parent, slot),
            (is_leaf, false, false) => {
                // Merge the pair (slot - 1, slot) when there is a left
                // sibling, else (slot, slot + 1).
                let left_slot = if slot > 0 { slot - 1 } else { slot };
                if is_leaf {
                    self.merge_leaves(parent, left_slot);
                } else {
                    self.merge_nodes(parent, left_slot);
                }
            }
        }
    }

    fn leaf_borrow_from_left(&mut self, parent: u32, slot: usize) {
        let base = parent as usize * B;
        let left = self.node_children[base + slot - 1];
        let child = self.node_children[base + slot];
        let left_len = self.leaf_len[left as usize] as usize;
        let moved = self.leaf_keys[left as usize * B + left_len - 1];
        self.leaf_len[left as usize] -= 1;
        self.place_in_leaf(child, 0, moved);
        self.node_keys[base + slot] = moved;
        self.node_counts[base + slot - 1] -= 1;
        self.node_counts[base + slot] += 1;
    }

    fn leaf_borrow_from_right(&mut self, parent: u32, slot: usize) {
        let base = parent as usize * B;
        let child = self.node_children[base + slot];
        let right = self.node_children[base + slot + 1];
        let right_base = right as usize * B;
        let right_len = self.leaf_len[right as usize] as usize;
        let moved = self.leaf_keys[right_base];
        self.leaf_keys
            .copy_within(right_base + 1..right_base + right_len, right_base);
        self.leaf_len[right as usize] -= 1;
        let child_len = self.leaf_len[child as usize] as usize;
        self.place_in_leaf(child, child_len, moved);
        self.node_keys[base + slot + 1] = self.leaf_keys[right_base];
        self.node_counts[base + slot] += 1;
        self.node_counts[base + slot + 1] -= 1;
    }

    fn node_borrow_from_left(&mut self, parent: u32, slot: usize) {
        let base = parent as usize * B;
        let left = self.node_children[base + slot - 1];
        let child = self.node_children[base + slot];
        let left_base = left as usize * B;
        let child_base = child as usize * B;
        let left_len = self.node_len[left as usize] as usize;
        let child_len = self.node_len[child as usize] as usize;
        let moved_child = self.node_children[left_base + left_len - 1];
        let moved_count = self.node_counts[left_base + left_len - 1];
        let moved_separator = self.node_keys[left_base + left_len - 1];
        self.node_len[left as usize] -= 1;
        // Shift the child's entries right by one; its old first child now
        // needs the parent's separator, which bounds it from below.
        self.node_keys
            .copy_within(child_base..child_base + child_len, child_base + 1);
        self.node_children
            .copy_within(child_base..child_base + child_len, child_base + 1);
        self.node_counts
            .copy_within(child_base..child_base + child_len, child_base + 1);
        self.node_keys[child_base + 1] = self.node_keys[base + slot];
        self.node_children[child_base] = moved_child;
        self.node_counts[child_base] = moved_count;
        self.node_len[child as usize] += 1;
        self.node_keys[base + slot] = moved_separator;
        self.node_counts[base + slot - 1] -= moved_count;
        self.node_counts[base + slot] += moved_count;
    }

    fn node_borrow_from_right(&mut self, parent: u32, slot: usize) {
        let base = parent as usize * B;
        let child = self.node_children[base + slot];
        let right = self.node_children[base + slot + 1];
        let right_base = right as usize * B;
        let right_len = self.node_len[right as usize] as usize;
        let moved_child = self.node_children[right_base];
        let moved_count = self.node_counts[right_base];
        let child_len = self.node_len[child as usize] as usize;
        let separator = self.node_keys[base + slot + 1];
        self.place_in_node(child, child_len, separator, moved_child, moved_count);
        self.node_keys[base + slot + 1] = self.node_keys[right_base + 1];
        self.node_keys
            .copy_within(right_base + 1..right_base + right_len, right_base);
        self.node_children
            .copy_within(right_base + 1..right_base + right_len, right_base);
        self.node_counts
            .copy_within(right_base + 1..right_base + right_len, right_base);
        self.node_len[right as usize] -= 1;
        self.node_counts[base + slot] += moved_count;
        self.node_counts[base + slot + 1] -= moved_count;
    }

    /// Moves every key of leaf `left_slot + 1` into leaf `left_slot` and drops
    /// the emptied leaf from `parent`.
    fn merge_leaves(&mut self, parent: u32, left_slot: usize) {
        let base = parent as usize * B;
        let left = self.node_children[base + left_slot];
        let right = self.node_children[base + left_slot + 1];
        let left_len = self.leaf_len[left as usize] as usize;
        let right_len = self.leaf_len[right as usize] as usize;
        debug_assert!(left_len + right_len <= B);
        let right_base = right as usize * B;
        self.leaf_keys.copy_within(
            right_base..right_base + right_len,
            left as usize * B + left_len,
        );
        self.leaf_len[left as usize] = (left_len + right_len) as u32;
        self.leaf_next[left as usize] = self.leaf_next[right as usize];
        self.leaf_len[right as usize] = 0;
        self.leaf_next[right as usize] = NIL;
        self.free_leaves.push(right);
        self.node_counts[base + left_slot] += self.node_counts[base + left_slot + 1];
        self.drop_entry(parent, left_slot + 1);
    }

    /// Moves every child of node `left_slot + 1` into node `left_slot` and
    /// drops the emptied node from `parent`.
    fn merge_nodes(&mut self, parent: u32, left_slot: usize) {
        let base = parent as usize * B;
        let left = self.node_children[base + left_slot];
        let right = self.node_children[base + left_slot + 1];
        let left_len = self.node_len[left as usize] as usize;
        let right_len = self.node_len[right as usize] as usize;
        debug_assert!(left_len + right_len <= B);
        let left_base = left as usize * B;
        let right_base = right as usize * B;
        self.node_keys
            .copy_within(right_base..right_base + right_len, left_base + left_len);
        self.node_children
            .copy_within(right_base..right_base + right_len, left_base + left_len);
        self.node_counts
            .copy_within(right_base..right_base + right_len, left_base + left_len);
        // The right node's first child is bounded below by the parent's separator.
        self.node_keys[left_base + left_len] = self.node_keys[base + left_slot + 1];
        self.node_len[left as usize] = (left_len + right_len) as u32;
        self.node_len[right as usize] = 0;
        self.free_nodes.push(right);
        self.node_counts[base + left_slot] += self.node_counts[base + left_slot + 1];
        self.drop_entry(parent, left_slot + 1);
    }

    /// Removes entry `slot` (>= 1) from `node`, shifting later entries left.
    fn drop_entry(&mut self, node: u32, slot: usize) {
        let base = node as usize * B;
        let len = self.node_len[node as usize] as usize;
        debug_assert!(slot >= 1 && slot < len);
        self.node_keys
            .copy_within(base + slot + 1..base + len, base + slot);
        self.node_children
            .copy_within(base + slot + 1..base + len, base + slot);
        self.node_counts
            .copy_within(base + slot + 1..base + len, base + slot);
        self.node_len[node as usize] -= 1;
    }

    // ----- bulk load -----

    /// Builds a tree from strictly increasing keys, bottom up.
    fn bulk_load(keys: &[K]) -> Self {
        let mut set = Self::default();
        let Some(&first) = keys.first() else {
            return set;
        };
        // (node, keys under it, smallest key under it) for the level being built.
        let mut level: Vec<(u32, usize, K)> = Vec::new();
        let mut previous_leaf = NIL;
        let mut start = 0;
        for size in group_sizes(keys.len(), B, Self::MIN) {
            let chunk = &keys[start..start + size];
            start += size;
            let leaf = set.alloc_leaf(first);
            let base = leaf as usize * B;
            set.leaf_keys[base..base + size].copy_from_slice(chunk);
            set.leaf_len[leaf as usize] = size as u32;
            if previous_leaf != NIL {
                set.leaf_next[previous_leaf as usize] = leaf;
            }
            previous_leaf = leaf;
            level.push((leaf, size, chunk[0]));
        }
        let mut height = 0;
        while level.len() > 1 {
            let mut parents = Vec::new();
            let mut start = 0;
            for size in group_sizes(level.len(), B, Self::MIN) {
                let group = &level[start..start + size];
                start += size;
                let node = set.alloc_node(first);
                let base = node as usize * B;
                for (slot, &(child, count, smallest)) in group.iter().enumerate() {
                    set.node_keys[base + slot] = smallest;
                    set.node_children[base + slot] = child;
                    set.node_counts[base + slot] = count;
                }
                set.node_len[node as usize] = size as u32;
                let total = group.iter().map(|&(_, count, _)| count).sum();
                parents.push((node, total, group[0].2));
            }
            level = parents;
            height += 1;
        }
        set.root = level[0].0;
        set.height = height;
        set.len = keys.len();
        set
    }
}

/// Splits `n >= 1` entries into groups of `min..=max` entries (a lone group
/// may be smaller), aiming at three-quarter-full groups.
fn group_sizes(n: usize, max: usize, min: usize) -> impl Iterator<Item = usize> {
    let target = max - max / 4;
    // Never so many groups that one would fall under `min`.
    let groups = n.div_ceil(target).min((n / min).max(1));
    let (small, extra) = (n / groups, n % groups);
    debug_assert!(small + usize::from(extra > 0) <= max);
    (0..groups).map(move |group| small + usize::from(group < extra))
}

/// Bookkeeping for `check_subtree`.
struct Walk<'a> {
    leaf_seen: &'a mut Vec<bool>,
    node_seen: &'a mut Vec<bool>,
    leaves_in_order: &'a mut Vec<u32>,
}

/// Keys in ascending order from some position; see [`OrderStatisticSet::iter_from`].
#[derive(Clone)]
pub struct Iter<'a, K: Ord + Copy, const B: usize> {
    set: &'a OrderStatisticSet<K, B>,
    leaf: u32,
    position: usize,
    remaining: usize,
}

impl<K: Ord + Copy, const B: usize> Iterator for Iter<'_, K, B> {
    type Item = K;

    fn next(&mut self) -> Option<K> {
        if self.remaining == 0 {
            return None;
        }
        if self.position >= self.set.leaf_len[self.leaf as usize] as usize {
            self.leaf = self.set.leaf_next[self.leaf as usize];
            self.position = 0;
            // `remaining` counts keys still ahead, so the chain cannot end here.
            debug_assert!(self.leaf != NIL);
        }
        let key = self.set.leaf_keys[self.leaf as usize * B + self.position];
        self.position += 1;
        self.remaining -= 1;
        Some(key)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<K: Ord + Copy, const B: usize> ExactSizeIterator for Iter<'_, K, B> {}

impl<K: Ord + Copy, const B: usize> std::iter::FusedIterator for Iter<'_, K, B> {}

#[cfg(test)]
mod tests {
    use super::*;

    type Small = OrderStatisticSet<u32, 4>;

    fn assert_matches(set: &Small, model: &std::collections::BTreeSet<u32>) {
        set.check_invariants().unwrap();
        assert_eq!(set.len(), model.len());
        let keys: Vec<u32> = set.iter().collect();
        let expected: Vec<u32> = model.iter().copied().collect();
        assert_eq!(keys, expected);
        for (index, key) in expected.iter().enumerate() {
            assert_eq!(set.rank(key), Some(index));
            assert_eq!(set.select(index), Some(*key));
        }
        assert_eq!(set.select(expected.len()), None);
    }

    #[test]
    fn empty_set_answers_everything() {
        let set = OrderStatisticSet::<u64>::new();
        assert!(set.is_empty());
        assert_eq!(set.rank(&3), None);
        assert_eq!(set.select(0), None);
        assert!(!set.contains(&3));
        assert_eq!(set.iter_from(0).count(), 0);
        assert_eq!(set.iter_from(usize::MAX).count(), 0);
        set.check_invariants().unwrap();
    }

    #[test]
    fn ascending_then_descending_removal_keeps_invariants() {
        let mut set = Small::default();
        let mut model = std::collections::BTreeSet::new();
        for key in 0..300 {
            assert!(set.insert(key));
            assert!(!set.insert(key));
            model.insert(key);
            set.check_invariants().unwrap();
        }
        assert_matches(&set, &model);
        for key in (0..300).rev().step_by(2) {
            assert!(set.remove(&key));
            assert!(!set.remove(&key));
            model.remove(&key);
            set.check_invariants().unwrap();
        }
        assert_matches(&set, &model);
        for key in 0..300 {
            set.remove(&key);
            model.remove(&key);
            set.check_invariants().unwrap();
        }
        assert!(set.is_empty());
        assert_matches(&set, &model);
        // The arenas are reused after everything was freed.
        assert!(set.insert(7));
        assert_matches(&set, &[7].into_iter().collect());
    }

    #[test]
    fn iter_from_starts_at_the_position() {
        let set: Small = (0..100u32).map(|key| key * 3).collect();
        set.check_invariants().unwrap();
        for start in 0..=101 {
            let tail: Vec<u32> = set.iter_from(start).collect();
            let expected: Vec<u32> = (start.min(100)..100).map(|key| key as u32 * 3).collect();
            assert_eq!(tail, expected);
            assert_eq!(set.iter_from(start).len(), expected.len());
        }
    }

    #[test]
    fn bulk_load_builds_valid_trees_of_every_small_size() {
        for n in 0..400u32 {
            let set: Small = (0..n).collect();
            set.check_invariants().unwrap();
            assert_eq!(set.len(), n as usize);
            let default: OrderStatisticSet<u32> = (0..n).rev().collect();
            default.check_invariants().unwrap();
            assert!(default.iter().eq(0..n));
        }
    }

    #[test]
    fn group_sizes_stay_within_bounds() {
        for max in [4usize, 6, 8, 16, 32, 64] {
            let min = max / 2;
            for n in 1..5000 {
                let sizes: Vec<usize> = group_sizes(n, max, min).collect();
                assert_eq!(sizes.iter().sum::<usize>(), n);
                if sizes.len() > 1 {
                    assert!(
                        sizes.iter().all(|&size| (min..=max).contains(&size)),
                        "{n} {max} {sizes:?}"
                    );
                } else {
                    assert!(sizes[0] <= max);
                }
            }
        }
    }
}
