//! Interleaved measurement: every round runs the floor and each adapter
//! back to back (in a rotating order), and each adapter's ratio is taken
//! against the floor *of the same round*. The reported ratio is the median
//! of those per-round ratios, so a burst of noise from the other tenants of
//! the machine moves one round's figures together instead of one
//! subject's.

use crate::usage::Usage;
use std::time::Duration;

/// One thing to time: `run(ops)` does `ops` operations and returns the time
/// they took (set-up excluded).
pub trait Subject {
    fn run(&mut self, ops: u64) -> Duration;
}

/// Per-round figures of one case.
pub struct Rounds {
    /// ns per operation of each subject (the floor first), one per round.
    pub ns: Vec<Vec<f64>>,
    /// Operations each subject ran in the measured rounds.
    pub ops: u64,
    /// What each subject's measured rounds cost the process in all.
    pub usage: Vec<Usage>,
}

impl Rounds {
    /// Median of the per-round ratios of `subject` to `floor` (subject 0
    /// is the case's floor), with the first and third quartiles.
    pub fn ratio(&self, subject: usize, floor: usize) -> Quartiles {
        let ratios: Vec<f64> = self.ns[subject]
            .iter()
            .zip(&self.ns[floor])
            .map(|(s, f)| s / f)
            .collect();
        Quartiles::of(ratios)
    }

    /// Median ns per operation of `subject` (0 = floor).
    pub fn median_ns(&self, subject: usize) -> f64 {
        Quartiles::of(self.ns[subject].clone()).median
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Quartiles {
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
}

impl Quartiles {
    fn of(mut values: Vec<f64>) -> Quartiles {
        values.sort_by(f64::total_cmp);
        let at = |q: f64| {
            // Linear interpolation between the closest ranks.
            let pos = q * (values.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
        };
        Quartiles {
            q1: at(0.25),
            median: at(0.5),
            q3: at(0.75),
        }
    }
}

/// Runs `rounds` interleaved rounds of `ops` operations per subject, after
/// one warm-up run of each.
pub fn interleaved(subjects: &mut [&mut dyn Subject], ops: u64, rounds: usize) -> Rounds {
    for subject in subjects.iter_mut() {
        subject.run(ops);
    }
    let count = subjects.len();
    let mut ns = vec![Vec::with_capacity(rounds); count];
    let mut usage = vec![Usage::default(); count];
    for round in 0..rounds {
        for k in 0..count {
            let which = (round + k) % count;
            let before = Usage::now();
            let took = subjects[which].run(ops);
            usage[which].add(Usage::now().since(before));
            ns[which].push(took.as_nanos() as f64 / ops as f64);
        }
    }
    Rounds {
        ns,
        ops: ops * rounds as u64,
        usage,
    }
}
