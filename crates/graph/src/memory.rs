//! The process's resident memory: reading it, and handing freed heap back to the system.
//!
//! Freeing a large resolver input (millions of small strings) leaves glibc's heap holding the
//! freed pages, so the resident set stays high long after the input is gone.
//! [`release_free_memory`] asks the allocators to return them: mimalloc (`mi_collect(true)`,
//! with the `mimalloc` feature, which the binaries that make it their global allocator turn on)
//! and glibc (`malloc_trim(0)`, which still holds what C code such as SQLite allocates).
//!
//! [`disable_transparent_huge_pages`] turns the kernel's transparent huge pages off for the
//! process (`prctl(PR_SET_THP_DISABLE)`): where the kernel gives them to every anonymous mapping
//! (`/sys/kernel/mm/transparent_hugepage/enabled` = `always`), each first touch of a 2 MiB
//! region zeroes all of it, and an allocator that hands freed pages back faults them in again;
//! resolving a million accounts took 2.5 to 2.9 s with them and 1.6 to 1.7 s without in
//! alternating runs on one such machine (`docs/BENCHMARKS.md`).
//!
//! These three foreign calls with no pointer arguments are the crate's only `unsafe`, the
//! documented exception to the workspace's `unsafe_code` rule (see the root `Cargo.toml`).

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

/// Turns transparent huge pages off for this process, from now on (since Linux 4.13 the kernel
/// checks the flag at every page fault, so mappings made before the call are covered too; huge
/// pages already faulted in stay). The flag is inherited by child processes and kept across
/// `exec`. Skipped when `MIMALLOC_ALLOW_THP` is set (exactly that name): that is mimalloc's own
/// switch for the same thing, which it reads at start-up (`0`, `false`, `no` or `off` turns
/// them off, anything else keeps them), so an operator who wants huge pages sets it to `1`.
///
/// `true` when the process's flag that turns them off is set after the call; `false` when it
/// is not (the switch left them on, or not Linux, or the kernel refused, or a kernel before 5.0
/// that does not show the flag in `/proc/self/status` after mimalloc set it).
pub fn disable_transparent_huge_pages() -> bool {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return transparent_huge_pages_disabled();
    }
    #[cfg(target_os = "linux")]
    return thp::disable();
    #[cfg(not(target_os = "linux"))]
    false
}

/// Whether transparent huge pages are off for this process (`THP_enabled: 0` in
/// `/proc/self/status`, Linux 5.0 and later); `false` where that line does not exist.
pub fn transparent_huge_pages_disabled() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .any(|l| l.starts_with("THP_enabled:") && l.split_whitespace().nth(1) == Some("0"))
    })
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod thp {
    use std::ffi::{c_int, c_ulong};

    extern "C" {
        /// Linux (glibc and musl): process control. Variadic in C; `PR_SET_THP_DISABLE` reads
        /// four `unsigned long` arguments after the option.
        fn prctl(option: c_int, ...) -> c_int;
    }

    /// `<linux/prctl.h>`.
    const PR_SET_THP_DISABLE: c_int = 41;

    pub(super) fn disable() -> bool {
        // SAFETY: the declaration matches C's `int prctl(int, ...)`, and `PR_SET_THP_DISABLE`
        // reads its variadic arguments as `unsigned long`, which is what is passed: plain
        // integers (1 to set the flag, then the three zeros the kernel requires), no pointers.
        // It only sets a flag on this process's memory descriptor, which the kernel reads at
        // each page fault. Safe at any time from any thread.
        let zero: c_ulong = 0;
        unsafe { prctl(PR_SET_THP_DISABLE, 1 as c_ulong, zero, zero, zero) == 0 }
    }
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

    /// The flag is read back from the kernel, not assumed: `THP_enabled: 0` in
    /// `/proc/self/status` after the call (the line exists from Linux 5.0).
    #[test]
    #[cfg(target_os = "linux")]
    fn transparent_huge_pages_are_turned_off_for_the_process() {
        let has_line = std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .contains("THP_enabled:");
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() || !has_line {
            return;
        }
        assert!(super::disable_transparent_huge_pages());
        assert!(super::transparent_huge_pages_disabled());
    }
}
