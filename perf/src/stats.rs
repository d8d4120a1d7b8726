//! Median, min and max of a few runs.

use serde::{Deserialize, Serialize};

/// The runs of one figure and their summary.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Series {
    /// Every run, in the order they ran.
    pub runs: Vec<f64>,
    /// The median (the mean of the two middle runs for an even count).
    pub median: f64,
    /// The smallest run.
    pub min: f64,
    /// The largest run.
    pub max: f64,
}

impl Series {
    /// Summarises `runs`; `None` if there are none.
    pub fn new(runs: Vec<f64>) -> Option<Series> {
        if runs.is_empty() {
            return None;
        }
        let mut sorted = runs.clone();
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[mid]
        } else {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        };
        Some(Series {
            median,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            runs,
        })
    }

    /// `median [min-max]` with `digits` decimals.
    pub fn show(&self, digits: usize) -> String {
        format!(
            "{:.d$} [{:.d$}-{:.d$}]",
            self.median,
            self.min,
            self.max,
            d = digits
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_and_even_counts() {
        let s = Series::new(vec![3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Series::new(vec![4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert!(Series::new(vec![]).is_none());
    }
}
