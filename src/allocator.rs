//! How the C allocator hands memory back to the system.
//!
//! Compaction allocates large, short-lived buffers: a segment read whole, Arrow
//! chunks, encoded row groups, upload parts. glibc maps buffers above a
//! threshold on their own and unmaps them when freed, but it raises that
//! threshold each time such a buffer is freed (up to 32 MiB), after which the
//! same buffers come from its heaps and stay resident once freed: the process
//! then holds far more than it uses (measured: 172 MiB resident for 120 MiB
//! live while compacting a 1 GiB backlog). A fixed threshold keeps resident
//! memory close to what is live. `docs/bench/compaction.md` has the figures.

/// Buffers of at least this many bytes get a mapping of their own and are
/// returned to the system when freed.
pub const MMAP_THRESHOLD: usize = 1 << 20;

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD`] (a fixed value also
/// stops it from growing). Call once at start, before other threads run.
/// Does nothing with another C library.
pub fn return_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes a tunable of glibc's allocator; it is
        // called before any other thread is started.
        let _ = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) };
    }
}
