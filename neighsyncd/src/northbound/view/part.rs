//! Where one namespace's pipeline writes into a view shared by several (see
//! [`View::part`]).

use std::sync::Arc;

use super::{KernelSide, View};
use crate::core::key::NeighKey;
use crate::core::rules::NeighValue;

/// One partition of a [`View`]: what a namespace's pipeline writes through.
#[derive(Clone)]
pub struct ViewPart {
    pub(super) view: Arc<View>,
    pub(super) part: usize,
}

impl ViewPart {
    fn key(&self, key: NeighKey) -> Option<NeighKey> {
        key.in_partition(self.part)
    }

    pub fn kernel_update(&self, key: NeighKey, side: KernelSide) {
        if let Some(k) = self.key(key) {
            self.view.kernel_update(k, side);
        }
    }

    pub fn kernel_remove(&self, key: NeighKey) {
        if let Some(k) = self.key(key) {
            self.view.kernel_remove(k);
        }
    }

    pub fn appl_update(&self, key: NeighKey, value: Option<NeighValue>) {
        if let Some(k) = self.key(key) {
            self.view.appl_update(k, value);
        }
    }
}
