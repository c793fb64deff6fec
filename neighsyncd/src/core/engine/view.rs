//! What the management APIs' view learns of the kernel side.

use super::*;

impl Engine {
    /// The kernel side of every neighbor this input changed, for the view.
    pub(super) fn publish_touched(&mut self, out: &mut Vec<Output>) {
        if !self.cfg.view {
            return;
        }
        for (key, id) in self.state.take_touched() {
            let side = id
                .and_then(|(ifindex, ip)| self.state.kernel_entry(ifindex, &ip))
                .map(|e| KernelSide {
                    ifname: e.ifname.clone(),
                    vrf: self.links.master_name(e.ifindex).map(str::to_string),
                    ip: e.ip,
                    lladdr: e.lladdr.clone(),
                    state: match self.live_source() {
                        // Moves within a class are not reported: say what is known.
                        LiveSource::Ebpf => neighsyncd_common::class_label(e.state as u8),
                        LiveSource::Netlink => crate::core::neigh::nud::name(e.state),
                    },
                    skip_reason: match e.verdict {
                        Verdict::Skip(r) => Some(r.as_str()),
                        _ => None,
                    },
                });
            out.push(Output::Kernel { key, side });
        }
    }
}
