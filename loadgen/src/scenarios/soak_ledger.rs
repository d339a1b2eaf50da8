//! What the soak verifies at the end: every acknowledged message reached
//! every device it had to reach exactly once, and each device saw each
//! conversation's messages in strictly increasing id order.
//!
//! Which devices a message must reach is what docs/PROTOCOL.md promises
//! (sections 1.6 and 8): a message goes to every device of every
//! participant (for a group, every member when it was committed) except the
//! device that sent it, which gets `sent` instead; a later `sync` from an
//! older cursor may replay it to that device too, so there it may arrive
//! once or not at all, never twice. Live frames and `sync` replays count
//! alike, in the order they arrived, across all of a device's connections.
//! Messages that never got a `sent` are not owed to anyone: a kill can
//! take the request with it, and the sender was never told it was stored.
//!
//! Order: with one gateway an inbox is ordered by commit and ids increase
//! in commit order, so each device must see each conversation's ids
//! increase. With several gateways sharing a store (a fleet), ids come
//! from each node's own generator and an inbox is still ordered by commit,
//! which is not id order (docs/PROTOCOL.md, section 2); what holds is that
//! one sending device's messages arrive in the order it sent them, and its
//! ids increase in that order (the nodes of a soak share one clock). The
//! ledger then checks order per (device, conversation, sending device).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// A conversation, as the soak names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Conv {
    /// Direct pair `p`.
    Pair(u32),
    /// Group `g` (the soak's index, not the gateway's id).
    Group(u32),
}

/// The verdict's figures.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Messages acknowledged with `sent`.
    pub(crate) acked: u64,
    /// (message, device) deliveries the gateway owed.
    pub(crate) owed: u64,
    /// Owed deliveries that arrived (once or more).
    pub(crate) delivered: u64,
    /// Owed deliveries that never arrived.
    pub(crate) lost: u64,
    /// Extra copies: a (message, device) received more than once.
    pub(crate) duplicated: u64,
    /// The part of `duplicated` that came in a `sync` replay (the rest came live).
    pub(crate) duplicated_by_replay: u64,
    /// Messages received with an id not above the last one the device
    /// had seen in that conversation.
    pub(crate) out_of_order: u64,
    /// Sending devices that got their own message back by a replay.
    pub(crate) own_replayed: u64,
    /// Messages of ours received that were never acked.
    pub(crate) received_unacked: u64,
}

/// Acks and deliveries, as they happen.
#[derive(Default)]
pub(crate) struct SoakLedger {
    /// Acked message id -> (conversation, sending device).
    acked: HashMap<u64, (Conv, usize)>,
    /// (device, message id) -> copies received.
    copies: HashMap<(usize, u64), u32>,
    /// (device, conversation) -> highest message id received.
    last: HashMap<(usize, Conv), u64>,
    /// Receptions that broke the order.
    out_of_order: u64,
    /// Repeated receptions that came in a replay.
    repeats_replayed: u64,
    /// Message ids received, with their conversation (to count unacked ones).
    received: HashMap<u64, Conv>,
    /// Judge order per sending device (several gateways), not per
    /// conversation.
    per_sender: bool,
    /// With `per_sender`: (device, conversation) -> first receptions in
    /// arrival order (the sender of a message may be acked after its
    /// recipient has it, so order is judged at the verdict).
    arrivals: HashMap<(usize, Conv), Vec<u64>>,
}

impl SoakLedger {
    /// A ledger that judges order per sending device: for a soak over
    /// several gateways sharing a store.
    pub(crate) fn per_sender() -> Self {
        SoakLedger { per_sender: true, ..SoakLedger::default() }
    }

    /// `sent` for message `msg` of `conv` from `device`.
    pub(crate) fn ack(&mut self, msg: u64, conv: Conv, device: usize) {
        self.acked.entry(msg).or_insert((conv, device));
    }

    /// `device` received message `msg` of `conv`, live or (`replayed`) in
    /// the replay of a `sync`.
    pub(crate) fn receive(&mut self, device: usize, conv: Conv, msg: u64, replayed: bool) {
        self.received.insert(msg, conv);
        let copies = self.copies.entry((device, msg)).or_insert(0);
        *copies += 1;
        if *copies > 1 {
            // Counted as a duplicate, not again as disorder.
            self.repeats_replayed += u64::from(replayed);
            return;
        }
        if self.per_sender {
            self.arrivals.entry((device, conv)).or_default().push(msg);
            return;
        }
        let last = self.last.entry((device, conv)).or_insert(0);
        if msg <= *last {
            self.out_of_order += 1;
        } else {
            *last = msg;
        }
    }

