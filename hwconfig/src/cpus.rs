//! CPU discovery and pinning, once for the whole appliance: which CPUs this process may run on,
//! how worker lcores are laid out over them when no description says (replay), which CPUs the
//! workers leave free, and pinning a helper thread (the flow-event drain, the API runtime) to
//! CPUs off the workers.
//!
//! Owns: reading `Cpus_allowed_list` (through [`CoreList::allowed_for_this_process`]), the
//! replay's lcore layout, and `sched_setaffinity` of the calling thread. Must not: call DPDK
//! (the dataplane turns the layout into EAL arguments) or decide a described appliance's cores
//! (the hardware description does).

use crate::core_list::CoreList;

/// CPUs this process may run on (`Cpus_allowed_list` of `/proc/self/status`, which honours
/// `taskset` and cgroup cpusets), else `0..available_parallelism` when that cannot be read.
pub fn allowed_cpus() -> Vec<u32> {
    match CoreList::allowed_for_this_process() {
        Ok(list) if !list.is_empty() => list.iter().collect(),
        _ => {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
            (0..n).collect()
        }
    }
}

/// The `--lcores` mapping of a replay: main lcore 0 may run on any allowed CPU (it sleeps while
/// workers run); worker lcores `1..=workers` are pinned round-robin starting from the *last*
/// allowed CPU (the first CPU usually takes most interrupts and housekeeping, as with testpmd's
/// `-l 0-1`).
pub fn lcore_layout(workers: usize, cpus: &[u32]) -> String {
    let all: Vec<String> = cpus.iter().map(u32::to_string).collect();
    let mut s = format!("0@({})", all.join(","));
    for (i, cpu) in worker_cpus(workers, cpus).into_iter().enumerate() {
        s.push_str(&format!(",{}@{cpu}", i + 1));
    }
    s
}

/// The CPU each worker lcore of [`lcore_layout`] is pinned to, in worker order.
pub fn worker_cpus(workers: usize, cpus: &[u32]) -> Vec<u32> {
    let n = cpus.len().max(1);
    (0..workers)
        .map(|i| cpus.get(n - 1 - i % n).copied().unwrap_or(0))
        .collect()
}

/// Allowed CPUs no worker of a `workers`-worker replay ([`lcore_layout`]) is pinned to: where
/// helper threads (the flow-event drain) belong. Empty when the workers take every CPU.
pub fn spare_cpus(workers: usize) -> Vec<u32> {
    let cpus = allowed_cpus();
    let busy = worker_cpus(workers, &cpus);
    cpus.into_iter().filter(|c| !busy.contains(c)).collect()
}

/// Pins the calling thread to `cpus`. Call it from threads created *before* the EAL starts
/// (threads created later inherit the main lcore's single-CPU affinity).
pub fn pin_current_thread(cpus: &[u32]) -> Result<(), String> {
    use nix::sched::{sched_setaffinity, CpuSet};
    let mut set = CpuSet::new();
    for &c in cpus {
        set.set(c as usize).map_err(|e| format!("CPU {c}: {e}"))?;
    }
    sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcore_layout_pins_workers_round_robin() {
        assert_eq!(lcore_layout(1, &[0, 1]), "0@(0,1),1@1");
        assert_eq!(lcore_layout(3, &[0, 1]), "0@(0,1),1@1,2@0,3@1");
        assert_eq!(lcore_layout(2, &[4]), "0@(4),1@4,2@4");
        assert_eq!(worker_cpus(3, &[0, 1]), vec![1, 0, 1]);
    }

    #[test]
    fn allowed_cpus_are_the_process_affinity() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty());
        let spare = spare_cpus(1);
        assert_eq!(spare.len(), cpus.len() - 1);
        assert!(!spare.contains(&worker_cpus(1, &cpus)[0]));
    }

    #[test]
    fn pinning_to_an_allowed_cpu_works_and_to_an_absurd_one_fails() {
        let cpu = allowed_cpus()[0];
        let t = std::thread::spawn(move || pin_current_thread(&[cpu]));
        assert_eq!(t.join().expect("thread"), Ok(()));
        let t = std::thread::spawn(|| pin_current_thread(&[1 << 20]));
        assert!(t.join().expect("thread").is_err());
    }
}
