//! `chatgw chat`: two terminals talking to each other.
//!
//! Reads lines from standard input and sends each to `--to`; prints what
//! arrives. It acknowledges delivery of every message it prints and marks
//! the conversation read, so the other terminal sees ✓✓ and "read".

use std::{io::BufRead, net::SocketAddr, path::PathBuf, sync::mpsc, time::Duration};

use chatgw_client::{Client, Event, MessageKind, UserId};
use chatgw_gateway::{
    auth::{unix_now, TokenKey},
    config,
};

/// Flags of `chatgw chat`.
#[derive(clap::Args, Debug)]
pub(crate) struct ChatArgs {
    /// Who you are (numeric user id).
    #[arg(long)]
    user: u64,
    /// Who you talk to.
    #[arg(long)]
    to: u64,
    /// Gateway address.
    #[arg(long, env = "CHATGW_CONNECT", default_value = "127.0.0.1:8080")]
    connect: SocketAddr,
    /// Token to present [default: minted from the secret].
    #[arg(long)]
    token: Option<String>,
    /// Signing secret for minting [default: the one in <data>/secret].
    #[arg(long, env = "CHATGW_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Data directory holding the generated secret.
    #[arg(long, env = "CHATGW_DATA", default_value = config::DEFAULT_DATA)]
    data: PathBuf,
}

pub(crate) fn run(args: ChatArgs) -> anyhow::Result<()> {
    let token = match args.token {
        Some(t) => t,
        None => TokenKey::new(crate::resolve_secret(args.secret, &args.data)?.as_bytes())
            .mint(UserId(args.user), unix_now() + 86_400),
    };
    let mut client = Client::connect(args.connect, &token)?;
    let peer = UserId(args.to);
    println!(
        "connected as {} to {}; talking to {peer}. Type a line and press enter; Ctrl-D quits.",
        client.user(),
        args.connect
    );
    client.sync()?;
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seq = 0u64;
    let session = unix_now();
    loop {
        match rx.try_recv() {
            Ok(line) if !line.trim().is_empty() => {
                seq += 1;
                client.send_message(peer, &format!("{session}-{seq}"), MessageKind::Text, &line)?;
            }
            Ok(_) => {}
            Err(mpsc::TryRecvError::Disconnected) => break,
            Err(mpsc::TryRecvError::Empty) => {}
        }
        match client.next_event(Duration::from_millis(50))? {
            None => {}
            Some(Event::Message(m)) => {
                if m.from == client.user() {
                    println!("  you (other device) → {}: {}", m.to.map(|u| u.to_string()).unwrap_or_default(), m.body);
                } else {
                    println!("{}: {}", m.from, m.body);
                    client.ack_delivered(m.from, &[m.id])?;
                    if m.from == peer {
                        client.mark_read(peer, m.id)?;
                    }
                }
            }
            Some(Event::Sent { id, duplicate, .. }) => {
                println!("  ✓ sent {id}{}", if duplicate { " (again)" } else { "" })
            }
            Some(Event::Receipt(r)) if r.status == "delivered" => {
                println!("  ✓✓ delivered to {}", r.by)
            }
            Some(Event::Receipt(r)) if r.by != client.user() => {
                println!("  ✓✓ read by {} up to {}", r.by, r.up_to.map(|u| u.to_string()).unwrap_or_default())
            }
            Some(Event::Receipt(_)) => {}
            Some(Event::Synced { cursor }) => println!("  (up to date at {cursor})"),
            Some(Event::Error { code, message, .. }) => println!("  ! {code}: {message}"),
            Some(Event::Closed { code, reason }) => {
                println!("  connection closed by server: {code} {reason}");
                break;
            }
            Some(other) => println!("  {other:?}"),
        }
    }
    client.close();
    Ok(())
}
