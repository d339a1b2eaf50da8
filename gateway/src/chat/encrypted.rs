//! The encrypted chat loop: one [`SecureClient`] at a time, opened from the
//! state file; when the connection drops (the gateway restarts, the network
//! fails) a new one is opened on the same state and syncs from the
//! remembered cursor, so nothing is shown twice and nothing is missed.

use std::{
    path::{Path, PathBuf},
    sync::mpsc,
    time::Duration,
};

use chatgw_client::{Client, ConversationRef, Event, MessageKind, UserId};
use chatgw_e2ee::{fingerprint, DecryptError, SecureClient, SecureConfig, SecureError, SecureEvent, TrustEvent};

use super::{record::ChatRecord, ChatArgs};

/// Longest wait between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The chat's own record, beside the device state.
fn record_path(state: &Path) -> PathBuf {
    let mut name = state.file_name().unwrap_or_default().to_owned();
    name.push(".chat");
    state.with_file_name(name)
}

/// What ended a step of the loop.
enum Step {
    Continue,
    Quit,
    Reconnect(String),
}

pub(super) fn run(args: &ChatArgs, token: &str, passphrase: &str, rx: mpsc::Receiver<String>) -> anyhow::Result<()> {
    let state = args.state_path();
    if let Some(dir) = state.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut record = ChatRecord::open(&record_path(&state), passphrase)?;
    let mut chat = Chat { args, token, passphrase, state, peer: UserId(args.to), me: UserId(args.user) };
    let mut secure = chat.connect(&mut record, true)?;
    println!(
        "connected as {} device {} to {}; talking to {} end-to-end encrypted (/verify shows the safety number). Type a line and press enter; Ctrl-D quits.",
        chat.me, args.device, addresses(&args.connect), chat.peer
    );
    for event in secure.sync()? {
        chat.show(&mut secure, &mut record, event)?;
    }
    loop {
        let step = match rx.try_recv() {
            Ok(line) => chat.line(&mut secure, &mut record, line.trim())?,
            Err(mpsc::TryRecvError::Disconnected) => Step::Quit,
            Err(mpsc::TryRecvError::Empty) => match secure.next_event(Duration::from_millis(50)) {
                Ok(None) => Step::Continue,
                Ok(Some(event)) => chat.show(&mut secure, &mut record, event)?,
                Err(e) => lost(e)?,
            },
        };
        match step {
            Step::Continue => {}
            Step::Quit => break,
            Step::Reconnect(why) => {
                println!("  connection lost ({why}); reconnecting");
                secure = chat.connect(&mut record, false)?;
                for event in secure.sync()? {
                    chat.show(&mut secure, &mut record, event)?;
                }
                println!("  reconnected");
            }
        }
    }
    secure.save()?;
    let (client, _) = secure.into_parts();
    client.close();
    Ok(())
}

/// A failed operation: the connection's failure means reconnect; anything
/// else (the state file, refused keys) ends the chat.
fn addresses(connect: &[std::net::SocketAddr]) -> String {
    connect.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",")
}

fn lost(e: SecureError) -> anyhow::Result<Step> {
    if connection_failed(&e) {
        Ok(Step::Reconnect(e.to_string()))
    } else {
        Err(e.into())
    }
}

/// Whether `e` is the connection failing (or the gateway closing it).
fn connection_failed(e: &SecureError) -> bool {
    match e {
        SecureError::Client(_) => true,
        SecureError::Refused { code, .. } => code.starts_with("closed"),
        _ => false,
    }
}

struct Chat<'a> {
    args: &'a ChatArgs,
    token: &'a str,
    passphrase: &'a str,
    state: PathBuf,
    peer: UserId,
    me: UserId,
}

