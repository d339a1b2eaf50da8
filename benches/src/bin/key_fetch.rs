//! `key-fetch`: how many key bundles a gateway serves per second, and its
//! CPU per fetch.
//!
//! First `--users` users each publish `--devices` devices holding
//! `--keys` signed one-time keys apiece (uploads of 100, signed as a
//! device signs them: docs/E2EE.md). Then `--connections` named devices of
//! other users each keep `--window` `fetch_keys` frames in flight for
//! `--seconds`, every fetch asking for all devices of one publishing user
//! (what a client does before it opens sessions), so each claims
//! `--devices` one-time keys. A fetch is one round trip to the gateway's
//! store reader and one atomic claim per device. The gateway runs as its
//! own process (`--gateway-pid`) so its CPU time is read apart from this
//! tool's; it needs a `--rate-limit` above the fetch rate.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use chatgw_client::{Client, DeviceName, Event, UserId};
use chatgw_gateway::auth::{unix_now, TokenKey};
use chatgw_protocol::{canonical_text, DeviceKeys, KeyRole, PublicKey, Signature, SignedKey};
use clap::Parser;
use ed25519_dalek::{Signer, SigningKey};

#[derive(Parser, Debug)]
#[command(about = "Measure key bundle fetches per second at a gateway")]
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
    /// Users that publish keys (ids from 7,000,000).
    #[arg(long, default_value_t = 64)]
    users: u64,
    /// Devices per publishing user.
    #[arg(long, default_value_t = 4)]
    devices: u32,
    /// One-time keys per device (the directory holds at most 500).
    #[arg(long, default_value_t = 500)]
    keys: usize,
    /// Fetching connections (each a named device of its own user).
    #[arg(long, default_value_t = 8)]
    connections: u64,
    /// Fetches in flight per connection.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Seconds of fetching.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

const FIRST_USER: u64 = 7_000_000;
const WAIT: Duration = Duration::from_secs(30);

fn device_name(i: u32) -> DeviceName {
    DeviceName::new(&format!("d{i}")).expect("a valid device name")
}

fn connect(args: &Args, user: u64, device: DeviceName) -> anyhow::Result<Client> {
    let now = unix_now();
    let token = TokenKey::new(args.secret.as_bytes()).mint_device(UserId(user), device, now - 60, now + 3600);
    Ok(Client::connect(args.url, &token)?)
}

/// A publishing device: signs its keys as docs/E2EE.md says.
struct Publisher {
    user: UserId,
    device: DeviceName,
    signer: SigningKey,
}

impl Publisher {
    fn sign(&self, role: KeyRole, id: &str, key: [u8; 32]) -> SignedKey {
        let key = PublicKey(key);
        let text = canonical_text(self.user, self.device, role, id, &key);
        SignedKey { id: id.to_owned(), key, signature: Signature(self.signer.sign(text.as_bytes()).to_bytes()) }
    }

    fn keys(&self) -> DeviceKeys {
        let identity = self.sign(KeyRole::Identity, "identity", [9; 32]);
        DeviceKeys {
            signing_key: PublicKey(self.signer.verifying_key().to_bytes()),
            identity_key: identity.key,
            identity_signature: identity.signature,
            fallback_key: self.sign(KeyRole::Fallback, "fallback", [8; 32]),
        }
    }
}

