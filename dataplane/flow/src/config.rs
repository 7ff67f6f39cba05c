//! Flow table sizing and idle timeouts.
//!
//! Owns: [`FlowTableConfig`], its defaults and its validation. Must not: read files or know
//! where the values come from (the control plane loads them and calls [`FlowTableConfig::validate`]).

/// Largest accepted [`FlowTableConfig::capacity`] (slot numbers are 32-bit and the hash index
/// holds twice the capacity).
pub const MAX_CAPACITY: usize = 1 << 30;

/// Sizing and idle timeouts of one per-worker [`crate::FlowTable`].
///
/// Timeouts run on capture time (packet timestamps), in microseconds. A flow is finished with
/// reason timeout once it has been idle for *more* than the timeout of its current state.
///
/// | field | default | applies to |
/// | --- | --- | --- |
/// | `capacity` | 262 144 flows | active flows per worker; the least-recently-active flow is evicted beyond it |
/// | `tcp_idle_timeout_us` | 600 s | TCP `Established` and `FinWait` (Suricata's `tcp.established`) |
/// | `tcp_closed_timeout_us` | 30 s | TCP `Closed` and `Reset` |
/// | `udp_idle_timeout_us` | 60 s | every UDP flow |
/// | `tcp_unestablished_timeout_us` | 60 s | TCP `None`, `SynSent`, `SynRecv` (Suricata's `tcp.new`) |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowTableConfig {
    /// Maximum number of active flows; all of them are allocated up front.
    pub capacity: usize,
    /// Idle timeout of established (and half-closed) TCP flows.
    pub tcp_idle_timeout_us: u64,
    /// Idle timeout of TCP flows closed by FIN both ways or by RST.
    pub tcp_closed_timeout_us: u64,
    /// Idle timeout of UDP flows.
    pub udp_idle_timeout_us: u64,
    /// Idle timeout of TCP flows whose handshake has not completed (or that were picked up
    /// mid-stream and have only been seen one way).
    pub tcp_unestablished_timeout_us: u64,
}

const SECOND_US: u64 = 1_000_000;

impl Default for FlowTableConfig {
    fn default() -> Self {
        FlowTableConfig {
            capacity: 262_144,
            tcp_idle_timeout_us: 600 * SECOND_US,
            tcp_closed_timeout_us: 30 * SECOND_US,
            udp_idle_timeout_us: 60 * SECOND_US,
            tcp_unestablished_timeout_us: 60 * SECOND_US,
        }
    }
}

/// A [`FlowTableConfig`] field with an unusable value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowTableConfigError {
    /// The field must be greater than zero.
    #[error("flow table config: `{field}` must be greater than 0")]
    Zero {
        /// Name of the offending field.
        field: &'static str,
    },
    /// `capacity` is above [`MAX_CAPACITY`].
    #[error("flow table config: `capacity` is {value}, the maximum is {max}")]
    CapacityTooLarge {
        /// The configured capacity.
        value: usize,
        /// [`MAX_CAPACITY`].
        max: usize,
    },
}

impl FlowTableConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), FlowTableConfigError> {
        if self.capacity == 0 {
            return Err(FlowTableConfigError::Zero { field: "capacity" });
        }
        if self.capacity > MAX_CAPACITY {
            return Err(FlowTableConfigError::CapacityTooLarge {
                value: self.capacity,
                max: MAX_CAPACITY,
            });
        }
        let timeouts = [
            ("tcp_idle_timeout_us", self.tcp_idle_timeout_us),
            ("tcp_closed_timeout_us", self.tcp_closed_timeout_us),
            ("udp_idle_timeout_us", self.udp_idle_timeout_us),
            (
                "tcp_unestablished_timeout_us",
                self.tcp_unestablished_timeout_us,
            ),
        ];
        for (field, value) in timeouts {
            if value == 0 {
                return Err(FlowTableConfigError::Zero { field });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(FlowTableConfig::default().validate(), Ok(()));
    }

    #[test]
    fn validate_names_the_bad_field() {
        let cfg = FlowTableConfig {
            udp_idle_timeout_us: 0,
            ..FlowTableConfig::default()
        };
        let err = cfg.validate().unwrap_err();
        assert_eq!(
            err,
            FlowTableConfigError::Zero {
                field: "udp_idle_timeout_us"
            }
        );
        assert!(err.to_string().contains("udp_idle_timeout_us"));

        let cfg = FlowTableConfig {
            capacity: 0,
            ..FlowTableConfig::default()
        };
        assert!(cfg.validate().unwrap_err().to_string().contains("capacity"));

        let cfg = FlowTableConfig {
            capacity: MAX_CAPACITY + 1,
            ..FlowTableConfig::default()
        };
        assert!(matches!(
            cfg.validate(),
            Err(FlowTableConfigError::CapacityTooLarge { .. })
        ));
    }
}
