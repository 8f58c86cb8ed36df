//! The process's resident memory: reading it, and handing freed heap back to the system.
//!
//! Freeing a large resolver input (millions of small strings) leaves glibc's heap holding the
//! freed pages, so the resident set stays high long after the input is gone.
//! [`release_free_memory`] asks the allocators to return them: mimalloc (`mi_collect(true)`,
//! with the `mimalloc` feature, which the binaries that make it their global allocator turn on)
//! and glibc (`malloc_trim(0)`, which still holds what C code such as SQLite allocates). These
//! two foreign calls with no pointer arguments are the crate's only `unsafe`, the documented
//! exception to the workspace's `unsafe_code` rule (see the root `Cargo.toml`).

/// The resident set size of this process in bytes (`VmRSS` of `/proc/self/status`), or `None`
/// where that file does not exist (not Linux).
pub fn resident_bytes() -> Option<u64> {
    vm_rss("/proc/self/status")
}

/// The resident set size of process `pid` in bytes, as [`resident_bytes`] reads its own.
pub fn resident_bytes_of(pid: u32) -> Option<u64> {
    vm_rss(&format!("/proc/{pid}/status"))
}

fn vm_rss(status_path: &str) -> Option<u64> {
    let status = std::fs::read_to_string(status_path).ok()?;
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// CPU time (user and system) this process has used so far, in seconds, from
/// `/proc/self/stat` (in the kernel's fixed `USER_HZ` of 100 ticks a second); `None` where that
/// file does not exist.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Returns the heap's free pages to the operating system. `true` when an allocator was asked
/// to (mimalloc, with the `mimalloc` feature) or released something (glibc); `false` when
/// nothing could be done (another platform and allocator).
pub fn release_free_memory() -> bool {
    #[cfg(feature = "mimalloc")]
    mimalloc::collect();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    let trimmed = glibc::trim();
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let trimmed = false;
    cfg!(feature = "mimalloc") || trimmed
}

#[cfg(feature = "mimalloc")]
#[allow(unsafe_code)]
mod mimalloc {
    pub(super) fn collect() {
        // SAFETY: `mi_collect` takes a plain flag, only touches the allocator's own state, and
        // may be called from any thread at any time (with mimalloc linked but not the global
        // allocator it finds nothing to free).
        unsafe { libmimalloc_sys::mi_collect(true) }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod glibc {
    extern "C" {
        /// glibc: releases free memory from the heap; returns 1 if any was released.
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }

    pub(super) fn trim() -> bool {
        // SAFETY: `malloc_trim` takes a plain integer, only touches the allocator's own state
        // under the allocator's locks, and is safe to call at any time from any thread.
        unsafe { malloc_trim(0) == 1 }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn trimming_is_safe_and_resident_memory_is_read() {
        let before = super::resident_bytes();
        #[cfg(target_os = "linux")]
        assert!(before.is_some_and(|b| b > 0));
        let big: Vec<String> = (0..100_000).map(|i| format!("string number {i}")).collect();
        drop(big);
        super::release_free_memory();
        assert!(super::resident_bytes().is_some() == before.is_some());
    }
}
