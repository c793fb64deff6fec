//! Judging neighbors again when what the rules depend on changes: a CONFIG_DB knob, an
//! interface renamed, added or removed.

use super::*;

impl State {
    /// Re-runs the rules over kernel entries (as new messages) that match `filter`: after the
    /// link-local knob turns on, a global CONFIG_DB change, or a rename.
    pub fn reevaluate(
        &mut self,
        filter: impl Fn(&KernelId, &KernelEntry) -> bool,
        links: &LinkCache,
        cfg: &ConfigSnapshot,
        now_ns: u64,
    ) -> usize {
        let ids = self.ids_where(filter);
        for id in &ids {
            let Some(e) = self.kernel.get(id).cloned() else {
                continue;
            };
            let key = e.key(id);
            let verdict = self.judge(
                NeighKind::New,
                key,
                links.master_name(id.ifindex()),
                e.heard(),
                cfg,
                now_ns,
            );
            if let Some(e) = self.kernel.get_mut(id) {
                e.verdict = verdict;
            }
            self.touch(key, Some(*id));
        }
        ids.len()
    }

    /// Withdraws from APPL_DB what kernel entries matching `filter` put there, and marks them
    /// skipped for `reason` (link-local turned off on their interface). Returns how many.
    pub fn withdraw(
        &mut self,
        filter: impl Fn(&KernelId, &KernelEntry) -> bool,
        reason: SkipReason,
        now_ns: u64,
    ) -> usize {
        let ids = self.ids_where(filter);
        for id in &ids {
            let Some(e) = self.kernel.get_mut(id) else {
                continue;
            };
            e.verdict = Verdict::Skip(reason);
            let key = e.key(id);
            if self.set_desired(key, None).is_some() {
                self.mark(key, now_ns);
            }
            self.touch(key, Some(*id));
        }
        ids.len()
    }

    /// The kernel entries matching `filter`, by id (to change them one by one).
    fn ids_where(&self, filter: impl Fn(&KernelId, &KernelEntry) -> bool) -> Vec<KernelId> {
        self.kernel
            .iter()
            .filter(|(id, e)| filter(id, e))
            .map(|(id, _)| *id)
            .collect()
    }

    /// An interface was renamed: its neighbors leave their old keys and take new ones.
    pub fn rename(
        &mut self,
        ifindex: u32,
        new_name: &str,
        links: &LinkCache,
        cfg: &ConfigSnapshot,
        now_ns: u64,
    ) {
        let new_name = IfName::new(new_name);
        let mut moved = Vec::new();
        for (id, e) in self
            .kernel
            .iter_mut()
            .filter(|(id, _)| id.ifindex() == ifindex)
        {
            moved.push(e.key(id));
            e.ifname = new_name;
        }
        for key in moved {
            self.touch(key, None);
            if self.set_desired(key, None).is_some() {
                self.mark(key, now_ns);
            }
        }
        self.reevaluate(|id, _| id.ifindex() == ifindex, links, cfg, now_ns);
    }

    /// An interface became known. Neighbors heard of before it (named by their ifindex, as
    /// the kernel's events can precede the link's) take its name.
    pub fn link_added(
        &mut self,
        ifindex: u32,
        name: &str,
        links: &LinkCache,
        cfg: &ConfigSnapshot,
        now_ns: u64,
    ) {
        let ifname = IfName::new(name);
        if self
            .kernel
            .iter()
            .any(|(id, e)| id.ifindex() == ifindex && e.ifname != ifname)
        {
            self.rename(ifindex, name, links, cfg, now_ns);
        }
    }

    /// An interface went away: the kernel dropped its neighbors with it.
    pub fn link_removed(&mut self, ifindex: u32, cfg: &ConfigSnapshot, now_ns: u64) {
        for id in self.ids_where(|id, _| id.ifindex() == ifindex) {
            self.forget(id, cfg, now_ns);
        }
    }

    /// Treats a kernel entry as deleted (a synthesized RTM_DELNEIGH through the rules).
    pub(super) fn forget(&mut self, id: KernelId, cfg: &ConfigSnapshot, now_ns: u64) {
        let Some(e) = self.kernel.remove(&id) else {
            return;
        };
        let key = e.key(&id);
        self.judge(NeighKind::Del, key, None, e.heard(), cfg, now_ns);
        self.touch(key, None);
    }
}
