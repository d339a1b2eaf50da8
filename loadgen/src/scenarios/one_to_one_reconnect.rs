//! `loadgen one-to-one --reconnect`: the same pairs as devices that outlive
//! their connections, for runs where a gateway drains or restarts under
//! the load (scripts/rolling-restart.sh).
//!
//! The traffic is the reconnect storm's ([`StormTraffic`]) without a
//! storm: nothing is cut on purpose; a connection the gateway closes (1012
//! with `retry_after_ms` while it drains, docs/DRAIN.md) or that resets is
//! reopened after the hint or a full-jitter backoff, to the next `--url`,
//! `sync`s from the device's cursor and resends what had no `sent`. The
//! delivery checks stay the ones every one-to-one run makes: an acked
//! message never delivered (live or by a replay) is lost, a message id a
//! device got twice is a duplicate. This file turns that run into the
//! one-to-one report's figures plus the reconnects.

use serde::Serialize;

use crate::{
    report::stats::Summary,
    scenarios::{messages::MsgStats, one_to_one::PairRun, storm_traffic::StormStats},
};

/// What a reconnecting run adds to the one-to-one report.
#[derive(Debug, Serialize)]
pub(crate) struct ReconnectFigures {
    /// Reconnections that reached `synced`.
    pub(crate) reconnects: u64,
    /// Reconnection attempts that failed (and were retried after a backoff).
    pub(crate) reconnect_failures: u64,
    /// Devices that gave up (too many failed attempts in a row).
    pub(crate) gave_up: u64,
    /// Messages due while their sender was down, sent once it was back.
    pub(crate) queued_while_down: u64,
    /// Messages written again after a reconnect for want of a `sent`.
    pub(crate) resent: u64,
    /// First deliveries that came by a `sync` replay.
    pub(crate) delivered_by_replay: u64,
    /// Connection end -> `synced` on the new connection (hint or backoff
    /// included).
    pub(crate) catch_up_ms: Summary,
}

impl ReconnectFigures {
    /// Whether nothing was given up on.
    pub(crate) fn clean(&self) -> bool {
        self.gave_up == 0
    }
}

/// The run's message figures as one-to-one reports them, and what the
/// reconnections add. Sends answered `duplicate: true` after a resend are
/// expected and not counted as unexpected duplicate acks.
pub(crate) fn split(run: PairRun<StormStats>) -> (PairRun<MsgStats>, ReconnectFigures) {
    let PairRun { ctx, plan, setup, loaded, timed_out, conn_stats, stats: t } = run;
    let figures = ReconnectFigures {
        reconnects: t.reconnected,
        reconnect_failures: t.reconnect_failures,
        gave_up: t.gave_up,
        queued_while_down: t.queued_while_down,
        resent: t.resent,
        delivered_by_replay: t.delivered_by_replay,
        catch_up_ms: t.to_catch_up.summary(),
    };
    (PairRun { ctx, plan, setup, loaded, timed_out, conn_stats, stats: t.common }, figures)
}
