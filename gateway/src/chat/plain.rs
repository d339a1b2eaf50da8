//! `chatgw chat --plaintext`: the chat without end-to-end encryption; the
//! gateway reads every line. Kept for gateways and clients that predate
//! encryption, and to show the difference. When its gateway drains (1012)
//! or the connection fails it moves to another `--connect` address
//! (`chatgw_client::Reconnect`) and syncs. `/send PATH` sends a file;
//! received files are saved under `--media-dir` (chat_media.rs).

use std::{sync::mpsc, time::Duration};

use chatgw_client::{Event, MessageKind, Reconnect, UserId};
use chatgw_gateway::auth::unix_now;

use super::ChatArgs;
use crate::chat_media::ChatMedia;

pub(super) fn run(args: &ChatArgs, token: &str, rx: mpsc::Receiver<String>) -> anyhow::Result<()> {
    let mut reconnect = Reconnect::new(args.connect.clone());
    let mut client = reconnect.connect(token, Duration::from_secs(10))?;
    let peer = UserId(args.to);
    println!(
        "connected as {} to {} (plaintext: the gateway reads every line); talking to {peer}. Type a line and press enter, /send PATH sends a file; Ctrl-D quits.",
        client.user(),
        reconnect.current()
    );
    client.sync()?;
    let mut seq = 0u64;
    let session = unix_now();
    let mut media = ChatMedia::new(args.media_dir.clone());
    // Events that arrived while a file was moving, handled next.
    let mut set_aside = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(line) if ChatMedia::send_command(&line).is_some() => {
                seq += 1;
                let path = ChatMedia::send_command(&line).unwrap_or_default();
                let sent = media.send(&mut client, &mut set_aside, peer, &format!("{session}-{seq}"), path.as_ref());
                if let Err(e) = sent {
                    println!("  ! {path}: {e}");
                }
            }
            Ok(line) if !line.trim().is_empty() => {
                seq += 1;
                client.send_message(peer, &format!("{session}-{seq}"), MessageKind::Text, &line)?;
            }
            Ok(_) => {}
            Err(mpsc::TryRecvError::Disconnected) => break,
            Err(mpsc::TryRecvError::Empty) => {}
        }
        let event = if !set_aside.is_empty() {
            Some(set_aside.remove(0))
        } else {
            match client.next_event(Duration::from_millis(50)) {
                Ok(event) => event,
                Err(e) => Some(Event::Closed { code: 1006, reason: e.to_string() }),
            }
        };
        match event {
            None => {}
            Some(Event::Message(m)) => {
                if let Some(line) = media.receive(&mut client, &mut set_aside, &m) {
                    println!("{line}");
                    if m.from != client.user() {
                        client.ack_delivered(m.from, &[m.id])?;
                    }
                    if m.from == peer {
                        client.mark_read(peer, m.id)?;
                    }
                } else if m.from == client.user() {
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
            Some(Event::Closed { code, reason }) if code == 1012 || code == 1001 || code == 1006 || code == 4000 => {
                println!("  connection closed: {code} {reason}; reconnecting");
                client = reconnect.reconnect(token, client.cursor(), &reason, Duration::from_secs(60))?;
                println!("  reconnected to {}", reconnect.current());
            }
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
