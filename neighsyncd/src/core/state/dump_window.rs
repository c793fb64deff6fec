//! The dump window: which kernel entries a dump (or a run of attempts) saw, and what it sweeps
//! at its end.

use super::*;

impl State {
    /// A dump attempt begins; `start_ns` was taken before its first request went out. `fresh`:
    /// it opens a new window (events were lost, or no dump was running); otherwise it joins the
    /// window of the attempts before it.
    pub fn dump_start(&mut self, start_ns: u64, fresh: bool) {
        // u32: a dump a second would take 136 years to wrap it.
        self.generation = self.generation.wrapping_add(1);
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
        // Vanished entries are forgotten where they are found, walking the table down by
        // position (a removal moves only an entry already visited): no list of them, which
        // after a flush of a million that the dump did not see would be another 24 MB.
        let mut swept = 0;
        for i in (0..self.kernel.len()).rev() {
            let Some((&id, e)) = self.kernel.entry_at(i) else {
                continue;
            };
            if e.seen_gen < w.first_gen && e.last_event_ns < w.start_ns {
                self.forget(id, cfg, now_ns);
                swept += 1;
            }
        }
        // Keys some kernel entry accounts for, flagged in place (no second copy of the table).
        for (id, e) in self.kernel.iter() {
            if let Some(slot) = self.appl.get_mut(&e.key(id)) {
                slot.scratch = true;
            }
        }
        // Then, in the same place: a key some entry wanted that none accounts for any more
        // (an orphan) is wanted no longer; a key APPL_DB holds that nothing in the kernel
        // accounts for (a previous run's) is due, to be deleted. No list of either is built:
        // at a million keys each would be another 24 MB.
        for i in 0..self.appl.len() as u32 {
            let Some((_, slot)) = self.appl.entry_at_mut(i) else {
                continue;
            };
            let accounted = std::mem::take(&mut slot.scratch);
            let orphan = slot.desired.is_some() && !accounted;
            let stale = slot.desired.is_none() && slot.told.is_some();
            if orphan {
                slot.desired = None;
                swept += 1;
            }
            if orphan || stale {
                self.mark_at(i, now_ns);
            }
        }
        swept
    }
}