impl Chat<'_> {
    /// Connect and open the device state; retried while the gateway cannot
    /// be reached, unless this is the first connect.
    fn connect(&mut self, record: &mut ChatRecord, first: bool) -> anyhow::Result<SecureClient> {
        let mut backoff = Duration::from_millis(100);
        let mut next = 0usize;
        loop {
            // Each attempt goes to the next `--connect` address in turn.
            let address = self.args.connect[next % self.args.connect.len().max(1)];
            next += 1;
            let attempt = Client::connect(address, self.token).map_err(SecureError::from).and_then(|mut c| {
                c.set_cursor(record.cursor());
                SecureClient::open(c, self.me, self.args.device, &self.state, self.passphrase, SecureConfig::default())
            });
            match attempt {
                Ok(secure) => return Ok(secure),
                Err(e) if !first && connection_failed(&e) => {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A line typed: a command or a message.
    fn line(&mut self, secure: &mut SecureClient, record: &mut ChatRecord, line: &str) -> anyhow::Result<Step> {
        if line.is_empty() {
            return Ok(Step::Continue);
        }
        if line == "/verify" {
            return self.verify(secure, record);
        }
        if crate::chat_media::ChatMedia::send_command(line).is_some() {
            println!("  ! /send is only in --plaintext chat for now: files are not end-to-end encrypted here yet");
            return Ok(Step::Continue);
        }
        match secure.send_direct(self.peer, MessageKind::Text, line) {
            Ok(id) => {
                println!("  ✓ sent {id} (encrypted)");
                self.remember_fingerprint(secure, record)?;
                Ok(Step::Continue)
            }
            Err(e) => {
                let step = lost(e)?;
                println!("  ! not sent, type it again after reconnecting: {line}");
                Ok(step)
            }
        }
    }

    /// The peer's key fingerprint now (its devices' signing keys).
    fn fingerprint(&self, secure: &SecureClient) -> String {
        let keys = secure.crypto().contacts().signing_keys(self.peer);
        fingerprint(self.peer, &keys).iter().map(|g| format!("{g:05}")).collect::<Vec<_>>().join(" ")
    }

    /// Remember the peer's keys as first seen, once they are known.
    fn remember_fingerprint(&self, secure: &SecureClient, record: &mut ChatRecord) -> anyhow::Result<String> {
        let now = self.fingerprint(secure);
        if secure.crypto().contacts().signing_keys(self.peer).is_empty() {
            return Ok(now);
        }
        record.first_fingerprint(self.peer, &now)
    }

    /// `/verify`: fetch both users' devices, print the safety number and
    /// whether the peer's keys changed since this device first saw them.
    fn verify(&mut self, secure: &mut SecureClient, record: &mut ChatRecord) -> anyhow::Result<Step> {
        for user in [self.peer, self.me] {
            if let Err(e) = secure.refresh_devices(user, false) {
                return lost(e);
            }
        }
        let devices = secure.crypto().contacts().devices(self.peer);
        if devices.is_empty() {
            println!("  {} has no device with keys yet: nothing to verify", self.peer);
            return Ok(Step::Continue);
        }
        let now = self.fingerprint(secure);
        let first = self.remember_fingerprint(secure, record)?;
        println!("  safety number with {} ({} devices: {}):", self.peer, devices.len(), devices.join(", "));
        println!("    {}", secure.safety_number(self.peer));
        println!("  compare it with {}'s /verify over another channel.", self.peer);
        if now == first {
            println!("  {}'s keys: unchanged since first seen on this device", self.peer);
        } else {
            println!(
                "  ! {}'s keys CHANGED since first seen on this device (a device added, removed or re-keyed)",
                self.peer
            );
        }
        Ok(Step::Continue)
    }

    /// Print what arrived and acknowledge it.
    fn show(&mut self, secure: &mut SecureClient, record: &mut ChatRecord, event: SecureEvent) -> anyhow::Result<Step> {
        match event {
            SecureEvent::Message(m) => {
                match m.conversation {
                    ConversationRef::Group(g) => println!("[group {g}] {}: {}", m.from, m.body),
                    ConversationRef::Peer(to) if m.from == self.me => {
                        println!("  you (device {}) → {to}: {}", m.device, m.body)
                    }
                    ConversationRef::Peer(_) => {
                        println!("{}: {}", m.from, m.body);
                        let client = secure.client();
                        if let Err(e) = client.ack_delivered(m.from, &[m.id]) {
                            return lost(e.into());
                        }
                        if m.from == self.peer {
                            if let Err(e) = client.mark_read(self.peer, m.id) {
                                return lost(e.into());
                            }
                            self.remember_fingerprint(secure, record)?;
                        }
                    }
                }
                record.set_cursor(secure.client().cursor())?;
            }
            SecureEvent::Undecryptable { message, error } => {
                match error {
                    // Shown when it first arrived, or sent from here.
                    DecryptError::AlreadyDecrypted(_) | DecryptError::SentByThisDevice => {}
                    error => {
                        println!("  ! message {} from {} could not be decrypted: {error}", message.id, message.from)
                    }
                }
                record.set_cursor(secure.client().cursor())?;
            }
            SecureEvent::RoomKey { .. } => {}
            SecureEvent::Trust(TrustEvent::NewDevice { user, device }) => {
                println!("  ({user}'s device {device}: keys seen for the first time)")
            }
            SecureEvent::Trust(TrustEvent::KeysChanged { user, device, .. }) => {
                println!("  ! {user}'s device {device} has NEW keys: compare safety numbers (/verify)")
            }
            SecureEvent::Trust(TrustEvent::DeviceGone { user, device }) => {
                println!("  ({user}'s device {device} is gone: logged out)")
            }
            SecureEvent::Other(event) => return Ok(self.show_other(secure, event)),
        }
        Ok(Step::Continue)
    }

    fn show_other(&mut self, secure: &mut SecureClient, event: Event) -> Step {
        match event {
            Event::Message(m) => println!("{} (not encrypted, {:?}): {}", m.from, m.kind, m.body),
            Event::Sent { id, duplicate, .. } => println!("  ✓ sent {id}{}", if duplicate { " (again)" } else { "" }),
            Event::Receipt(r) if r.status == "delivered" => println!("  ✓✓ delivered to {}", r.by),
            Event::Receipt(r) if r.by != secure.client().user() => {
                println!("  ✓✓ read by {} up to {}", r.by, r.up_to.map(|u| u.to_string()).unwrap_or_default())
            }
            Event::Synced { cursor } => println!("  (up to date at {cursor})"),
            Event::Error { code, message, .. } => println!("  ! {code}: {message}"),
            Event::Closed { code, reason } => {
                return Step::Reconnect(format!("closed by the gateway: {code} {reason}"))
            }
            Event::Receipt(_) | Event::KeyCount { .. } | Event::Keys { .. } => {}
            other => println!("  {other:?}"),
        }
        Step::Continue
    }
}