/// Publish every device's keys; returns the one-time keys stored.
fn publish(args: &Args) -> anyhow::Result<u64> {
    for u in 0..args.users {
        for d in 0..args.devices {
            let p = Publisher {
                user: UserId(FIRST_USER + u),
                device: device_name(d),
                signer: SigningKey::from_bytes(&[(u * 31 + u64::from(d)) as u8 ^ 0x5a; 32]),
            };
            let mut c = connect(args, FIRST_USER + u, p.device)?;
            let keys = p.keys();
            for chunk in 0..args.keys.div_ceil(100) {
                let n = (args.keys - chunk * 100).min(100);
                let batch: Vec<SignedKey> = (0..n)
                    .map(|i| {
                        let k = chunk * 100 + i;
                        let mut key = [0u8; 32];
                        key[..8].copy_from_slice(&(k as u64 + 1).to_le_bytes());
                        p.sign(KeyRole::OneTime, &format!("k{k}"), key)
                    })
                    .collect();
                c.upload_keys(&keys, &batch)?;
                c.wait_for(WAIT, "key_count", |e| match e {
                    Event::KeyCount { .. } => Some(()),
                    Event::Error { code, message, .. } => panic!("upload refused: {code}: {message}"),
                    _ => None,
                })?;
            }
            c.close();
        }
    }
    Ok(args.users * u64::from(args.devices) * args.keys as u64)
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

/// Counts shared by the fetching threads.
#[derive(Default)]
struct Counts {
    fetches: AtomicU64,
    bundles: AtomicU64,
    fallbacks: AtomicU64,
}

fn fetcher(args: Arc<Args>, i: u64, stop: Arc<AtomicBool>, counts: Arc<Counts>) -> anyhow::Result<()> {
    let mut c = connect(&args, 8_000_000 + i, device_name(0))?;
    let mut next = i;
    let mut in_flight = 0;
    loop {
        while in_flight < args.window && !stop.load(Ordering::Relaxed) {
            c.fetch_keys(UserId(FIRST_USER + next % args.users), None)?;
            next += 1;
            in_flight += 1;
        }
        if in_flight == 0 {
            break;
        }
        match c.next_event(WAIT)? {
            Some(Event::Keys { devices, .. }) => {
                in_flight -= 1;
                counts.fetches.fetch_add(1, Ordering::Relaxed);
                counts.bundles.fetch_add(devices.len() as u64, Ordering::Relaxed);
                let fallbacks = devices.iter().filter(|b| b.one_time_key.is_none()).count();
                counts.fallbacks.fetch_add(fallbacks as u64, Ordering::Relaxed);
            }
            Some(Event::Error { code, message, .. }) => anyhow::bail!("fetch refused: {code}: {message}"),
            Some(_) => {}
            None => anyhow::bail!("no answer in {WAIT:?}"),
        }
    }
    c.close();
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let started = Instant::now();
    let stock = publish(&args)?;
    println!(
        "published {} users x {} devices x {} one-time keys ({stock} keys) in {:.1} s",
        args.users,
        args.devices,
        args.keys,
        started.elapsed().as_secs_f64()
    );
    // The gateway's idle rate, taken off its CPU during the run.
    let idle_from = (gateway_cpu_ns(args.gateway_pid), Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    let idle_ns_per_s = (gateway_cpu_ns(args.gateway_pid) - idle_from.0) as f64 / idle_from.1.elapsed().as_secs_f64();

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let cpu_before = gateway_cpu_ns(args.gateway_pid);
    let t0 = Instant::now();
    let threads: Vec<_> = (0..args.connections)
        .map(|i| {
            let (args, stop, counts) = (Arc::clone(&args), Arc::clone(&stop), Arc::clone(&counts));
            std::thread::spawn(move || fetcher(args, i, stop, counts))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(args.seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("a fetcher thread")?;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu_ns = (gateway_cpu_ns(args.gateway_pid) - cpu_before) as f64 - idle_ns_per_s * elapsed;
    let fetches = counts.fetches.load(Ordering::Relaxed);
    let bundles = counts.bundles.load(Ordering::Relaxed);
    println!(
        "{fetches} fetches ({bundles} bundles, {} without a one-time key) over {} connections x {} in flight in {elapsed:.1} s",
        counts.fallbacks.load(Ordering::Relaxed),
        args.connections,
        args.window
    );
    println!(
        "fetches/s {:.0}  bundles/s {:.0}  gateway CPU per fetch {:.1} us ({:.2} cores busy)",
        fetches as f64 / elapsed,
        bundles as f64 / elapsed,
        cpu_ns / fetches.max(1) as f64 / 1e3,
        cpu_ns / elapsed / 1e9
    );
    Ok(())
}
