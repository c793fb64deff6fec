//! Which source live neighbor events come from, and what to do when one fails: the start-up
//! check and the fallback policy, as a small state machine the engine owns.
//!
//! Links and dumps always come over rtnetlink. Live neighbor events come from the eBPF
//! program when it is wanted and proves itself on this kernel (its self-check, the canary),
//! else from rtnetlink multicast. With `auto`, every eBPF failure (not built, no BTF, a load
//! error, a failed self-check, a consumer that dies later) falls back to rtnetlink; with
//! `ebpf` it stops the daemon instead. The rtnetlink source giving up always stops it: nothing
//! else would keep APPL_DB current.

use super::engine::LiveSource;

/// The configured source (`--source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    Auto,
    Netlink,
    Ebpf,
}

/// What the southbound says of its sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceReport {
    /// The daemon starts: which source first?
    Start,
    /// The eBPF program is loaded and attached; its self-check is running.
    EbpfLoaded,
    /// The eBPF program cannot run here. `reason`: a metric label (`ebpf_not_built`,
    /// `ebpf_no_btf`, `ebpf_layout`, `ebpf_load_failed`).
    EbpfUnavailable { reason: &'static str, why: String },
    /// The self-check's verdict (or that none came in time).
    EbpfVerdict(Result<(), String>),
    /// The eBPF consumer died while attached.
    EbpfFailed(String),
    /// The rtnetlink supervisor gave up restarting its socket.
    NetlinkGaveUp(String),
}

