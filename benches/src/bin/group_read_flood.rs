//! `group-read-flood`: one client that sends group `read` frames as fast as
//! it may, to measure what that costs everyone else.
//!
//! It connects as one member of a group with history (for example a member
//! of a `loadgen group` run's groups: group `g`'s member `m` is user
//! `first_user + g * size + m`), syncs to learn the message ids of its
//! groups, and then marks a group read one message further each time,
//! oldest first: each `read` is a new mark, the most a read can cost the
//! committer. Once caught up with the newest message it repeats its read of
//! the newest (a read at the mark). Messages arriving live (in any of its
//! groups, such as those of a `loadgen group` run going on meanwhile) extend
//! the walk.
//!
//! The gateway's per-connection `--rate-limit` throttles it unless raised;
//! refused frames are counted and reported.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    time::{Duration, Instant},
};

use chatgw_client::{Client, Event, GroupId, MessageId, UserId};
use chatgw_gateway::auth::{unix_now, TokenKey};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Send group `read` frames in a tight loop as one member; report how many were sent")]
struct Args {
    /// Gateway address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    url: SocketAddr,
    /// The gateway's token secret.
    #[arg(long)]
    secret: String,
    /// The member to connect as.
    #[arg(long, default_value_t = 2)]
    user: u64,
    /// Seconds to flood for.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Most reads per second; 0 = as fast as the socket takes them.
    #[arg(long, default_value_t = 0)]
    rate: u32,
}

/// What the flood did.
#[derive(Debug, Default)]
struct Tally {
    reads: u64,
    new_marks: u64,
    errors: u64,
    rate_limited: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let token = TokenKey::new(args.secret.as_bytes()).mint(UserId(args.user), unix_now() + 3600);
    let mut client = Client::connect(args.url, &token)?;
    let mut tally = Tally::default();
    let mut pending: VecDeque<(GroupId, MessageId)> = VecDeque::new();
    client.sync()?;
    loop {
        match client.next_event(Duration::from_secs(30))? {
            Some(Event::Synced { .. }) => break,
            Some(ev) => note(&ev, &mut pending, &mut tally),
            None => anyhow::bail!("no `synced` within 30 s"),
        }
    }
    let Some(&first) = pending.front() else { anyhow::bail!("user {} has no group messages to read", args.user) };
    eprintln!("user {}: {} group messages to walk", args.user, pending.len());
    let gap = (args.rate > 0).then(|| Duration::from_secs_f64(1.0 / f64::from(args.rate)));
    let start = Instant::now();
    let end = start + Duration::from_secs(args.duration);
    let mut last = first;
    while Instant::now() < end {
        let (g, up_to) = match pending.pop_front() {
            Some(next) => {
                tally.new_marks += 1;
                next
            }
            None => last,
        };
        last = (g, up_to);
        client.mark_group_read(g, up_to)?;
        tally.reads += 1;
        // Take what has arrived without waiting: a socket read timeout
        // is rounded up to a scheduler tick, which would pace the flood.
        client.socket().set_nonblocking(true)?;
        while let Some(ev) = client.next_event(Duration::from_secs(1))? {
            note(&ev, &mut pending, &mut tally);
        }
        client.socket().set_nonblocking(false)?;
        if let Some(gap) = gap {
            let due = start + gap * u32::try_from(tally.reads).unwrap_or(u32::MAX);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "group-read-flood: {} reads in {secs:.1} s ({:.0}/s), {} new marks, {} refused as rate_limited, {} other errors",
        tally.reads,
        tally.reads as f64 / secs,
        tally.new_marks,
        tally.rate_limited,
        tally.errors
    );
    client.close();
    Ok(())
}

/// Take a group message into the walk; count refusals.
fn note(ev: &Event, pending: &mut VecDeque<(GroupId, MessageId)>, tally: &mut Tally) {
    match ev {
        Event::Message(m) => {
            if let Some(g) = m.group {
                pending.push_back((g, m.id));
            }
        }
        Event::Error { code, .. } if code == "rate_limited" => tally.rate_limited += 1,
        Event::Error { code, message, .. } => {
            if tally.errors == 0 {
                eprintln!("first error: {code}: {message}");
            }
            tally.errors += 1;
        }
        Event::Closed { code, reason } => eprintln!("closed by the gateway: {code} {reason}"),
        _ => {}
    }
}
