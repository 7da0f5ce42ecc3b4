//! The longest stretch without a successful run, found in one pass over
//! the success times of a range.

use chrono::{DateTime, Utc};

/// The longest stretch without a successful run of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// Start: the last success before it, or the start of the range.
    pub from: DateTime<Utc>,
    /// End: the next success, or the end of the range.
    pub to: DateTime<Utc>,
}

impl Gap {
    /// Length in whole seconds.
    pub fn seconds(&self) -> i64 {
        (self.to - self.from).num_seconds()
    }
}

/// Finds the longest gap between successes inside `[from, to)`, fed the
/// success times in order. Before the first success the gap runs from the
/// start of the range; after the last, to its end.
#[derive(Debug)]
pub struct GapFinder {
    /// The last success seen, or the start of the range.
    cursor: DateTime<Utc>,
    /// The longest gap so far.
    longest: Option<Gap>,
}

impl GapFinder {
    /// Starts at the beginning of the range.
    pub fn new(from: DateTime<Utc>) -> Self {
        GapFinder { cursor: from, longest: None }
    }

    /// A success at `at` (times must not go backwards).
    pub fn success(&mut self, at: DateTime<Utc>) {
        self.consider(Gap { from: self.cursor, to: at });
        self.cursor = self.cursor.max(at);
    }

    /// Closes the range at `to` and returns the longest gap.
    pub fn finish(mut self, to: DateTime<Utc>) -> Option<Gap> {
        self.consider(Gap { from: self.cursor, to });
        self.longest
    }

    fn consider(&mut self, gap: Gap) {
        if gap.to > gap.from && self.longest.is_none_or(|l| gap.to - gap.from > l.to - l.from) {
            self.longest = Some(gap);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(hour: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 10, 1, hour, min, 0).unwrap()
    }

    #[test]
    fn gap_before_the_first_success_counts_from_the_start() {
        let mut g = GapFinder::new(t(0, 0));
        g.success(t(3, 0));
        g.success(t(3, 5));
        assert_eq!(g.finish(t(4, 0)), Some(Gap { from: t(0, 0), to: t(3, 0) }));
    }

    #[test]
    fn gap_after_the_last_success_runs_to_the_end() {
        let mut g = GapFinder::new(t(0, 0));
        g.success(t(0, 1));
        assert_eq!(g.finish(t(5, 0)), Some(Gap { from: t(0, 1), to: t(5, 0) }));
    }

    #[test]
    fn no_success_is_one_gap_over_the_range() {
        let g = GapFinder::new(t(0, 0));
        assert_eq!(g.finish(t(1, 0)).unwrap().seconds(), 3600);
    }

    #[test]
    fn longest_of_several_gaps_wins() {
        let mut g = GapFinder::new(t(0, 0));
        for (h, m) in [(0, 0), (0, 10), (1, 40), (1, 50), (2, 0)] {
            g.success(t(h, m));
        }
        assert_eq!(g.finish(t(2, 0)), Some(Gap { from: t(0, 10), to: t(1, 40) }));
    }
}
