//! Which gateway probes the SIP agents when several share one database.
//!
//! Every node runs its user agent (Kamailio's dispatcher spreads the
//! gateway domain over them), but an agent must be probed with OPTIONS
//! once per interval, not once per node: N probers would multiply the
//! proxy's and the phones' load, and their answers would race to set the
//! same presence. So on PostgreSQL the nodes elect one prober with a lease
//! in the store (`leases`, name [`PROBE_LEASE`]): the holder renews it
//! every [`RENEW_EVERY`] for [`LEASE_MS`] and tells its user agent to
//! probe; every other node tells its own not to, and tries for the lease
//! on the same beat, so when the holder dies another node probes within
//! [`LEASE_MS`] plus a beat (at once when it stops cleanly: it gives the
//! lease back). A node that cannot reach the database stops probing: what
//! it found could not be stored anyway.
//!
//! What the prober finds is stored as presence of the cluster-wide source
//! [`SIP_SOURCE`], which every node reads and may also set (a node whose
//! message to an agent failed marks them offline; the prober's next probe
//! sets them back if their phone answers). SQLite means one node: its user
//! agent probes, as it does from the start, and no lease is taken.

use std::time::Duration;

use pbx_adapter::sip::SipCommand;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::engine::Engine;
use crate::store::{now_ms, Backend};

/// The presence source of SIP probes and failed messages: one per agent
/// in the whole cluster, whichever node wrote it.
pub(super) const SIP_SOURCE: &str = "sip";
/// The lease the prober holds.
pub(super) const PROBE_LEASE: &str = "sip-probes";
/// How long a taken lease lasts without renewal.
const LEASE_MS: i64 = 5_000;
/// How often the holder renews it and the others try for it.
const RENEW_EVERY: Duration = Duration::from_secs(1);

/// Whether the nodes share the store (and so elect a prober).
pub(super) fn shared(engine: &Engine) -> bool {
    engine.store().backend() != Backend::Sqlite
}

/// Holds or waits for the probe lease until `shutdown`, turning the user
/// agent's probing on and off to match, and gives the lease back at the
/// end. Call only when [`shared`], after the user agent was told
/// `SetProbing(false)`.
pub(super) async fn elect(
    engine: &Engine,
    commands: &mpsc::Sender<SipCommand>,
    shutdown: &CancellationToken,
) {
    let store = engine.store();
    // This process, as the lease's holder (new at every start).
    let holder = uuid::Uuid::new_v4().simple().to_string();
    let mut probing = false;
    loop {
        let now = now_ms();
        let held = match store
            .try_lease(PROBE_LEASE, &holder, now + LEASE_MS, now)
            .await
        {
            Ok(held) => held,
            Err(e) => {
                if probing {
                    warn!(error = %e, "cannot renew the SIP probe lease: probing stops");
                }
                false
            }
        };
        if held != probing {
            probing = held;
            if probing {
                info!("this node probes the SIP agents");
            } else {
                info!("another node probes the SIP agents");
            }
            if commands.send(SipCommand::SetProbing(held)).await.is_err() {
                break;
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            // A stopped user agent probes for nobody: let the lease go.
            () = commands.closed() => break,
            () = tokio::time::sleep(RENEW_EVERY) => {}
        }
    }
    if probing {
        if let Err(e) = store.release_lease(PROBE_LEASE, &holder).await {
            warn!(error = %e, "cannot give the SIP probe lease back; it lapses");
        }
    }
}
