//! Latency recording and percentile summaries.
//!
//! Each client task owns a [`Recorder`] (no locking on the hot path); the
//! recorders are merged once at the end of a run. Latencies are kept exactly
//! (microseconds, `u32`), which for the run lengths we use (minutes, a few
//! thousand commands per second) is a few MiB at most and gives exact
//! percentiles instead of histogram buckets.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Latencies and error counts per command type.
#[derive(Default, Debug, Clone)]
pub struct Recorder {
    latencies: BTreeMap<&'static str, Vec<u32>>,
    errors: BTreeMap<&'static str, u64>,
}

impl Recorder {
    pub fn record(&mut self, kind: &'static str, d: Duration) {
        let us = u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        self.latencies.entry(kind).or_default().push(us);
    }

    /// A command that got NO/BAD (or failed on the wire).
    pub fn error(&mut self, kind: &'static str) {
        *self.errors.entry(kind).or_default() += 1;
    }

    pub fn merge(&mut self, other: Recorder) {
        for (k, mut v) in other.latencies {
            self.latencies.entry(k).or_default().append(&mut v);
        }
        for (k, n) in other.errors {
            *self.errors.entry(k).or_default() += n;
        }
    }

    /// Number of successfully completed commands.
    pub fn count(&self) -> u64 {
        self.latencies.values().map(|v| v.len() as u64).sum()
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Summary per command type (sorted by name) followed by "all".
    pub fn summaries(&self) -> Vec<Summary> {
        let mut out = Vec::new();
        let mut all: Vec<u32> = Vec::with_capacity(self.count() as usize);
        let mut kinds: Vec<&'static str> = self.latencies.keys().copied().collect();
        for k in self.errors.keys() {
            if !kinds.contains(k) {
                kinds.push(k);
            }
        }
        kinds.sort_unstable();
        for k in kinds {
            let mut v = self.latencies.get(k).cloned().unwrap_or_default();
            all.extend_from_slice(&v);
            v.sort_unstable();
            out.push(Summary::of(k, &v, self.errors.get(k).copied().unwrap_or(0)));
        }
        all.sort_unstable();
        out.push(Summary::of("all", &all, self.error_count()));
        out
    }
}

/// Percentiles of one command type, in microseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub kind: &'static str,
    pub count: u64,
    pub errors: u64,
    pub p50: u32,
    pub p90: u32,
    pub p99: u32,
    pub max: u32,
}

impl Summary {
    /// `sorted` must be sorted ascending.
    pub fn of(kind: &'static str, sorted: &[u32], errors: u64) -> Summary {
        Summary {
            kind,
            count: sorted.len() as u64,
            errors,
            p50: percentile(sorted, 50.0),
            p90: percentile(sorted, 90.0),
            p99: percentile(sorted, 99.0),
            max: sorted.last().copied().unwrap_or(0),
        }
    }
}

/// Nearest-rank percentile (the smallest value such that at least `p` percent
/// of the samples are less than or equal to it). `sorted` must be ascending;
/// an empty slice gives 0.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let p = p.clamp(0.0, 100.0);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Microseconds as milliseconds with three decimals.
pub fn ms(us: u32) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

/// A fixed-width table of summaries.
pub fn table(summaries: &[Summary], secs: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  {:<14} {:>9} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "command", "count", "errors", "per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms"
    );
    for m in summaries {
        let _ = writeln!(
            s,
            "  {:<14} {:>9} {:>7} {:>10.1} {:>10} {:>10} {:>10} {:>10}",
            m.kind,
            m.count,
            m.errors,
            if secs > 0.0 {
                m.count as f64 / secs
            } else {
                0.0
            },
            ms(m.p50),
            ms(m.p90),
            ms(m.p99),
            ms(m.max)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 90.0), 90);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
    }

    #[test]
    fn percentile_small_and_empty() {
        assert_eq!(percentile(&[], 50.0), 0);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[1, 2], 50.0), 1);
        assert_eq!(percentile(&[1, 2], 51.0), 2);
        // p99 of 10 samples is the largest one
        let v: Vec<u32> = (1..=10).collect();
        assert_eq!(percentile(&v, 99.0), 10);
        assert_eq!(percentile(&v, 90.0), 9);
    }

    #[test]
    fn recorder_merges_and_summarises() {
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        for i in 1..=10u64 {
            a.record("noop", Duration::from_micros(i));
            b.record("fetch", Duration::from_micros(100 + i));
        }
        b.error("fetch");
        a.error("store");
        a.merge(b);
        assert_eq!(a.count(), 20);
        assert_eq!(a.error_count(), 2);
        let s = a.summaries();
        let kinds: Vec<&str> = s.iter().map(|m| m.kind).collect();
        assert_eq!(kinds, ["fetch", "noop", "store", "all"]);
        assert_eq!(s[0].p50, 105);
        assert_eq!(s[0].errors, 1);
        assert_eq!(s[1].max, 10);
        assert_eq!(s[2].count, 0);
        assert_eq!(s[3].count, 20);
        assert_eq!(s[3].p50, 10);
        assert_eq!(s[3].max, 110);
    }

    #[test]
    fn huge_latency_saturates() {
        let mut r = Recorder::default();
        r.record("x", Duration::from_secs(1_000_000));
        assert_eq!(r.summaries()[0].max, u32::MAX);
    }
}
