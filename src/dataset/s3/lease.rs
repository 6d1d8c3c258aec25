//! The writer's side of the lease an object-store output is locked with (`lock` takes and renews
//! it): whether this run still owns the output before each write ([`RemoteDir::check_owned`]), and
//! the store's clock a lease is judged by.

use std::time::Duration;

use object_store::ObjectStoreExt;

use super::{RemoteDir, RemoteError, LOCK};

/// What the writer knows of this run's lease: how long it lasts, when it was last renewed, and
/// whether another run has taken it.
#[derive(Debug, Clone, Copy)]
pub(super) struct LeaseState {
    lease: Duration,
    renewed: std::time::Instant,
    lost: bool,
}

/// The writer's side of the lease: `upload` and `put_manifest` ask [`RemoteDir::check_owned`]
/// before every write, so a run that lost the output, or could not renew it in time, stops writing.
impl RemoteDir {
    /// Records that this run holds (or just renewed) a lease of `lease` on the output.
    pub(crate) fn lease_renewed(&self, lease: Duration) {
        let mut l = self.lease.lock().expect("lease lock");
        *l = Some(LeaseState {
            lease,
            renewed: std::time::Instant::now(),
            lost: l.is_some_and(|s| s.lost),
        });
    }

    /// Records that another run took the output over.
    pub(crate) fn lease_lost(&self) {
        if let Some(s) = self.lease.lock().expect("lease lock").as_mut() {
            s.lost = true;
        }
    }

    /// Refuses a write when this run's lease is lost, or so old that another run may take it over
    /// (three quarters of the lease without a renewal).
    pub(super) fn check_owned(&self) -> Result<(), RemoteError> {
        let Some(s) = *self.lease.lock().expect("lease lock") else {
            return Ok(());
        };
        let url = self.url_of(LOCK);
        if s.lost {
            return Err(RemoteError::Conflict { url });
        }
        let idle = s.renewed.elapsed();
        if idle > s.lease.mul_f64(0.75) {
            return Err(RemoteError::LeaseLapsed {
                url,
                idle_s: idle.as_secs_f64(),
                lease_s: s.lease.as_secs_f64(),
            });
        }
        Ok(())
    }

    /// The store's clock now, epoch milliseconds: the modification time of a probe object put
    /// (and deleted) for the purpose, so that a lease is judged by the clock that stamped it.
    pub(crate) async fn store_now_ms(&self) -> Result<i64, RemoteError> {
        let probe = format!(".fleet-audit-probe-clock-{:08x}", rand::random::<u32>());
        let key = self.key(&probe);
        self.quick
            .put(&key, b"clock".to_vec().into())
            .await
            .map_err(|e| self.err("write to", "", e))?;
        let meta = self
            .quick
            .head(&key)
            .await
            .map_err(|e| self.err("read", &probe, e));
        let _ = self.quick.delete(&key).await;
        Ok(meta?.last_modified.timestamp_millis())
    }
}
