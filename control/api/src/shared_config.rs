//! The admin API's view of the fleet's shared configuration: what `portolan central` plugs into
//! [`ApiState::shared_config`](crate::ApiState) so the `/api/v1/fleet/config/...` routes read
//! the KV buckets and write them with compare-and-swap. An appliance has none (the routes answer
//! 404 there).
//!
//! Must not: know how the buckets are reached (`portolan-fleet` implements this).

use std::future::Future;
use std::pin::Pin;

use portolan_control::shared_config::{ConfigBucket, SharedConfigError, SharedEntry, SharedValue};

/// A boxed future that can cross threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Reads and compare-and-swap writes of the shared configuration.
pub trait SharedConfigStore: Send + Sync {
    /// Every live key of `bucket`.
    fn list(
        &self,
        bucket: ConfigBucket,
    ) -> BoxFuture<'_, Result<Vec<SharedEntry>, SharedConfigError>>;
    /// Writes `value` under `key` if its latest revision is `expected` (0: absent); the new
    /// revision.
    fn put<'a>(
        &'a self,
        bucket: ConfigBucket,
        key: &'a str,
        value: &'a SharedValue,
        expected: u64,
    ) -> BoxFuture<'a, Result<u64, SharedConfigError>>;
    /// Deletes `key` if its latest revision is `expected`.
    fn delete<'a>(
        &'a self,
        bucket: ConfigBucket,
        key: &'a str,
        expected: u64,
    ) -> BoxFuture<'a, Result<(), SharedConfigError>>;
}
