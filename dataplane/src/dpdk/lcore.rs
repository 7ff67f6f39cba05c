//! Worker lcores: listing them, launching a closure on one with `rte_eal_remote_launch`, and
//! waiting for its result.
//!
//! Owns: moving a Rust closure onto an EAL worker thread and its result (or panic) back. Must
//! not: busy-wait or poll on the main lcore; waiting blocks on a condition variable the job
//! signals once, so the main lcore's CPU stays free for workers sharing it (a 500 µs polling
//! sleep woke 2,000 times a second, each wake-up able to preempt a worker).

use super::{strerror, DpdkError, Eal};
use portolan_dpdk_sys as sys;
use std::any::Any;
use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Longest the waiting thread blocks before it checks the lcore state itself (a safety net:
/// the job signals the condition variable when it ends).
const WAIT_RECHECK: Duration = Duration::from_millis(200);
/// Sleep while the lcore, its job done and signalled, returns to the WAIT state.
const WAIT_STATE_POLL: Duration = Duration::from_micros(20);

/// Ids of the worker lcores (every enabled lcore except the main one), in order.
pub fn worker_lcores(_eal: &Eal) -> Vec<u32> {
    let mut out = Vec::new();
    let mut i = u32::MAX; // rte_get_next_lcore(-1, ...) starts from the first lcore
    loop {
        // SAFETY: the EAL is initialised; the call only reads the lcore configuration.
        i = unsafe { sys::rte_get_next_lcore(i, 1, 0) };
        if i >= sys::RTE_MAX_LCORE {
            return out;
        }
        out.push(i);
    }
}

/// The main lcore's id.
pub fn main_lcore(_eal: &Eal) -> u32 {
    // SAFETY: the EAL is initialised; plain read.
    unsafe { sys::rte_get_main_lcore() }
}

/// The id of the calling thread's lcore, `None` on a non-EAL thread.
pub fn current_lcore() -> Option<u32> {
    // SAFETY: reads a thread-local; valid on any thread.
    let id = unsafe { sys::portolan_lcore_id() };
    (id != sys::LCORE_ID_ANY).then_some(id)
}

/// The CPU time-stamp counter (`rte_rdtsc`). On x86-64 the instruction itself, inlined (what
/// `rte_rdtsc` compiles to); elsewhere DPDK's, through the shim.
#[inline]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC exists on every x86-64 CPU and has no preconditions.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: reads the TSC; no preconditions.
        unsafe { sys::portolan_rdtsc() }
    }
}

/// The job's result (or panic), and the condition variable signalled when it is set.
type Outcome<T> = Arc<(Mutex<Option<Result<T, Box<dyn Any + Send>>>>, Condvar)>;

struct Job<F, T> {
    f: F,
    outcome: Outcome<T>,
}

/// Entry point DPDK calls on the worker lcore.
extern "C" fn run_job<F, T>(arg: *mut c_void) -> c_int
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: arg is the Box<Job<F, T>> leaked by `launch` for exactly this call; DPDK passes it
    // once, so ownership is taken back exactly once.
    let job = unsafe { Box::from_raw(arg.cast::<Job<F, T>>()) };
    let Job { f, outcome } = *job;
    // A panic must not unwind into C: catch it and hand it to the waiting thread.
    let result = catch_unwind(AssertUnwindSafe(f));
    let failed = result.is_err();
    let (slot, done) = &*outcome;
    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
    done.notify_all();
    c_int::from(failed)
}

/// A closure running on a worker lcore. Waiting consumes it; dropping it without waiting still
/// waits (so the lcore is idle again and the closure's borrows of `'static` data end).
pub struct LcoreJob<T> {
    lcore: u32,
    outcome: Outcome<T>,
    waited: bool,
    _eal: Eal,
}

impl<T> std::fmt::Debug for LcoreJob<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LcoreJob")
            .field("lcore", &self.lcore)
            .finish()
    }
}

/// Runs `f` on worker lcore `lcore` (which must be idle) and returns at once.
pub fn launch<F, T>(eal: &Eal, lcore: u32, f: F) -> Result<LcoreJob<T>, DpdkError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let outcome: Outcome<T> = Arc::new((Mutex::new(None), Condvar::new()));
    let job = Box::new(Job {
        f,
        outcome: Arc::clone(&outcome),
    });
    let arg = Box::into_raw(job).cast::<c_void>();
    // SAFETY: run_job::<F, T> matches lcore_function_t and takes back ownership of arg, a
    // leaked Box<Job<F, T>>; F and T are Send + 'static so running on another thread is sound.
    let ret = unsafe { sys::rte_eal_remote_launch(Some(run_job::<F, T>), arg, lcore) };
    if ret != 0 {
        // SAFETY: the launch failed, so DPDK never calls run_job and arg is still ours.
        drop(unsafe { Box::from_raw(arg.cast::<Job<F, T>>()) });
        return Err(DpdkError::Launch {
            lcore,
            reason: strerror(ret.saturating_neg()),
        });
    }
    Ok(LcoreJob {
        lcore,
        outcome,
        waited: false,
        _eal: eal.clone(),
    })
}

impl<T> LcoreJob<T> {
    /// The lcore the job runs on.
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// True once the closure has returned (or panicked).
    pub fn is_finished(&self) -> bool {
        // SAFETY: plain read of the lcore's state; lcore is a valid worker id.
        let state = unsafe { sys::rte_eal_get_lcore_state(self.lcore) };
        state == sys::rte_lcore_state_t::WAIT
    }

    /// Sleeps until the closure has returned; gives its result, or the panic as an error.
    pub fn wait(mut self) -> Result<T, DpdkError> {
        self.block();
        let taken = self
            .outcome
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match taken {
            Some(Ok(value)) => Ok(value),
            Some(Err(payload)) => Err(DpdkError::WorkerPanicked {
                lcore: self.lcore,
                message: panic_message(payload.as_ref()),
            }),
            None => Err(DpdkError::WorkerPanicked {
                lcore: self.lcore,
                message: "the job ended without a result".to_string(),
            }),
        }
    }

    fn block(&mut self) {
        if self.waited {
            return;
        }
        {
            let (slot, done) = &*self.outcome;
            let mut result = slot.lock().unwrap_or_else(|p| p.into_inner());
            while result.is_none() && !self.is_finished() {
                result = done
                    .wait_timeout(result, WAIT_RECHECK)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }
        // The result is set just before the job returns to DPDK: wait the few microseconds
        // until the lcore is back in WAIT.
        while !self.is_finished() {
            std::thread::sleep(WAIT_STATE_POLL);
        }
        // SAFETY: the lcore is in WAIT state, so this returns immediately and resets it for
        // the next launch.
        unsafe { sys::rte_eal_wait_lcore(self.lcore) };
        self.waited = true;
    }
}

impl<T> Drop for LcoreJob<T> {
    fn drop(&mut self) {
        self.block();
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
