//! Leaderboards for Veltrix: a hand-written order-statistic B+tree
//! ([`OrderStatisticSet`]) and a [`Board`] on top of it that ranks players by
//! score, then by the log position at which they reached it.
//!
//! Everything here is deterministic: no clocks, no randomness, no hash-map
//! iteration feeding output. See `README.md` for the design and numbers.
//!
//! ```
//! use veltrix_rank::{Board, Row};
//!
//! let mut board = Board::new();
//! board.add(7, 30, 1); // player 7 reaches 30 at log position 1
//! board.add(3, 30, 2); // player 3 reaches 30 later: ranked below 7
//! board.add(9, 10, 3);
//! assert_eq!(board.rank(7), Some(1));
//! assert_eq!(board.rank(3), Some(2));
//! assert_eq!(board.page(2, 10), vec![Row { rank: 3, player: 9, score: 10 }]);
//! assert_eq!(board.around(3, 1).len(), 3);
//! assert_eq!(board.rank(42), None);
//! ```

mod board;
mod set;

pub use board::{Board, Row};
pub use set::{DEFAULT_FANOUT, InvariantViolation, Iter, OrderStatisticSet};
