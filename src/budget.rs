//! The webhook's byte budget: how many bytes of request bodies and answers
//! it holds at once, across all connections. A request that does not fit
//! is answered 503 instead of growing the process.
//!
//! The budget has two pools. The first [`SMALL_SHARE`] bytes of every body
//! or answer come from one, the rest from the other, each half of the
//! total. An AdmissionReview of a real pod is a few KiB, so a flood of
//! large bodies can fill the second pool and leave the first to genuine
//! reviews.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The bytes of each body or answer drawn from the pool of small ones.
pub const SMALL_SHARE: usize = 256 << 10;

pub struct Budget {
    small: Arc<Semaphore>,
    large: Arc<Semaphore>,
}

/// Bytes held from a [`Budget`], given back when dropped.
#[derive(Default)]
pub struct Held {
    small: Option<OwnedSemaphorePermit>,
    large: Option<OwnedSemaphorePermit>,
    bytes: usize,
}

impl Held {
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Budget {
    /// A budget of `total` bytes, half for the first [`SMALL_SHARE`] bytes
    /// of each body or answer.
    pub fn new(total: usize) -> Self {
        let half = total / 2;
        Self {
            small: Arc::new(Semaphore::new(half)),
            large: Arc::new(Semaphore::new(total - half)),
        }
    }

    /// Grows `held` to `bytes`; false, and `held` unchanged, when they do
    /// not fit now.
    pub fn hold(&self, held: &mut Held, bytes: usize) -> bool {
        if bytes <= held.bytes {
            return true;
        }
        let small = bytes.min(SMALL_SHARE) - held.bytes.min(SMALL_SHARE);
        let large = bytes.saturating_sub(SMALL_SHARE) - held.bytes.saturating_sub(SMALL_SHARE);
        let take = |pool: &Arc<Semaphore>, n: usize| -> Option<Option<OwnedSemaphorePermit>> {
            if n == 0 {
                return Some(None);
            }
            let n = u32::try_from(n).ok()?;
            pool.clone().try_acquire_many_owned(n).ok().map(Some)
        };
        let Some(small) = take(&self.small, small) else {
            return false;
        };
        let Some(large) = take(&self.large, large) else {
            return false;
        };
        for (mine, new) in [(&mut held.small, small), (&mut held.large, large)] {
            match (mine.as_mut(), new) {
                (Some(permit), Some(new)) => permit.merge(new),
                (None, new) => *mine = new,
                (Some(_), None) => {}
            }
        }
        held.bytes = bytes;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_bodies_cannot_take_what_small_ones_need() {
        let budget = Budget::new(8 * SMALL_SHARE);
        // Two large bodies fill the large pool and half of the small one.
        let mut a = Held::default();
        let mut b = Held::default();
        assert!(budget.hold(&mut a, 3 * SMALL_SHARE));
        assert!(budget.hold(&mut b, 3 * SMALL_SHARE));
        let mut c = Held::default();
        assert!(!budget.hold(&mut c, SMALL_SHARE + 1), "no large bytes left");
        assert_eq!(c.bytes(), 0, "a refused hold takes nothing");
        // A small review still fits.
        let mut review = Held::default();
        assert!(budget.hold(&mut review, 4096));
        drop(a);
        assert!(budget.hold(&mut c, SMALL_SHARE + 1), "given back on drop");
    }

    #[test]
    fn a_hold_grows_as_bytes_arrive() {
        let budget = Budget::new(2 * SMALL_SHARE);
        let mut held = Held::default();
        for bytes in [
            100,
            100,
            50_000,
            SMALL_SHARE,
            SMALL_SHARE + 10,
            2 * SMALL_SHARE,
        ] {
            assert!(budget.hold(&mut held, bytes));
            assert_eq!(held.bytes(), bytes);
        }
        assert!(!budget.hold(&mut held, 2 * SMALL_SHARE + 1));
        assert_eq!(held.bytes(), 2 * SMALL_SHARE);
    }
}
