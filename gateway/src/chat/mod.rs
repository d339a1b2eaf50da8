//! `chatgw chat`: two terminals talking to each other, end-to-end
//! encrypted unless `--plaintext`.
//!
//! Reads lines from standard input and sends each to `--to`; prints what
//! arrives. It acknowledges delivery of every message it prints and marks
//! the conversation read, so the other terminal sees ✓✓ and "read".
//! Encrypted (the default), the terminal is one named device (`--device`)
//! whose keys and sessions live in a passphrase-sealed state file
//! (`--state`), built on the `chatgw-e2ee` library; `/verify` prints the
//! safety number to compare with the peer (docs/E2EE.md).

mod encrypted;
mod passphrase;
mod plain;
mod record;

use std::{io::BufRead, net::SocketAddr, path::PathBuf, sync::mpsc};

use chatgw_client::{DeviceName, UserId};
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
    /// This terminal's device name: encrypted chat needs one (each device
    /// has its own keys), and a minted token names it.
    #[arg(long, default_value = "chat", value_parser = crate::device_name)]
    device: DeviceName,
    /// Send and show plaintext: no end-to-end encryption (the gateway can
    /// read every line).
    #[arg(long)]
    plaintext: bool,
    /// The device's encrypted state file (keys, sessions); created on first
    /// use, sealed with the passphrase from CHATGW_CHAT_PASSPHRASE or asked
    /// on the terminal [default: ~/.local/share/chatgw/chat-<user>-<device>.state].
    #[arg(long)]
    state: Option<PathBuf>,
    /// Gateway address; several, comma-separated, to move to another when one drains (close 1012) or fails.
    #[arg(long, env = "CHATGW_CONNECT", default_value = "127.0.0.1:8080", value_delimiter = ',')]
    connect: Vec<SocketAddr>,
    /// Token to present [default: minted from the secret]; it must name
    /// `--device`.
    #[arg(long)]
    token: Option<String>,
    /// Signing secret for minting [default: the one in <data>/secret].
    #[arg(long, env = "CHATGW_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Data directory holding the generated secret.
    #[arg(long, env = "CHATGW_DATA", default_value = config::DEFAULT_DATA)]
    data: PathBuf,
    /// Folder where received files are saved (created when the first
    /// arrives); `/send PATH` is in `--plaintext` chat only for now.
    #[arg(long, default_value = "./chatgw-media")]
    media_dir: PathBuf,
}

impl ChatArgs {
    /// The state file: `--state`, or one per user and device under the
    /// user's data directory.
    fn state_path(&self) -> PathBuf {
        self.state.clone().unwrap_or_else(|| {
            let base = std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
                .unwrap_or_default();
            base.join("chatgw").join(format!("chat-{}-{}.state", self.user, self.device))
        })
    }
}

pub(crate) fn run(args: ChatArgs) -> anyhow::Result<()> {
    let token = match &args.token {
        Some(t) => t.clone(),
        None => {
            let now = unix_now();
            TokenKey::new(crate::resolve_secret(args.secret.clone(), &args.data)?.as_bytes()).mint_device(
                UserId(args.user),
                args.device,
                now - 60,
                now + 86_400,
            )
        }
    };
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    if args.plaintext {
        plain::run(&args, &token, rx)
    } else {
        let passphrase = passphrase::passphrase()?;
        encrypted::run(&args, &token, &passphrase, rx)
    }
}
