//! EAL start-up: building the argument list and calling `rte_eal_init` once per process.
//!
//! Owns: the process-wide "EAL started" flag and the [`Eal`] handle that keeps the EAL alive
//! until the last pool, port and job holding it are gone (then `rte_eal_cleanup` runs). Must not:
//! create ports or pools itself; the arguments are always hugepage-free and PCI-free unless the
//! caller adds others.

use super::{last_error, DpdkError};
use portolan_dpdk_sys as sys;
use std::ffi::{c_char, c_int, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Set once `rte_eal_init` has been attempted in this process.
static EAL_STARTED: AtomicBool = AtomicBool::new(false);

/// What the EAL should start with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalConfig {
    /// Lcore-to-CPU mapping in `--lcores` syntax (for example `0@(0-1),1@0,2@1`); lcore 0 is the
    /// main lcore.
    pub lcores: String,
    /// Memory to reserve, in megabytes (`-m`); without hugepages this is ordinary memory.
    pub memory_mb: u32,
    /// Virtual devices, one `--vdev` each (for example `net_pcap0,rx_pcap=a.pcap`).
    pub vdevs: Vec<String>,
    /// Log level arguments, most specific first (`*:error` keeps the EAL quiet).
    pub log_levels: Vec<String>,
    /// Further EAL arguments, appended verbatim.
    pub extra_args: Vec<String>,
}

impl Default for EalConfig {
    fn default() -> Self {
        EalConfig {
            lcores: "0".to_string(),
            memory_mb: 128,
            vdevs: Vec::new(),
            log_levels: vec!["*:error".to_string()],
            extra_args: Vec::new(),
        }
    }
}

impl EalConfig {
    /// The full argument vector passed to `rte_eal_init`, program name first. The file prefix is
    /// unique per process and call so concurrent Portolan processes never share runtime files.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "portolan".to_string(),
            "--no-huge".to_string(),
            "--no-pci".to_string(),
            "--no-shconf".to_string(),
            "--no-telemetry".to_string(),
            unique_file_prefix(),
            "-m".to_string(),
            self.memory_mb.to_string(),
            format!("--lcores={}", self.lcores),
        ];
        args.extend(self.log_levels.iter().map(|l| format!("--log-level={l}")));
        args.extend(self.vdevs.iter().map(|v| format!("--vdev={v}")));
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// `--file-prefix=portolan-<pid>-<nanoseconds>`: runtime files no other process (or earlier
/// EAL of this process) uses.
pub fn unique_file_prefix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("--file-prefix=portolan-{}-{nanos}", std::process::id())
}

/// A started EAL. Cloning is cheap; the EAL is cleaned up when the last clone (including those
/// held by pools, ports and lcore jobs) is dropped. The EAL cannot be started again afterwards.
#[derive(Debug, Clone)]
pub struct Eal {
    inner: Arc<EalInner>,
}

#[derive(Debug)]
struct EalInner {
    args: Vec<String>,
}

impl Drop for EalInner {
    fn drop(&mut self) {
        // SAFETY: the EAL is initialised (an `EalInner` exists only after a successful
        // rte_eal_init); the returned pointer is a NUL-terminated string owned by the EAL, read
        // here before rte_eal_cleanup.
        let runtime_dir = unsafe {
            let p = sys::rte_eal_get_runtime_dir();
            (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
        };
        // SAFETY: this runs once, after every pool, port and lcore job (which all hold an `Eal`
        // clone) has been dropped, so no DPDK object created through this layer is still in use.
        unsafe {
            sys::rte_eal_cleanup();
        }
        // rte_eal_cleanup leaves the runtime directory (`/var/run/dpdk/<file-prefix>`) behind;
        // its prefix is unique to this EAL (see `unique_file_prefix`), so nobody else uses it.
        if let Some(dir) = runtime_dir.filter(|d| d.contains("/portolan-")) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Eal {
    /// Starts the EAL with `config`. Fails with [`DpdkError::EalAlreadyInitialised`] on any
    /// second call in the same process.
    pub fn init(config: &EalConfig) -> Result<Eal, DpdkError> {
        Eal::init_with_args(config.args())
    }

    /// Starts the EAL with exactly `args` (program name first), for callers that build the
    /// argument list themselves, such as `portolan hwcheck` from a hardware description (add
    /// [`unique_file_prefix`] and `--no-shconf` to keep clear of other processes). Fails with
    /// [`DpdkError::EalAlreadyInitialised`] on any second start in the same process.
    pub fn init_with_args(args: Vec<String>) -> Result<Eal, DpdkError> {
        let mut c_args = Vec::with_capacity(args.len());
        for a in &args {
            c_args.push(CString::new(a.as_str()).map_err(|_| DpdkError::NulInArgument(a.clone()))?);
        }
        if EAL_STARTED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::EalAlreadyInitialised);
        }
        // rte_eal_init may permute argv and keep pointers into it: give it strings that live
        // for the rest of the process (a few hundred bytes, once per process).
        let argv: &'static mut [*mut c_char] = Box::leak(
            c_args
                .into_iter()
                .map(CString::into_raw)
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        let argc = argv.len() as c_int;
        // SAFETY: rte_openlog_stream only stores the FILE pointer (stderr, open for the whole
        // process); calling it before rte_eal_init is allowed and keeps stdout free of logs.
        unsafe { sys::portolan_log_to_stderr() };
        // SAFETY: argv holds argc valid, NUL-terminated, leaked (never freed) C strings; the
        // EAL_STARTED flag guarantees this is the only call in the process.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(DpdkError::EalInit(format!(
                "{} (arguments: {})",
                last_error(),
                args.join(" ")
            )));
        }
        Ok(Eal {
            inner: Arc::new(EalInner { args }),
        })
    }

    /// The arguments the EAL was started with.
    pub fn args(&self) -> &[String] {
        &self.inner.args
    }

    /// Number of lcores the EAL runs (main lcore included).
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: the EAL is initialised (we hold a handle); rte_lcore_count only reads config.
        unsafe { sys::rte_lcore_count() }
    }

    /// Number of ethdev ports that probed successfully.
    pub fn port_count(&self) -> u16 {
        // SAFETY: the EAL is initialised; the call only reads the port table.
        unsafe { sys::rte_eth_dev_count_avail() }
    }
}
