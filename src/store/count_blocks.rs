//! The count history's layout on both backends: one row per key (or, on the embedded
//! store, key and state) per block of 64 log positions, holding the count when the block
//! began and which of its positions moved the count up or down, one bit each. The count
//! after any position is a seek and two population counts, exact at every position, and
//! a key every event moves (a state, a project, the whole fleet) costs one row per 64
//! events where it cost one per event: on a ledger of creates, 0.6 rows per event where
//! there were 5.5.
//!
//! Blocks are cut by position alone, so a batch, a journal replay and `verify`'s rebuild
//! (whatever their transactions) write the same rows byte for byte: a transaction that
//! moves a key in a block an earlier one began adds its bits to that row and keeps the
//! row's starting count. This module owns the arithmetic; it never touches a table.

/// Positions per row: one bit each in a `u64`.
const BLOCK_BITS: u32 = 6;

/// The block a position falls in: the row's key after the key number (and state).
pub(super) fn block_of(position: u64) -> u64 {
    position >> BLOCK_BITS
}

fn bit(position: u64) -> u64 {
    1 << (position & ((1 << BLOCK_BITS) - 1))
}

/// Bits of the positions of a block up to and including `position`.
fn through(position: u64) -> u64 {
    let b = bit(position);
    b | (b - 1)
}

/// One row's value: `(count when the block began, positions that moved it up, positions
/// that moved it down)`.
pub(super) type Row = (u64, u64, u64);

/// A count-history row being read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Moves {
    pub(super) start: u64,
    pub(super) ups: u64,
    pub(super) downs: u64,
}

/// Two moves in one direction at one position: no event moves a key's count by more
/// than one, so the projection that asked for it is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MovedTwice;

impl Moves {
    /// A block nothing has moved yet, starting at `count`.
    pub(super) fn starting(count: u64) -> Moves {
        Moves {
            start: count,
            ups: 0,
            downs: 0,
        }
    }

    pub(super) fn from_row((start, ups, downs): Row) -> Moves {
        Moves { start, ups, downs }
    }

    pub(super) fn row(self) -> Row {
        (self.start, self.ups, self.downs)
    }

    /// The count after the block's last move.
    pub(super) fn last(self) -> u64 {
        self.counted(u64::MAX)
    }

    /// The count after the event at `position` (a position of this block).
    pub(super) fn at(self, position: u64) -> u64 {
        self.counted(through(position))
    }

    /// The count after the event at `position`, given this row's `block`: the row of the
    /// position's own block, or of the last block before it that moved the count.
    pub(super) fn after(self, block: u64, position: u64) -> u64 {
        match block == block_of(position) {
            true => self.at(position),
            false => self.last(),
        }
    }

    fn counted(self, mask: u64) -> u64 {
        (self.start + u64::from((self.ups & mask).count_ones()))
            .saturating_sub(u64::from((self.downs & mask).count_ones()))
    }

    /// One more (`up`) or one fewer at `position`, the block's latest so far; a move back
    /// at the same position cancels the first. Never below 0, as
    /// [`shifted`](super::projection::shifted) has it: a move down from 0 is not
    /// recorded.
    pub(super) fn shift(&mut self, position: u64, up: bool) -> Result<(), MovedTwice> {
        let b = bit(position);
        let above_zero = self.last() > 0;
        let (same, opposite) = match up {
            true => (&mut self.ups, &mut self.downs),
            false => (&mut self.downs, &mut self.ups),
        };
        if *same & b != 0 {
            return Err(MovedTwice);
        }
        if *opposite & b != 0 {
            *opposite &= !b;
        } else if up || above_zero {
            *same |= b;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::projection::shifted;
    use proptest::prelude::*;

    #[test]
    fn counts_at_each_position_of_a_block() {
        let mut m = Moves::starting(5);
        m.shift(64, true).unwrap();
        m.shift(66, true).unwrap();
        m.shift(127, false).unwrap();
        assert_eq!(block_of(64), block_of(127));
        assert_ne!(block_of(127), block_of(128));
        assert_eq!(
            [m.at(64), m.at(65), m.at(66), m.at(126), m.at(127)],
            [6, 6, 7, 7, 6]
        );
        assert_eq!(m.last(), 6);
        assert_eq!((m.after(1, 65), m.after(1, 200)), (6, 6));
        assert_eq!(m.after(1, 64), 6);
        assert_eq!(Moves::starting(5).after(1, 64), 5);
    }

    #[test]
    fn a_move_back_at_one_position_cancels_and_two_alike_are_refused() {
        let mut m = Moves::starting(1);
        m.shift(3, false).unwrap();
        m.shift(3, true).unwrap();
        assert_eq!(m, Moves::starting(1));
        m.shift(4, true).unwrap();
        assert_eq!(m.shift(4, true), Err(MovedTwice));
    }

    #[test]
    fn a_move_down_from_zero_stays_at_zero() {
        let mut m = Moves::starting(0);
        m.shift(1, false).unwrap();
        m.shift(2, true).unwrap();
        assert_eq!((m.at(1), m.at(2), m.downs), (0, 1, 0));
    }

    proptest! {
        /// Any sequence of single moves, one per position, counts after every position
        /// exactly as the per-event history it replaced did.
        #[test]
        fn every_position_counts_as_one_row_per_event_did(
            start in 0u64..4,
            moves in proptest::collection::vec(proptest::option::of(any::<bool>()), 1..64),
        ) {
            let mut m = Moves::starting(start);
            let mut expected = Vec::new();
            let mut count = start;
            for (offset, step) in moves.iter().enumerate() {
                let position = 128 + offset as u64;
                if let Some(up) = step {
                    m.shift(position, *up).unwrap();
                    count = shifted(count, *up);
                }
                expected.push(count);
            }
            for (offset, count) in expected.iter().enumerate() {
                prop_assert_eq!(m.at(128 + offset as u64), *count);
            }
            prop_assert_eq!(m.last(), count);
        }
    }
}
