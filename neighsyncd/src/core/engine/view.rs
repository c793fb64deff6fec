//! What the management APIs' view learns of the kernel side.

use super::*;
use crate::core::key::IfName;

impl Engine {
    /// The kernel side of every neighbor this input changed, for the view.
    pub(super) fn publish_touched(&mut self, out: &mut Vec<Output>) {
        if !self.cfg.view {
            return;
        }
        let touched = self.state.take_touched();
        if !touched.gone.is_empty() {
            out.push(Output::KernelGone(touched.gone));
        }
        for (key, ifindex) in touched.changed {
            let side = self
                .state
                .kernel_entry(ifindex, &key.ip())
                .map(|e| KernelSide {
                    vrf: self.links.master_name(ifindex).map(IfName::new),
                    lladdr: e.lladdr,
                    state: e.state,
                    // Moves within a class are not reported in eBPF mode: say what is known.
                    classed: self.live_source() == LiveSource::Ebpf,
                    skip_reason: match e.verdict {
                        Verdict::Skip(r) => Some(r),
                        _ => None,
                    },
                });
            out.push(Output::Kernel { key, side });
        }
    }
}