/// What the shell is to do with the sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceOrder {
    /// Load and attach the eBPF program, then report [`SourceReport::EbpfLoaded`] and its
    /// verdict, or [`SourceReport::EbpfUnavailable`].
    LoadEbpf,
    /// Live events come from `source` from now on (for rtnetlink: detach any eBPF program
    /// and join the neighbor group first); then dump the kernel for the first time.
    Attach {
        source: LiveSource,
        reason: &'static str,
    },
    /// The attached eBPF program failed: detach it, join the neighbor group, mark the switch
    /// in the event stream, and dump again (its last events may be lost).
    FallBack { reason: &'static str, why: String },
    /// Stop the daemon with this error.
    Fail(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Loading,
    Verifying,
    Attached(LiveSource),
    Failed,
}

#[derive(Debug)]
pub struct SourcePolicy {
    wanted: Wanted,
    phase: Phase,
}

impl SourcePolicy {
    pub fn new(wanted: Wanted) -> SourcePolicy {
        SourcePolicy {
            wanted,
            phase: Phase::Idle,
        }
    }

    /// Where live events come from now (`None` before a source is attached).
    pub fn live(&self) -> Option<LiveSource> {
        match self.phase {
            Phase::Attached(s) => Some(s),
            _ => None,
        }
    }

    fn ebpf_label(&self) -> &'static str {
        if self.wanted == Wanted::Ebpf {
            "configured"
        } else {
            "auto"
        }
    }

    fn attach(&mut self, source: LiveSource, reason: &'static str) -> Vec<SourceOrder> {
        self.phase = Phase::Attached(source);
        vec![SourceOrder::Attach { source, reason }]
    }

    fn fail(&mut self, why: String) -> Vec<SourceOrder> {
        self.phase = Phase::Failed;
        vec![SourceOrder::Fail(why)]
    }

    pub fn handle(&mut self, report: SourceReport) -> Vec<SourceOrder> {
        match (report, self.phase) {
            (_, Phase::Failed) => Vec::new(),
            (SourceReport::NetlinkGaveUp(why), _) => self.fail(why),
            (SourceReport::Start, Phase::Idle) => match self.wanted {
                Wanted::Netlink => self.attach(LiveSource::Netlink, "configured"),
                Wanted::Auto | Wanted::Ebpf => {
                    self.phase = Phase::Loading;
                    vec![SourceOrder::LoadEbpf]
                }
            },
            (SourceReport::EbpfLoaded, Phase::Loading) => {
                self.phase = Phase::Verifying;
                Vec::new()
            }
            (SourceReport::EbpfUnavailable { reason, why }, Phase::Loading) => match self.wanted {
                Wanted::Ebpf => self.fail(format!("--source ebpf: {why}")),
                _ => self.attach(LiveSource::Netlink, reason),
            },
            (SourceReport::EbpfVerdict(Ok(())), Phase::Verifying) => {
                let label = self.ebpf_label();
                self.attach(LiveSource::Ebpf, label)
            }
            (SourceReport::EbpfVerdict(Err(why)), Phase::Verifying) => match self.wanted {
                Wanted::Ebpf => self.fail(format!(
                    "--source ebpf: the eBPF program failed its self-check: {why}"
                )),
                _ => self.attach(LiveSource::Netlink, "ebpf_verification_failed"),
            },
            (SourceReport::EbpfFailed(why), Phase::Attached(LiveSource::Ebpf)) => {
                match self.wanted {
                    Wanted::Ebpf => self.fail(format!("the eBPF source failed: {why}")),
                    _ => {
                        self.phase = Phase::Attached(LiveSource::Netlink);
                        vec![SourceOrder::FallBack {
                            reason: "ebpf_consumer_failed",
                            why,
                        }]
                    }
                }
            }
            // Reports that no longer apply (a detached program's consumer ending, a verdict
            // after a fallback, a second start) change nothing.
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(wanted: Wanted, reports: Vec<SourceReport>) -> Vec<SourceOrder> {
        let mut p = SourcePolicy::new(wanted);
        reports.into_iter().flat_map(|r| p.handle(r)).collect()
    }

    fn attach(source: LiveSource, reason: &'static str) -> SourceOrder {
        SourceOrder::Attach { source, reason }
    }

    #[test]
    fn netlink_wanted_never_loads_ebpf() {
        assert_eq!(
            run(Wanted::Netlink, vec![SourceReport::Start]),
            vec![attach(LiveSource::Netlink, "configured")]
        );
    }

    #[test]
    fn ebpf_attaches_only_after_its_self_check() {
        for (wanted, label) in [(Wanted::Auto, "auto"), (Wanted::Ebpf, "configured")] {
            let mut p = SourcePolicy::new(wanted);
            assert_eq!(p.handle(SourceReport::Start), vec![SourceOrder::LoadEbpf]);
            assert_eq!(p.handle(SourceReport::EbpfLoaded), vec![]);
            assert_eq!(p.live(), None);
            assert_eq!(
                p.handle(SourceReport::EbpfVerdict(Ok(()))),
                vec![attach(LiveSource::Ebpf, label)]
            );
            assert_eq!(p.live(), Some(LiveSource::Ebpf));
        }
    }

    #[test]
    fn auto_falls_back_on_every_ebpf_failure_and_ebpf_stops() {
        let unavailable = || SourceReport::EbpfUnavailable {
            reason: "ebpf_no_btf",
            why: "no BTF".into(),
        };
        assert_eq!(
            run(Wanted::Auto, vec![SourceReport::Start, unavailable()]),
            vec![
                SourceOrder::LoadEbpf,
                attach(LiveSource::Netlink, "ebpf_no_btf")
            ]
        );
        assert_eq!(
            run(Wanted::Ebpf, vec![SourceReport::Start, unavailable()]),
            vec![
                SourceOrder::LoadEbpf,
                SourceOrder::Fail("--source ebpf: no BTF".into())
            ]
        );
        let failed_check = vec![
            SourceReport::Start,
            SourceReport::EbpfLoaded,
            SourceReport::EbpfVerdict(Err("mac differs".into())),
        ];
        assert_eq!(
            run(Wanted::Auto, failed_check.clone()).last(),
            Some(&attach(LiveSource::Netlink, "ebpf_verification_failed"))
        );
        assert!(matches!(
            run(Wanted::Ebpf, failed_check).last(),
            Some(SourceOrder::Fail(m)) if m.contains("self-check: mac differs")
        ));
    }

    #[test]
    fn a_dying_consumer_falls_back_once_with_auto_and_stops_with_ebpf() {
        let attached = || {
            vec![
                SourceReport::Start,
                SourceReport::EbpfLoaded,
                SourceReport::EbpfVerdict(Ok(())),
            ]
        };
        let mut p = SourcePolicy::new(Wanted::Auto);
        for r in attached() {
            p.handle(r);
        }
        assert_eq!(
            p.handle(SourceReport::EbpfFailed("ring gone".into())),
            vec![SourceOrder::FallBack {
                reason: "ebpf_consumer_failed",
                why: "ring gone".into()
            }]
        );
        assert_eq!(p.live(), Some(LiveSource::Netlink));
        // The detached program's consumer ending again changes nothing.
        assert_eq!(p.handle(SourceReport::EbpfFailed("again".into())), vec![]);
        // rtnetlink giving up always stops the daemon, and nothing follows.
        assert_eq!(
            p.handle(SourceReport::NetlinkGaveUp("socket".into())),
            vec![SourceOrder::Fail("socket".into())]
        );
        assert_eq!(p.handle(SourceReport::EbpfVerdict(Ok(()))), vec![]);

        let mut strict = SourcePolicy::new(Wanted::Ebpf);
        for r in attached() {
            strict.handle(r);
        }
        assert_eq!(
            strict.handle(SourceReport::EbpfFailed("ring gone".into())),
            vec![SourceOrder::Fail(
                "the eBPF source failed: ring gone".into()
            )]
        );
    }
}
