//! Medians and percentiles of samples, and how to print them.

use std::time::Duration;

/// The `p`-th percentile (0–100, nearest rank) of `samples`; 0 for no samples.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round();
    let index = (rank.max(0.0) as usize).min(sorted.len() - 1);
    sorted[index]
}

/// The median of `samples`: the mean of the two middle values for an even count.
pub fn median(samples: &[f64]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

/// Milliseconds of a duration, as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A latency distribution in milliseconds.
#[derive(Clone, Debug, Default)]
pub struct Latencies {
    samples: Vec<f64>,
}

impl Latencies {
    /// Records one sample.
    pub fn push(&mut self, d: Duration) {
        self.samples.push(ms(d));
    }

    /// Records every sample of `other`.
    pub fn extend(&mut self, other: &Latencies) {
        self.samples.extend_from_slice(&other.samples);
    }

    /// Median, in ms.
    pub fn median(&self) -> f64 {
        median(&self.samples)
    }

    /// The `p`-th percentile, in ms.
    pub fn p(&self, p: f64) -> f64 {
        percentile(&self.samples, p)
    }

    /// How many samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// `median 1.23 ms, p90 …, p99 …, n=…`.
    pub fn describe(&self) -> String {
        format!(
            "median {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, min {:.3} ms (n={})",
            self.median(),
            self.p(90.0),
            self.p(99.0),
            self.p(0.0),
            self.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_percentiles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 100.0), 5.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.0), 1.0);
        assert_eq!(median(&[]), 0.0);
    }
}
