//! Allocator settings for the whole process, set before any thread starts.
//!
//! glibc raises its mmap threshold each time a large buffer is freed, so
//! the multi-MiB buffers of group decoding (references, decoded runs) end
//! up in per-thread heap arenas that never give memory back: a pyarrow
//! update peaked at 136 MiB RSS with the defaults, 48-51 MiB with a fixed
//! 1 MiB threshold (big buffers are mapped and unmapped) and one arena per
//! core (docs/benchmarks.md). Other allocators ignore this.

/// Applies the settings (a no-op outside glibc).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = i32::try_from(cores.max(2)).unwrap_or(i32::MAX);
        // SAFETY: mallopt only changes allocator parameters; called from
        // main before other threads exist.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}
