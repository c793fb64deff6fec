//! Judging neighbors again when what the rules depend on changes: a CONFIG_DB knob, an
//! interface renamed, added or removed.

use super::*;

impl State {
    /// Re-runs the rules over kernel entries (as new messages) that match `filter`: after the
    /// link-local knob turns on, a global CONFIG_DB change, or a rename.
    pub fn reevaluate(
        &mut self,
        filter: impl Fn(&KernelEntry) -> bool,
        links: &LinkCache,
        cfg: &ConfigSnapshot,
        now_ns: u64,
    ) -> usize {
        let ids = self.ids_where(filter);
        for id in &ids {
            let Some(e) = self.kernel.get(id) else {
                continue;
            };
            let msg = NeighMsg {
                kind: NeighKind::New,
                ifindex: e.ifindex,
                ip: e.ip,
                lladdr: e.lladdr.clone(),
                state: e.state,
                flags: e.flags,
                origin: Origin::Dump,
            };
            let ifname = e.ifname.clone();
            let verdict = self.decide_and_apply(
                NeighKind::New,
                &ifname,
                links.master_name(msg.ifindex),
                &msg,
                cfg,
                now_ns,
            );
            if let Some(e) = self.kernel.get_mut(id) {
                e.verdict = verdict;
            }
            self.touch(rules::neigh_key(&ifname, &id.1), Some(*id));
        }
        ids.len()
    }

    /// Withdraws from APPL_DB what kernel entries matching `filter` put there, and marks them
    /// skipped for `reason` (link-local turned off on their interface). Returns how many.
    pub fn withdraw(
        &mut self,
        filter: impl Fn(&KernelEntry) -> bool,
        reason: SkipReason,
        now_ns: u64,
    ) -> usize {
        let ids = self.ids_where(filter);
        for id in &ids {
            let Some(e) = self.kernel.get_mut(id) else {
                continue;
            };
            e.verdict = Verdict::Skip(reason);
            let key = e.key();
            if self.desired.remove(&key).is_some() {
                self.mark(key.clone(), now_ns);
            }
            self.touch(key, Some(*id));
        }
        ids.len()
    }

    /// The kernel entries matching `filter`, by id (to change them one by one).
    fn ids_where(&self, filter: impl Fn(&KernelEntry) -> bool) -> Vec<(u32, IpAddr)> {
        self.kernel
            .iter()
            .filter(|(_, e)| filter(e))
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
        let mut moved = Vec::new();
        for e in self.kernel.values_mut().filter(|e| e.ifindex == ifindex) {
            moved.push(e.key());
            e.ifname = new_name.to_string();
        }
        for key in moved {
            self.touch(key.clone(), None);
            if self.desired.remove(&key).is_some() {
                self.mark(key, now_ns);
            }
        }
        self.reevaluate(|e| e.ifindex == ifindex, links, cfg, now_ns);
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
        if self
            .kernel
            .values()
            .any(|e| e.ifindex == ifindex && e.ifname != name)
        {
            self.rename(ifindex, name, links, cfg, now_ns);
        }
    }

    /// An interface went away: the kernel dropped its neighbors with it.
    pub fn link_removed(&mut self, ifindex: u32, cfg: &ConfigSnapshot, now_ns: u64) {
        let gone: Vec<KernelEntry> = self
            .kernel
            .values()
            .filter(|e| e.ifindex == ifindex)
            .cloned()
            .collect();
        for e in gone {
            self.forget(e, cfg, now_ns);
        }
    }

    /// Treats a kernel entry as deleted (a synthesized RTM_DELNEIGH through the rules).
    pub(super) fn forget(&mut self, e: KernelEntry, cfg: &ConfigSnapshot, now_ns: u64) {
        let msg = NeighMsg {
            kind: NeighKind::Del,
            ifindex: e.ifindex,
            ip: e.ip,
            lladdr: e.lladdr.clone(),
            state: e.state,
            flags: e.flags,
            origin: Origin::Dump,
        };
        self.decide_and_apply(NeighKind::Del, &e.ifname, None, &msg, cfg, now_ns);
        self.touch(e.key(), None);
        self.kernel.remove(&(e.ifindex, e.ip));
    }
}
