//! The dump window: which kernel entries a dump (or a run of attempts) saw, and what it sweeps
//! at its end.

use super::*;

impl State {
    /// A dump attempt begins; `start_ns` was taken before its first request went out. `fresh`:
    /// it opens a new window (events were lost, or no dump was running); otherwise it joins the
    /// window of the attempts before it.
    pub fn dump_start(&mut self, start_ns: u64, fresh: bool) {
        self.generation += 1;
        let gen_ = self.generation;
        self.dump = Some(match self.dump {
            Some(w) if !fresh => DumpWindow { gen_, ..w },
            _ => {
                self.tombstones.retain(|_, t| *t >= start_ns);
                DumpWindow {
                    start_ns,
                    first_gen: gen_,
                    gen_,
                }
            }
        });
    }

    /// The window's attempts are accepted as complete: entries none of them saw, and no live
    /// event touched since the window began, are gone; keys no kernel entry accounts for are
    /// deleted. Returns how many entries were swept.
    pub fn dump_done(&mut self, cfg: &ConfigSnapshot, now_ns: u64) -> usize {
        let Some(w) = self.dump.take() else {
            return 0;
        };
        self.tombstones.clear();
        let vanished: Vec<KernelEntry> = self
            .kernel
            .values()
            .filter(|e| e.seen_gen < w.first_gen && e.last_event_ns < w.start_ns)
            .cloned()
            .collect();
        let mut swept = vanished.len();
        for e in vanished {
            self.forget(e, cfg, now_ns);
        }
        let accounted: HashSet<String> = self.kernel.values().map(KernelEntry::key).collect();
        let orphans: Vec<String> = self
            .desired
            .keys()
            .filter(|k| !accounted.contains(*k))
            .cloned()
            .collect();
        swept += orphans.len();
        for k in orphans {
            self.desired.remove(&k);
            self.mark(k, now_ns);
        }
        // Keys APPL_DB holds that nothing in the kernel accounts for (a previous run's).
        let stale: Vec<String> = self
            .told
            .keys()
            .filter(|k| !self.desired.contains_key(*k) && !self.dirty.contains_key(*k))
            .cloned()
            .collect();
        for k in stale {
            self.mark(k, now_ns);
        }
        swept
    }
}