    /// Judge, with `devices_of(conv)` every device of every participant.
    pub(crate) fn verdict(&self, devices_of: impl Fn(Conv) -> Vec<usize>) -> Verdict {
        let mut v = Verdict {
            acked: self.acked.len() as u64,
            out_of_order: self.out_of_order,
            duplicated_by_replay: self.repeats_replayed,
            ..Verdict::default()
        };
        let mut cache: HashMap<Conv, Vec<usize>> = HashMap::new();
        for (&msg, &(conv, sender)) in &self.acked {
            let devices = cache.entry(conv).or_insert_with(|| devices_of(conv));
            for &d in devices.iter() {
                let n = self.copies.get(&(d, msg)).copied().unwrap_or(0);
                if d == sender {
                    v.own_replayed += u64::from(n.min(1));
                    continue;
                }
                v.owed += 1;
                if n == 0 {
                    v.lost += 1;
                } else {
                    v.delivered += 1;
                }
            }
        }
        if self.per_sender {
            v.out_of_order = self.out_of_order_per_sender();
        }
        v.duplicated = self.copies.values().map(|&n| u64::from(n.saturating_sub(1))).sum();
        v.received_unacked = self.received.keys().filter(|m| !self.acked.contains_key(m)).count() as u64;
        v
    }
}

impl SoakLedger {
    /// Receptions whose id is not above the last one the same device had
    /// from the same sending device in the same conversation. Messages
    /// never acked have no known sender and are not judged.
    fn out_of_order_per_sender(&self) -> u64 {
        let mut bad = 0;
        for ((_, conv), msgs) in &self.arrivals {
            let mut last: HashMap<usize, u64> = HashMap::new();
            for msg in msgs {
                let Some(&(_, sender)) = self.acked.get(msg).filter(|(c, _)| c == conv) else { continue };
                let prev = last.entry(sender).or_insert(0);
                if *msg <= *prev {
                    bad += 1;
                } else {
                    *prev = *msg;
                }
            }
        }
        bad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pair 0: devices 0 and 1 (user a, two devices), device 2 (user b).
    fn devices(c: Conv) -> Vec<usize> {
        match c {
            Conv::Pair(0) => vec![0, 1, 2],
            _ => vec![3, 4],
        }
    }

    #[test]
    fn every_device_but_the_sender_is_owed_each_message_once() {
        let mut l = SoakLedger::default();
        l.ack(100, Conv::Pair(0), 0);
        l.receive(1, Conv::Pair(0), 100, false);
        l.receive(2, Conv::Pair(0), 100, true);
        let v = l.verdict(devices);
        assert_eq!((v.acked, v.owed, v.delivered, v.lost, v.duplicated, v.out_of_order), (1, 2, 2, 0, 0, 0));
        l.receive(0, Conv::Pair(0), 100, true);
        assert_eq!(l.verdict(devices).own_replayed, 1, "the sender may see it once by a replay");
        l.receive(0, Conv::Pair(0), 100, true);
        assert_eq!(l.verdict(devices).duplicated, 1, "but not twice");
    }

    #[test]
    fn losses_duplicates_and_disorder_are_counted_apart() {
        let mut l = SoakLedger::default();
        for m in [100, 101, 102] {
            l.ack(m, Conv::Pair(0), 2);
        }
        l.receive(0, Conv::Pair(0), 101, false);
        l.receive(0, Conv::Pair(0), 100, false);
        l.receive(0, Conv::Pair(0), 102, false);
        l.receive(0, Conv::Pair(0), 102, true);
        l.receive(0, Conv::Pair(0), 101, false);
        l.receive(1, Conv::Pair(0), 100, false);
        l.receive(1, Conv::Group(0), 50, false);
        let v = l.verdict(devices);
        assert_eq!((v.owed, v.delivered, v.lost), (6, 4, 2));
        assert_eq!((v.duplicated, v.duplicated_by_replay, v.out_of_order, v.received_unacked), (2, 1, 1, 1));
    }

    #[test]
    fn over_several_gateways_order_is_judged_per_sending_device() {
        let mut l = SoakLedger::per_sender();
        // Devices 0 and 2 both send in pair 0; device 1 receives both.
        l.ack(200, Conv::Pair(0), 0);
        l.ack(150, Conv::Pair(0), 2);
        l.ack(210, Conv::Pair(0), 0);
        l.ack(160, Conv::Pair(0), 2);
        // Commit order interleaves the two senders' ids: not disorder.
        for m in [200, 150, 210, 160] {
            l.receive(1, Conv::Pair(0), m, false);
        }
        assert_eq!(l.verdict(devices).out_of_order, 0);
        // One sender's messages swapped: disorder.
        l.ack(300, Conv::Pair(0), 0);
        l.ack(310, Conv::Pair(0), 0);
        l.receive(2, Conv::Pair(0), 310, false);
        l.receive(2, Conv::Pair(0), 300, false);
        assert_eq!(l.verdict(devices).out_of_order, 1);
    }
}
