//! CPU core lists in the EAL/Linux syntax (`0-3,6,8-9`).
//!
//! Owns: [`CoreList`], its parsing, printing and serde form (a string). Must not: decide which
//! cores a configuration may use (validation does) or pin anything.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// A set of CPU core numbers, written as in EAL's `-l` and Linux's `cpulist` files.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CoreList {
    cores: BTreeSet<u32>,
}

/// Largest core number a list may name; bounds the work of parsing `0-4294967295`.
pub const MAX_CORE_NUMBER: u32 = 4095;

/// Why a core list string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid core list `{input}`: {why} (expected a list such as `0-3,6`)")]
pub struct CoreListError {
    /// The string given.
    pub input: String,
    /// What is wrong with it.
    pub why: String,
}

impl CoreList {
    /// The cores in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.cores.iter().copied()
    }

    /// Whether `core` is in the list.
    pub fn contains(&self, core: u32) -> bool {
        self.cores.contains(&core)
    }

    /// Number of cores.
    pub fn len(&self) -> usize {
        self.cores.len()
    }

    /// True when the list names no core.
    pub fn is_empty(&self) -> bool {
        self.cores.is_empty()
    }

    /// The largest core number, if any.
    pub fn max(&self) -> Option<u32> {
        self.cores.iter().next_back().copied()
    }

    /// The CPUs this process may run on: `Cpus_allowed_list` of `/proc/self/status` (it honours
    /// `taskset`, cgroup cpusets and container limits, unlike the count of online CPUs).
    pub fn allowed_for_this_process() -> std::io::Result<CoreList> {
        let status = std::fs::read_to_string("/proc/self/status")?;
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "/proc/self/status has no Cpus_allowed_list line",
                )
            })?;
        line.trim()
            .parse()
            .map_err(|e: CoreListError| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

impl FromIterator<u32> for CoreList {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        CoreList {
            cores: iter.into_iter().collect(),
        }
    }
}

impl FromStr for CoreList {
    type Err = CoreListError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why: String| CoreListError {
            input: s.to_string(),
            why,
        };
        let number = |t: &str| -> Result<u32, CoreListError> {
            let t = t.trim();
            let n: u32 = t
                .parse()
                .map_err(|_| err(format!("`{t}` is not a core number")))?;
            if n > MAX_CORE_NUMBER {
                return Err(err(format!("core {n} is above {MAX_CORE_NUMBER}")));
            }
            Ok(n)
        };
        let mut cores = BTreeSet::new();
        if s.trim().is_empty() {
            return Err(err("it is empty".to_string()));
        }
        for part in s.split(',') {
            match part.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (number(lo)?, number(hi)?);
                    if lo > hi {
                        return Err(err(format!("range {lo}-{hi} runs backwards")));
                    }
                    cores.extend(lo..=hi);
                }
                None => {
                    cores.insert(number(part)?);
                }
            }
        }
        Ok(CoreList { cores })
    }
}

impl fmt::Display for CoreList {
    /// Prints the shortest form: consecutive cores as ranges (`0-3,6`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut iter = self.cores.iter().copied().peekable();
        let mut first = true;
        while let Some(lo) = iter.next() {
            let mut hi = lo;
            while iter.peek() == Some(&(hi + 1)) {
                hi += 1;
                iter.next();
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if hi == lo {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

impl Serialize for CoreList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CoreList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_ranges() {
        let l: CoreList = "0-3, 6,8-9,2".parse().unwrap();
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 6, 8, 9]);
        assert_eq!(l.to_string(), "0-3,6,8-9");
        assert_eq!("1".parse::<CoreList>().unwrap().to_string(), "1");
        assert!(l.contains(6) && !l.contains(7));
    }

    #[test]
    fn rejects_bad_lists_with_the_reason() {
        for (bad, why) in [
            ("", "empty"),
            ("3-1", "backwards"),
            ("a", "not a core number"),
            ("0-99999", "above"),
            ("1,,2", "not a core number"),
        ] {
            let e = bad.parse::<CoreList>().unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn this_process_has_at_least_one_cpu() {
        let l = CoreList::allowed_for_this_process().unwrap();
        assert!(!l.is_empty());
    }
}
