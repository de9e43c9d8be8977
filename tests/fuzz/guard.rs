//! The three ways an input can fail besides returning an error: a panic (caught per input), a hang (a watchdog
//! thread ends the process when one input runs longer than the time limit) and unbounded allocation (a counting
//! global allocator: an input whose peak goes over the per-input bound fails, and one that drives the process
//! past a hard cap ends it at once). Whatever ends the process saves the input first.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Bytes in use by the whole process.
static IN_USE: AtomicUsize = AtomicUsize::new(0);
/// The highest `IN_USE` since the current input started.
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// When the process passes this many bytes in use, the input running now is saved and the process ends.
const HARD_CAP: usize = 1 << 30;
/// Milliseconds since `EPOCH` at which the current input started; 0 when none runs.
static STARTED_MS: AtomicU64 = AtomicU64::new(0);
/// The input running now, where the watchdog and the allocator can save it.
static CURRENT: Mutex<Option<Current>> = Mutex::new(None);
/// The last panic's message and location.
static PANIC: Mutex<Option<String>> = Mutex::new(None);

thread_local! {
    /// Set while the allocator itself reports, so that reporting does not recurse.
    static REPORTING: Cell<bool> = const { Cell::new(false) };
}

/// The input being run, and where to save it if the process must end.
struct Current {
    target: &'static str,
    input: String,
    findings: PathBuf,
}

/// The counting allocator: the system allocator plus the bytes in use and their peak.
pub struct Counting;

fn grew(bytes: usize) {
    let now = IN_USE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
    if now > HARD_CAP && !REPORTING.with(Cell::get) {
        REPORTING.with(|r| r.set(true));
        abort_with(&format!(
            "unbounded allocation: the process passed {} MiB in use",
            HARD_CAP >> 20
        ));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                IN_USE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

/// Limits every input must keep.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock time of one input.
    pub time: Duration,
    /// Peak bytes allocated while one input runs (above what was in use before it).
    pub bytes: usize,
}

/// How one input ended, when it did not end well.
#[derive(Debug)]
pub enum Failure {
    /// It panicked.
    Panic(String),
    /// It allocated more than the per-input bound at its peak.
    Allocation(usize),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Panic(message) => write!(f, "panic: {message}"),
            Failure::Allocation(bytes) => write!(f, "allocated {} MiB at its peak", bytes >> 20),
        }
    }
}

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64 + 1
}

/// Quiet panics (they are reported per input) and start the watchdog.
pub fn install(limits: Limits) {
    epoch();
    panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(non-string payload)".into());
        *PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{message}{at}"));
    }));
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let started = STARTED_MS.load(Ordering::Relaxed);
            if started != 0 && now_ms().saturating_sub(started) > limits.time.as_millis() as u64 {
                abort_with(&format!(
                    "hang: one input ran longer than {:?}",
                    limits.time
                ));
            }
        }
    });
}

/// Run `check` on `input` under the limits; `Err` says how it failed.
pub fn run(
    target: &'static str,
    findings: &std::path::Path,
    input: &str,
    limits: Limits,
    check: fn(&str),
) -> Result<(), Failure> {
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(Current {
        target,
        input: input.to_string(),
        findings: findings.to_path_buf(),
    });
    let before = IN_USE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    STARTED_MS.store(now_ms(), Ordering::Relaxed);
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| check(input)));
    STARTED_MS.store(0, Ordering::Relaxed);
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = None;
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    match outcome {
        Err(_) => {
            let message = PANIC.lock().unwrap_or_else(|e| e.into_inner()).take();
            Err(Failure::Panic(message.unwrap_or_default()))
        }
        Ok(()) if peak > limits.bytes => Err(Failure::Allocation(peak)),
        Ok(()) => Ok(()),
    }
}

/// Save `input` as a finding of `target`, returning the file.
pub fn save(findings: &std::path::Path, target: &str, input: &str) -> PathBuf {
    let _ = std::fs::create_dir_all(findings);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in input.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    let file = findings.join(format!("{target}-{hash:016x}.txt"));
    if let Err(e) = std::fs::write(&file, input) {
        eprintln!("cannot save the input to {}: {e}", file.display());
    }
    file
}

/// Save the running input, say how to reproduce it, and end the process (a hang or runaway allocation cannot be
/// unwound).
fn abort_with(what: &str) -> ! {
    let current = CURRENT.try_lock().ok().and_then(|mut c| c.take());
    match current {
        Some(current) => {
            let file = save(&current.findings, current.target, &current.input);
            eprintln!("FAIL {}: {what}", current.target);
            eprintln!("{}", crate::reproduce(current.target, &file));
        }
        None => eprintln!("FAIL: {what} (the input could not be saved)"),
    }
    std::process::exit(101);
}
