//! The BPF ring buffer, read from one mapping of its data pages.
//!
//! The kernel lets a reader map the data pages twice in a row, so that a record that wraps
//! past the end reads as one slice; aya and libbpf do. Every page of both copies is mapped up
//! front and counts in the daemon's resident size: a 2 MiB ring cost 4 MiB of RSS. Here the
//! data is mapped once, and the rare record that wraps is copied into a scratch buffer.
//!
//! The protocol (kernel/bpf/ringbuf.c): page 0 holds the consumer position (ours to write),
//! page 1 the producer position, then the data. Each record starts 8-byte aligned with a
//! header: a u32 length whose top bits say busy (still being written) or discarded, and a
//! u32 the kernel uses itself. A record ends at its header plus length, rounded up to 8.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use aya::maps::MapData;

const BUSY: u32 = 1 << 31;
const DISCARD: u32 = 1 << 30;
const HEADER: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("reading the ring's size: {0}")]
    Info(String),
    #[error("the ring's size {0} is not a power of two of whole pages")]
    Size(usize),
    #[error("mapping the ring: {0}")]
    Map(std::io::Error),
}

/// One shared mapping, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(
        fd: BorrowedFd<'_>,
        len: usize,
        writable: bool,
        offset: usize,
    ) -> Result<Self, RingError> {
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        let offset = libc::off_t::try_from(offset).map_err(|_| RingError::Size(offset))?;
        // SAFETY: a fresh shared mapping of the map's fd; the kernel checks length and offset.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(RingError::Map(std::io::Error::last_os_error()));
        }
        NonNull::new(ptr.cast())
            .map(|ptr| Mapping { ptr, len })
            .ok_or(RingError::Map(std::io::Error::other("mmap returned null")))
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and nothing borrows it past its owner.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

// SAFETY: the mappings are plain shared memory; the reader is used from one task at a time.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

/// A reader of a `BPF_MAP_TYPE_RINGBUF` map; its fd polls readable when records wait.
pub struct Ring {
    map: MapData,
    /// Page 0: the consumer position.
    consumer: Mapping,
    /// The producer position's page, then the data once.
    producer: Mapping,
    page: usize,
    /// Data bytes (a power of two).
    size: usize,
    /// Where we read next (monotonic, as the kernel counts).
    pos: usize,
    /// A wrapped record, made contiguous.
    scratch: Vec<u8>,
    /// Stretches skipped as unreadable since the last [`Ring::take_skipped`]: events lost.
    skipped: u64,
}

impl Ring {
    pub fn new(map: MapData) -> Result<Ring, RingError> {
        let size = map
            .info()
            .map_err(|e| RingError::Info(e.to_string()))?
            .max_entries() as usize;
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        if !size.is_power_of_two() || !size.is_multiple_of(page) {
            return Err(RingError::Size(size));
        }
        let fd = map.fd().as_fd();
        let consumer = Mapping::new(fd, page, true, 0)?;
        let producer = Mapping::new(fd, page + size, false, page)?;
        let mut ring = Ring {
            map,
            consumer,
            producer,
            page,
            size,
            pos: 0,
            scratch: Vec::new(),
            skipped: 0,
        };
        ring.pos = ring.consumer_pos().load(Ordering::Acquire);
        Ok(ring)
    }

    fn consumer_pos(&self) -> &AtomicUsize {
        // SAFETY: page-aligned, a page long, and the kernel keeps an unsigned long there.
        unsafe { self.consumer.ptr.cast::<AtomicUsize>().as_ref() }
    }

    fn producer_pos(&self) -> usize {
        // SAFETY: as for the consumer position, on the producer's page.
        unsafe { self.producer.ptr.cast::<AtomicUsize>().as_ref() }.load(Ordering::Acquire)
    }

    fn data(&self) -> *const u8 {
        // SAFETY: the data starts a page into the producer mapping, which is page + size long.
        unsafe { self.producer.ptr.as_ptr().add(self.page) }
    }

    /// Calls `f` with every record written so far, in order, and hands their space back to
    /// the kernel as it goes.
    pub fn read(&mut self, mut f: impl FnMut(&[u8])) {
        let mask = self.size - 1;
        loop {
            // The kernel wakes the reader only when a record lands where the consumer position
            // stands: our last store must be visible before we look at the producer again, or
            // a record written in between would neither be read nor wake us.
            std::sync::atomic::fence(Ordering::SeqCst);
            let produced = self.producer_pos();
            if self.pos >= produced {
                return;
            }
            while self.pos < produced {
                let at = self.pos & mask;
                // SAFETY: `at` is 8-aligned and below `size`, so the header lies within the data.
                let header =
                    unsafe { &*self.data().add(at).cast::<AtomicU32>() }.load(Ordering::Acquire);
                if header & BUSY != 0 {
                    return;
                }
                let len = (header & !(BUSY | DISCARD)) as usize;
                if len > self.size - HEADER {
                    // Not a record the kernel could have written: skip what the producer
                    // says was written rather than read garbage forever, and say so (the
                    // consumer answers it as a loss).
                    tracing::warn!(
                        len,
                        "eBPF ring record longer than the ring; skipping to the producer"
                    );
                    self.skipped += 1;
                    self.pos = produced;
                    self.consumer_pos().store(self.pos, Ordering::Release);
                    return;
                }
                if header & DISCARD == 0 {
                    // SAFETY: the data mapping is `size` long; the kernel does not write a
                    // record until the consumer position moves past it.
                    let data = unsafe { std::slice::from_raw_parts(self.data(), self.size) };
                    f(contiguous(
                        data,
                        (at + HEADER) & mask,
                        len,
                        &mut self.scratch,
                    ));
                }
                self.pos += (HEADER + len).next_multiple_of(8);
                self.consumer_pos().store(self.pos, Ordering::Release);
            }
        }
    }
}

impl Ring {
    /// How many unreadable stretches were skipped since the last call (each lost events).
    pub fn take_skipped(&mut self) -> u64 {
        std::mem::take(&mut self.skipped)
    }
}

/// The `len` bytes at `start` in the ring `data`, continuing at its start if they run past
/// its end (then copied into `scratch`).
fn contiguous<'a>(data: &'a [u8], start: usize, len: usize, scratch: &'a mut Vec<u8>) -> &'a [u8] {
    let first = len.min(data.len().saturating_sub(start));
    match data.get(start..start + first) {
        Some(head) if first == len => head,
        Some(head) => {
            scratch.clear();
            scratch.extend_from_slice(head);
            scratch.extend_from_slice(data.get(..len - first).unwrap_or_default());
            scratch
        }
        None => &[],
    }
}

impl AsFd for Ring {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.map.fd().as_fd()
    }
}

impl AsRawFd for Ring {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::contiguous;

    #[test]
    fn a_record_that_wraps_reads_as_one() {
        let data: Vec<u8> = (0..64).collect();
        let mut scratch = Vec::new();
        assert_eq!(contiguous(&data, 8, 4, &mut scratch), &[8, 9, 10, 11]);
        assert!(
            scratch.is_empty(),
            "a record that does not wrap is not copied"
        );
        assert_eq!(
            contiguous(&data, 56, 8, &mut scratch),
            &[56, 57, 58, 59, 60, 61, 62, 63]
        );
        assert_eq!(
            contiguous(&data, 60, 8, &mut scratch),
            &[60, 61, 62, 63, 0, 1, 2, 3]
        );
        assert_eq!(contiguous(&data, 65, 4, &mut scratch), &[] as &[u8]);
    }
}
