//! The ghost window of a `loadgen failover` run: from the kill until every
//! surviving node has noticed that a node is gone, i.e. its `/metrics`
//! shows the unlabeled gauge `chatgw_fleet_live_nodes` one lower than just
//! before the kill. Until then a survivor may still route messages to the
//! dead node: the window bounds how long such a ghost lasts.
//!
//! A thread of the main process reads every survivor's `/metrics` every
//! 100 ms from before the go (the last reading answered before the kill is
//! each node's baseline) until each has dropped or the run's deadline
//! passes.
//! Each node's readings go through a [`NodeWatch`], which holds the
//! bookkeeping apart from the sockets.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::{report::probe, scenarios::failover_kill::KillMark};

/// The gauge each node keeps of the fleet's live nodes.
pub(crate) const LIVE_NODES: &str = "chatgw_fleet_live_nodes";
/// How often the survivors are read.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// One survivor's readings.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub(crate) struct NodeWatch {
    /// Its admin address.
    pub(crate) admin: String,
    /// The gauge in the last reading before the kill.
    pub(crate) before: Option<f64>,
    /// The first reading one lower, after the kill.
    pub(crate) after: Option<f64>,
    /// From the kill to that reading, ms.
    pub(crate) dropped_after_ms: Option<f64>,
    /// Readings that failed or lacked the gauge.
    pub(crate) missing_readings: u64,
}

impl NodeWatch {
    /// A reading of the gauge (None: unreadable or not in `/metrics`);
    /// `since_kill`: how long after the kill it was taken (None: before).
    pub(crate) fn observe(&mut self, value: Option<f64>, since_kill: Option<Duration>) {
        let Some(v) = value else {
            self.missing_readings += 1;
            return;
        };
        match since_kill {
            None => self.before = Some(v),
            Some(t) => {
                if self.dropped_after_ms.is_none() && self.before.is_some_and(|b| v <= b - 1.0) {
                    self.after = Some(v);
                    self.dropped_after_ms = Some(t.as_secs_f64() * 1e3);
                }
            }
        }
    }

    /// Whether this node has seen the drop.
    pub(crate) fn dropped(&self) -> bool {
        self.dropped_after_ms.is_some()
    }
}

/// What the report says of the ghost window.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub(crate) struct GhostFigures {
    /// From the kill until the last survivor showed the drop, ms (None:
    /// not every survivor did, or no kill).
    pub(crate) window_ms: Option<f64>,
    /// Each survivor.
    pub(crate) nodes: Vec<NodeWatch>,
    /// Why there is no window, if there is none.
    pub(crate) note: Option<String>,
}

impl GhostFigures {
    /// The figures from each survivor's watch.
    pub(crate) fn from_nodes(nodes: Vec<NodeWatch>, killed: bool) -> Self {
        let window_ms = if killed && !nodes.is_empty() && nodes.iter().all(NodeWatch::dropped) {
            nodes.iter().filter_map(|n| n.dropped_after_ms).reduce(f64::max)
        } else {
            None
        };
        let note = match () {
            _ if nodes.is_empty() => Some("no surviving admin address (pass --gateway-admin)".to_owned()),
            _ if !killed => Some("the victim was not killed".to_owned()),
            _ if nodes.iter().any(|n| n.before.is_none()) => {
                Some(format!("{LIVE_NODES} was not in every survivor's /metrics before the kill"))
            }
            _ if window_ms.is_none() => Some(format!("not every survivor showed {LIVE_NODES} drop by one in time")),
            _ => None,
        };
        GhostFigures { window_ms, nodes, note }
    }
}

/// The watch thread.
pub(crate) struct GhostWatch {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<NodeWatch>>,
}

