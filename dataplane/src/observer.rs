//! What plugs into a worker: the [`PacketObserver`] that sees every decoded packet and every
//! finished flow (the classifier is one, [`FlowOnly`] the one that does nothing), and the
//! [`FlowSink`] that takes finished flows (replay keeps them, the daemon discards them once
//! their event is queued).
//!
//! Owns: those two contracts. Must not: depend on the worker loop or on any observer, so the
//! worker and the classifier each import this module and never each other.

use crate::report::ClassificationReport;
use portolan_flow::eve::FlowRecord;
use portolan_flow::{FinishedFlow, Flow, Side};
use portolan_packet::Packet;

/// Sees every decoded packet after the flow table has accounted it: the hook where the classifier
/// (`portolan-classify`) plugs in. One observer lives on each worker; it is never shared.
pub trait PacketObserver: Send + 'static {
    /// Per-flow state the observer keeps in [`Flow::app`].
    type FlowState: Default + Send + 'static;

    /// Called once per decoded TCP/UDP packet with its flow and its direction in that flow.
    fn on_packet(
        &mut self,
        flow: &mut Flow<Self::FlowState>,
        direction: Side,
        packet: &Packet<'_>,
        ts_us: u64,
    );

    /// True when `flow` is judged and nothing of it is wanted any more (no parser, no metadata,
    /// no early event): the worker may then have the driver drop its later payload packets
    /// (XDP bypass on `net_af_xdp` ports) or the NIC drop them (rte_flow). Asked for
    /// established TCP flows (and, with a driver bypass, UDP flows) on a worker with such a
    /// bypass, until it says yes.
    fn judged(&self, _flow: &Flow<Self::FlowState>) -> bool {
        false
    }

    /// Called once per flow as it leaves the table, before it goes to the [`FlowSink`].
    fn on_flow_end(&mut self, _flow: &mut FinishedFlow<Self::FlowState>) {}

    /// Fills the app-layer part (`app_proto` and the flattened `app` fields) of a finished
    /// flow's EVE record. Runs off the hot path, when records are written.
    fn describe(&self, _flow: &FinishedFlow<Self::FlowState>, _record: &mut FlowRecord) {}

    /// The observer's classification counters, if it classifies.
    fn classification(&self) -> Option<ClassificationReport> {
        None
    }
}

/// The observer that does nothing: flow accounting only.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlowOnly;

impl PacketObserver for FlowOnly {
    type FlowState = ();

    #[inline]
    fn on_packet(&mut self, _: &mut Flow<()>, _: Side, _: &Packet<'_>, _: u64) {}
}

/// Where a worker puts flows that have finished (replay collects them; the live dataplane will
/// hand them to the control plane).
pub trait FlowSink<A> {
    /// Takes one finished flow.
    fn push_flow(&mut self, flow: FinishedFlow<A>);
}

impl<A> FlowSink<A> for Vec<FinishedFlow<A>> {
    #[inline]
    fn push_flow(&mut self, flow: FinishedFlow<A>) {
        self.push(flow);
    }
}
