//! What a chaos run did and found: steps, faults by kind, the slowest convergence, and every
//! divergence with its diff. Printed as a table, as one JSON line, and as the closing
//! `chaos: N passed, M failed` line CI reads.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::faults::Step;

pub struct Divergence {
    pub step: &'static str,
    pub diff: String,
    pub log: String,
}

pub struct Report {
    pub seed: u64,
    pub source: String,
    pub steps: usize,
    pub faults: BTreeMap<&'static str, u32>,
    pub converged: usize,
    pub slowest: Duration,
    pub total: Duration,
    pub divergences: Vec<Divergence>,
}

impl Report {
    pub fn new(seed: u64, source: &str) -> Report {
        Report {
            seed,
            source: source.to_string(),
            steps: 0,
            faults: BTreeMap::new(),
            converged: 0,
            slowest: Duration::ZERO,
            total: Duration::ZERO,
            divergences: Vec::new(),
        }
    }

    pub fn step(&mut self, _s: Step) {
        self.steps += 1;
    }

    pub fn fault(&mut self, s: Step) {
        *self.faults.entry(s.name()).or_default() += 1;
    }

    pub fn converged(&mut self, took: Duration) {
        self.converged += 1;
        self.slowest = self.slowest.max(took);
        self.total += took;
    }

    pub fn diverged(&mut self, s: Step, diff: String, log: String) {
        self.divergences.push(Divergence {
            step: s.name(),
            diff,
            log,
        });
    }

    pub fn ok(&self) -> bool {
        self.divergences.is_empty()
    }

    /// The readable report (a table of faults, then each divergence with its diff and log).
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "chaos run: seed {} (--seed {} replays it), source {}",
            self.seed, self.seed, self.source
        );
        let _ = writeln!(s, "| step kind | injected |\n|---|---:|");
        for (k, n) in &self.faults {
            let _ = writeln!(s, "| {k} | {n} |");
        }
        let mean = self.total / self.converged.max(1) as u32;
        let _ = writeln!(
            s,
            "steps {}, quiet points converged {}, slowest convergence {:.2} s, mean {:.2} s, divergences {}",
            self.steps,
            self.converged,
            self.slowest.as_secs_f64(),
            mean.as_secs_f64(),
            self.divergences.len()
        );
        for d in &self.divergences {
            let _ = writeln!(
                s,
                "\nDIVERGENCE after step {}:\n{}\n--- daemon log (tail) ---\n{}",
                d.step, d.diff, d.log
            );
        }
        s
    }

    pub fn json(&self) -> String {
        serde_json::json!({
            "seed": self.seed,
            "source": self.source,
            "steps": self.steps,
            "faults": self.faults,
            "converged": self.converged,
            "slowest_convergence_s": self.slowest.as_secs_f64(),
            "divergences": self.divergences.len(),
        })
        .to_string()
    }

    /// The closing line CI reads: quiet points that converged, and divergences.
    pub fn closing_line(&self) -> String {
        format!(
            "chaos: {} passed, {} failed",
            self.converged,
            self.divergences.len()
        )
    }
}
