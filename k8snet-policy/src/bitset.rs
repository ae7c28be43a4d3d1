//! Peer-set membership as one contiguous bit matrix: row = peer set,
//! column = identity. A membership test is one load from one array (no
//! per-set allocation to chase), which matters on the verdict path.

/// Rows of `stride` 64-bit words each. Columns beyond the stride read as
/// zero; the stride doubles when an identity number outgrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BitMatrix {
    stride: usize,
    rows: usize,
    words: Vec<u64>,
}

impl BitMatrix {
    /// Whether bit (`row`, `col`) is set.
    #[inline]
    pub(crate) fn contains(&self, row: u32, col: u32) -> bool {
        let word = (col >> 6) as usize;
        if word >= self.stride {
            return false;
        }
        self.words
            .get(row as usize * self.stride + word)
            .is_some_and(|w| (w >> (col & 63)) & 1 == 1)
    }

    /// Makes room for `row` and `col`.
    fn reserve(&mut self, row: u32, col: u32) {
        let need = (col >> 6) as usize + 1;
        if need > self.stride {
            let stride = need.max(self.stride * 2).max(1);
            let mut words = vec![0u64; self.rows * stride];
            for r in 0..self.rows {
                let old = &self.words[r * self.stride..(r + 1) * self.stride];
                words[r * stride..r * stride + self.stride].copy_from_slice(old);
            }
            self.stride = stride;
            self.words = words;
        }
        if row as usize >= self.rows {
            self.rows = row as usize + 1;
            self.words.resize(self.rows * self.stride, 0);
        }
    }

    /// Sets or clears bit (`row`, `col`).
    pub(crate) fn set(&mut self, row: u32, col: u32, on: bool) {
        if !on && !self.contains(row, col) {
            return;
        }
        self.reserve(row, col);
        let i = row as usize * self.stride + (col >> 6) as usize;
        let mask = 1u64 << (col & 63);
        if on {
            self.words[i] |= mask;
        } else {
            self.words[i] &= !mask;
        }
    }

    /// Clears a row.
    pub(crate) fn clear_row(&mut self, row: u32) {
        let start = row as usize * self.stride;
        if let Some(words) = self.words.get_mut(start..start + self.stride) {
            words.iter_mut().for_each(|w| *w = 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BitMatrix;

    #[test]
    fn set_contains_grow_clear() {
        let mut m = BitMatrix::default();
        assert!(!m.contains(3, 1000));
        m.set(3, 1000, false); // clearing an absent bit allocates nothing
        assert_eq!(m, BitMatrix::default());
        m.set(0, 0, true);
        m.set(0, 63, true);
        m.set(2, 64, true);
        m.set(1, 5, true);
        // Growing the stride keeps every row's bits.
        m.set(2, 1000, true);
        for (r, c) in [(0, 0), (0, 63), (2, 64), (1, 5), (2, 1000)] {
            assert!(m.contains(r, c), "({r}, {c})");
        }
        for (r, c) in [(0, 1), (1, 64), (2, 999), (0, 1000), (9, 0)] {
            assert!(!m.contains(r, c), "({r}, {c})");
        }
        m.set(0, 63, false);
        assert!(!m.contains(0, 63));
        m.clear_row(2);
        assert!(!m.contains(2, 64) && !m.contains(2, 1000));
        assert!(m.contains(1, 5));
    }
}
