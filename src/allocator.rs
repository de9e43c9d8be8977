//! The daemon's memory allocator: jemalloc, set to give freed memory back to the system at once.
//!
//! The daemon holds its watched estate for months and, each pass, reads and drops transient data about as large
//! (an account's IAM snapshot, derivations). glibc's allocator kept about a third more resident memory than the
//! heap it served and did not give it back (BENCHMARKS.md, "Memory, third round"). jemalloc with one arena and no
//! decay delay keeps the resident memory close to the live heap. Its per-thread caches stay on: without them every
//! free could give a page back to the system, and `execrole derive` over 1,000 files took four times the CPU.
//! `_RJEM_MALLOC_CONF` in the environment overrides these options.
//!
//! A library cannot choose the allocator of every program that links it (the fuzzing harness counts allocations
//! with its own), so the programs that should run as the daemon does, the binary and the scale benchmark, say
//! [`crate::use_jemalloc!`].

pub use tikv_jemallocator::Jemalloc;

/// A C string pointer, as jemalloc reads its `malloc_conf` symbol when it starts.
#[repr(transparent)]
pub struct MallocConf(*const std::ffi::c_char);

// SAFETY: it points to a `'static` C string literal that nothing writes.
unsafe impl Sync for MallocConf {}

/// jemalloc's options: one arena (a few busy threads need no more, and each arena keeps its own free memory), and
/// freed pages returned to the system at once instead of after ten seconds.
pub const OPTIONS: MallocConf = MallocConf(c"narenas:1,dirty_decay_ms:0,muzzy_decay_ms:0".as_ptr());

/// Makes jemalloc with [`OPTIONS`] the allocator of the program whose crate says it (at its top level).
#[macro_export]
macro_rules! use_jemalloc {
    () => {
        #[global_allocator]
        static EXECROLE_ALLOCATOR: $crate::allocator::Jemalloc = $crate::allocator::Jemalloc;

        #[unsafe(export_name = "_rjem_malloc_conf")]
        static EXECROLE_MALLOC_CONF: $crate::allocator::MallocConf = $crate::allocator::OPTIONS;
    };
}
