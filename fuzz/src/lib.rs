//! Shared by every fuzz target: an allocator that refuses single allocations over
//! [`MALLOC_LIMIT`], so the limit holds without AddressSanitizer (whose malloc hooks are
//! what libFuzzer's own `-malloc_limit_mb` relies on). The targets run without a sanitizer
//! because pgmi-core has no `unsafe` code for one to check, and they run 2-3 times faster.
//! libFuzzer's `-rss_limit_mb` still bounds the total, sanitizer or not.

use std::alloc::{GlobalAlloc, Layout, System};

/// 512 MiB, the same value scripts/fuzz.sh passes as `-malloc_limit_mb`: far above what any
/// input of a few kilobytes may legitimately need, well under the 2 GiB RSS limit.
pub const MALLOC_LIMIT: usize = 512 << 20;

struct Capped;

// SAFETY: every call is forwarded unchanged to the system allocator; the only addition is
// an abort before an oversized request, which allocates nothing.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Aborts (libFuzzer then saves the input as a crash) on an oversized request. Unbuffered
/// stderr with a fixed message, so reporting allocates nothing.
fn check(size: usize) {
    if size > MALLOC_LIMIT {
        use std::io::Write;
        let _ = std::io::stderr().write_all(b"==fuzz== single allocation over the 512 MiB limit\n");
        std::process::abort();
    }
}

#[global_allocator]
static ALLOCATOR: Capped = Capped;