impl GhostWatch {
    /// Start reading `survivors` every [`POLL`] until each has dropped
    /// after the kill in `mark`, [`stop`](Self::finish) is called, or
    /// `deadline` passes.
    pub(crate) fn start(survivors: Vec<SocketAddr>, mark: Arc<KillMark>, deadline: Instant) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new().name("loadgen-ghost".into()).spawn(move || {
            let mut nodes: Vec<NodeWatch> =
                survivors.iter().map(|a| NodeWatch { admin: a.to_string(), ..NodeWatch::default() }).collect();
            while !flag.load(Ordering::Acquire) && Instant::now() < deadline {
                let round = Instant::now();
                for (addr, node) in survivors.iter().zip(nodes.iter_mut()) {
                    if node.dropped() {
                        continue;
                    }
                    let value = probe::fetch_metrics(*addr).ok().and_then(|b| probe::metric_value(&b, LIVE_NODES));
                    // Whether the kill came first is read once the answer is
                    // in: a reading that was slow to arrive may already show
                    // the drop, and must not become the baseline.
                    node.observe(value, mark.at().map(|k| k.elapsed()));
                }
                if mark.at().is_some() && nodes.iter().all(NodeWatch::dropped) {
                    break;
                }
                std::thread::sleep(POLL.saturating_sub(round.elapsed()));
            }
            nodes
        })?;
        Ok(GhostWatch { stop, handle })
    }

    /// Stop watching; each survivor's readings.
    pub(crate) fn finish(self) -> Vec<NodeWatch> {
        self.stop.store(true, Ordering::Release);
        self.handle.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read as _, Write as _},
        net::TcpListener,
    };

    use super::*;

    #[test]
    fn a_node_drops_once_one_lower_than_its_last_reading_before_the_kill() {
        let mut n = NodeWatch::default();
        n.observe(Some(3.0), None);
        n.observe(None, None);
        n.observe(Some(3.0), Some(Duration::from_millis(100)));
        assert!(!n.dropped(), "still counting the dead node");
        n.observe(Some(2.0), Some(Duration::from_millis(300)));
        n.observe(Some(1.0), Some(Duration::from_millis(400)));
        assert_eq!((n.before, n.after, n.dropped_after_ms, n.missing_readings), (Some(3.0), Some(2.0), Some(300.0), 1));
        // Without a reading before the kill there is nothing to compare with.
        let mut blind = NodeWatch::default();
        blind.observe(Some(2.0), Some(Duration::from_millis(100)));
        assert!(!blind.dropped());
    }

    #[test]
    fn the_window_is_the_last_survivor_and_only_when_all_saw_it() {
        let node = |ms: Option<f64>| NodeWatch { before: Some(3.0), dropped_after_ms: ms, ..NodeWatch::default() };
        let g = GhostFigures::from_nodes(vec![node(Some(200.0)), node(Some(700.0))], true);
        assert_eq!((g.window_ms, g.note), (Some(700.0), None));
        let g = GhostFigures::from_nodes(vec![node(Some(200.0)), node(None)], true);
        assert_eq!(g.window_ms, None);
        assert!(g.note.is_some_and(|n| n.contains("not every survivor")));
        assert!(GhostFigures::from_nodes(vec![], true).note.is_some());
        assert_eq!(GhostFigures::from_nodes(vec![node(Some(1.0))], false).window_ms, None);
    }

    /// A stand-in admin listener that serves the gauge at 3 until told the
    /// kill happened, then 2: the watch reads it over a real socket.
    #[test]
    fn the_watch_reads_the_gauge_over_http_until_it_drops() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mark = Arc::new(KillMark::default());
        let server_mark = Arc::clone(&mark);
        let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let served_by_server = Arc::clone(&served);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                // The whole request: answering and closing with some of it
                // unread would reset the connection, and the answer with it.
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.ends_with(b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let killed_for = server_mark.at().map(|k| k.elapsed());
                let v = if killed_for.is_some_and(|t| t >= Duration::from_millis(250)) { 2 } else { 3 };
                let body = format!("# TYPE {LIVE_NODES} gauge\n{LIVE_NODES} {v}\n# EOF\n");
                let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                served_by_server.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        let watch = GhostWatch::start(vec![addr], Arc::clone(&mark), Instant::now() + Duration::from_secs(10)).unwrap();
        // The watch has read the gauge before the kill (twice: the second
        // read started after the first was answered).
        let give_up = Instant::now() + Duration::from_secs(5);
        while served.load(std::sync::atomic::Ordering::SeqCst) < 2 {
            assert!(Instant::now() < give_up, "the watch never read the gauge");
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        mark.kill_once(child.id(), 1);
        let _ = child.wait();
        let started = Instant::now();
        while !watch.handle.is_finished() && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let g = GhostFigures::from_nodes(watch.finish(), true);
        let ms = g.window_ms.unwrap_or_else(|| panic!("the survivor never dropped: {g:?}"));
        // Never before the drop; the upper bound only catches a watch that
        // stopped polling (a loaded machine may delay a poll or two).
        assert!((250.0..5000.0).contains(&ms), "dropped 250 ms after the kill, then seen by a poll: {ms}");
        assert_eq!(g.nodes[0].before, Some(3.0));
    }
}
