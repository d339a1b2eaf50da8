//! `chatgw revoke`: ask a running gateway's admin listener to revoke a
//! user's sessions (`POST /revoke?user=N`), or one device of the user
//! (`POST /revoke?user=N&device=D`), and print its answer.
//!
//! A plain HTTP/1.1 request on a TCP stream rather than an HTTP client
//! crate: the admin listener answers one request per connection with
//! `Connection: close`, so reading to the end is the whole protocol.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use anyhow::{bail, Context as _};
use chatgw_gateway::config;

/// How long the gateway may take to record the revocation and answer.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug)]
pub(crate) struct RevokeArgs {
    /// Numeric user id whose sessions are revoked.
    #[arg(long)]
    user: u64,
    /// Revoke only this device of the user (the `dev` its tokens name).
    #[arg(long, value_parser = crate::device_name)]
    device: Option<chatgw_protocol::DeviceName>,
    /// The gateway's admin listener (`serve --admin-listen`). In a fleet,
    /// run the command against every node: each closes only its own
    /// connections at once (the others within seconds, through the store).
    #[arg(long, env = "CHATGW_ADMIN", default_value_t = config::DEFAULT_ADMIN_LISTEN)]
    admin: SocketAddr,
}

/// Send the request; print the gateway's answer; fail unless it is 200.
pub(crate) fn run(args: &RevokeArgs) -> anyhow::Result<()> {
    let target = match args.device {
        Some(device) => format!("/revoke?user={}&device={device}", args.user),
        None => format!("/revoke?user={}", args.user),
    };
    let (status, body) =
        post(args.admin, &target).with_context(|| format!("asking the admin listener at {}", args.admin))?;
    match status {
        200 => {
            print!("{body}");
            Ok(())
        }
        _ => bail!("the gateway answered {status}: {}", body.trim_end()),
    }
}

/// One POST without a body; the status code and the body of the answer.
fn post(addr: SocketAddr, target: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(stream, "POST {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").context("an answer that is not HTTP")?;
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).context("an answer without a status code")?;
    Ok((status, body.to_owned()))
}
