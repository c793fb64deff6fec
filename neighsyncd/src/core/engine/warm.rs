//! The warm start's end: when the reconcile is complete, and the per-entry lines upstream's
//! reconcile logs (and SONiC's warm-restart tests look for).

use super::*;

impl Engine {
    /// A warm start's reconcile is done once nothing is due.
    pub(super) fn finish_warm(&mut self, out: &mut Vec<Output>) {
        if self.warm == Warm::Reconciling && self.state.pending() == 0 && !self.writing {
            self.warm = Warm::Off;
            self.warm_deleted.clear();
            out.push(Output::Reconciled);
        }
    }

    /// The per-entry lines of upstream's reconcile (`NEIGH_TABLE NEW` / `STALE/DELETE`).
    pub(super) fn reconcile_line(&self, op: &Op) -> String {
        match op {
            Op::Set { key, value } => {
                let fv: String = value
                    .fields()
                    .iter()
                    .map(|(f, v)| format!("{f}:{v}, "))
                    .collect();
                format!("NEIGH_TABLE NEW, key: {key}, {fv}cache-state:NEW, ")
            }
            Op::Del { key } => {
                let state = if self.warm_deleted.contains(key) {
                    "DELETE"
                } else {
                    "STALE"
                };
                format!("NEIGH_TABLE STALE/DELETE, key: {key}, cache-state:{state}, ")
            }
        }
    }
}
