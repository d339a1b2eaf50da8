//! `presence-fanout`: what it costs a gateway when a user whose presence
//! many contacts watch connects.
//!
//! One user writes one direct message to each of `--contacts` users (so
//! each shares a conversation with it); each contact connects on its own
//! thread and subscribes to the user's presence. Then the user connects and
//! disconnects `--cycles` times. For every connect the tool measures the
//! time from the start of the user's connect until every contact's device
//! has the `online` event, counts the `presence` frames and bytes the
//! contacts received, and reads the gateway process's CPU time (the sum of
//! its threads' on-CPU nanoseconds from `/proc/<pid>/task/*/schedstat`)
//! before and after, less its idle rate measured first. The gateway runs
//! as its own process (`--gateway-pid`), so the client threads' CPU is not
//! counted; run it with a short `--presence-window` to keep cycles short.

use std::{
    net::SocketAddr,
    sync::mpsc,
    time::{Duration, Instant},
};

use chatgw_client::{Client, ConversationRef, Event, MessageKind, PresenceState, UserId};
use chatgw_gateway::auth::{unix_now, TokenKey};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Measure the presence fan-out of one user's connect to the contacts that watch it")]
struct Args {
    /// Gateway address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    url: SocketAddr,
    /// The gateway's token secret.
    #[arg(long)]
    secret: String,
    /// The gateway's process id, for its CPU time.
    #[arg(long)]
    gateway_pid: u32,
    /// The watched user (contacts are the next ids).
    #[arg(long, default_value_t = 5_000_000)]
    user: u64,
    /// Contacts watching it.
    #[arg(long, default_value_t = 256)]
    contacts: u64,
    /// Connects measured.
    #[arg(long, default_value_t = 30)]
    cycles: u32,
    /// The gateway's --presence-window, in milliseconds (the tool waits it
    /// out between changes so none is coalesced away).
    #[arg(long, default_value_t = 1000)]
    window_ms: u64,
}

/// The gateway's CPU time so far: its threads' on-CPU nanoseconds.
fn gateway_cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()))
        .sum()
}

/// What one contact's device saw: (contact, online?, when, frame bytes).
type Seen = (u64, bool, Instant, usize);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let key = TokenKey::new(args.secret.as_bytes());
    let token = |u: u64| key.mint(UserId(u), unix_now() + 3600);
    let me = UserId(args.user);
    let contacts: Vec<u64> = (1..=args.contacts).map(|i| args.user + i).collect();

    // Share a conversation with every contact.
    let mut dev = Client::connect(args.url, &token(me.0))?;
    for c in &contacts {
        dev.send_message(UserId(*c), &format!("hello-{c}"), MessageKind::Text, "hi")?;
    }
    let mut acked = 0;
    while acked < contacts.len() {
        if let Some(Event::Sent { .. }) = dev.next_event(Duration::from_secs(10))? {
            acked += 1;
        }
    }

    // Every contact watches it from its own device and thread.
    let (tx, rx) = mpsc::channel::<Seen>();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    for c in contacts.clone() {
        let (tx, ready_tx, t) = (tx.clone(), ready_tx.clone(), token(c));
        std::thread::Builder::new().name(format!("contact-{c}")).spawn(move || -> anyhow::Result<()> {
            let mut w = Client::connect(args.url, &t)?;
            w.subscribe_presence(ConversationRef::Peer(me))?;
            w.wait_for(Duration::from_secs(30), "presence_list", |e| {
                matches!(e, Event::PresenceList { .. }).then_some(())
            })?;
            let _ = ready_tx.send(());
            loop {
                if let Some(Event::Presence { user, state }) = w.next_event(Duration::from_secs(3600))? {
                    let mut frame = Vec::new();
                    chatgw_protocol::server::presence(&mut frame, user, state);
                    let online = state == PresenceState::Online;
                    // A server frame of under 126 bytes has a 2-byte header.
                    if tx.send((c, online, Instant::now(), frame.len() + 2)).is_err() {
                        return Ok(());
                    }
                }
            }
        })?;
    }
    for _ in &contacts {
        ready_rx.recv_timeout(Duration::from_secs(60))?;
    }
    let window = Duration::from_millis(args.window_ms);
    let wait_all = |online: bool, deadline: Duration| -> anyhow::Result<(Vec<Instant>, usize, usize)> {
        let (mut at, mut frames, mut bytes) = (Vec::new(), 0, 0);
        let end = Instant::now() + deadline;
        while at.len() < contacts.len() {
            let (_, on, when, size) = rx.recv_timeout(end.saturating_duration_since(Instant::now()))?;
            frames += 1;
            bytes += size;
            if on == online {
                at.push(when);
            }
        }
        Ok((at, frames, bytes))
    };
    dev.close();
    wait_all(false, Duration::from_secs(30))?;
    std::thread::sleep(window * 2);

    // The gateway's idle rate (timers, the presence thread's ticks).
    let (idle_from, idle_cpu) = (Instant::now(), gateway_cpu_ns(args.gateway_pid));
    std::thread::sleep(Duration::from_secs(3));
    let idle_ns_per_s = (gateway_cpu_ns(args.gateway_pid) - idle_cpu) as f64 / idle_from.elapsed().as_secs_f64();

    let (mut cpu_ns, mut frames, mut bytes, mut last, mut median) = (0f64, 0, 0, Vec::new(), Vec::new());
    for i in 0..args.cycles {
        // The gateway drains connection changes every 50 ms: connects are
        // spread over that tick rather than kept in phase with it.
        std::thread::sleep(Duration::from_millis(u64::from(i) * 17 % 50));
        let (cpu0, t0) = (gateway_cpu_ns(args.gateway_pid), Instant::now());
        let d = Client::connect(args.url, &token(me.0))?;
        let (mut at, f, b) = wait_all(true, Duration::from_secs(30))?;
        let spent = t0.elapsed();
        cpu_ns += (gateway_cpu_ns(args.gateway_pid) - cpu0) as f64 - idle_ns_per_s * spent.as_secs_f64();
        (frames, bytes) = (frames + f, bytes + b);
        at.sort_unstable();
        last.push(at[at.len() - 1] - t0);
        median.push(at[at.len() / 2] - t0);
        d.close();
        wait_all(false, Duration::from_secs(30))?;
        std::thread::sleep(window + Duration::from_millis(100));
    }
    let n = f64::from(args.cycles);
    last.sort_unstable();
    median.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("contacts watching: {}  connects measured: {}", args.contacts, args.cycles);
    println!("gateway idle CPU: {:.2} ms/s (subtracted)", idle_ns_per_s / 1e6);
    println!("gateway CPU per connect (connect, auth, fan-out): {:.2} ms", cpu_ns / n / 1e6);
    println!("presence frames per connect: {:.1}  bytes on the wire: {:.0}", frames as f64 / n, bytes as f64 / n);
    println!(
        "time until all contacts see `online`: median {:.1} ms, worst {:.1} ms; half of them: median {:.1} ms",
        ms(last[last.len() / 2]),
        ms(last[last.len() - 1]),
        ms(median[median.len() / 2])
    );
    Ok(())
}
