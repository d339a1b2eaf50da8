//! The state file's passphrase: from `CHATGW_CHAT_PASSPHRASE`, or asked on
//! the terminal with echo off (standard input carries the chat's lines, so
//! the prompt reads `/dev/tty`).

use std::{
    fs::File,
    io::{BufRead, BufReader, Write},
    os::fd::AsRawFd,
};

/// The environment variable holding the passphrase.
pub(crate) const ENV: &str = "CHATGW_CHAT_PASSPHRASE";

/// The passphrase from [`ENV`], or typed at the terminal.
pub(crate) fn passphrase() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var(ENV) {
        anyhow::ensure!(!p.is_empty(), "{ENV} is empty");
        return Ok(p);
    }
    let tty = File::options()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| anyhow::anyhow!("no terminal to ask for the state file's passphrase ({e}): set {ENV}"))?;
    (&tty).write_all(b"passphrase of the chat state: ")?;
    let echo = EchoOff::new(&tty);
    let mut line = String::new();
    BufReader::new(&tty).read_line(&mut line)?;
    drop(echo);
    (&tty).write_all(b"\n")?;
    let p = line.trim_end_matches(['\n', '\r']).to_owned();
    anyhow::ensure!(!p.is_empty(), "an empty passphrase");
    Ok(p)
}

/// Echo turned off on a terminal until dropped.
struct EchoOff {
    fd: i32,
    saved: Option<libc::termios>,
}

impl EchoOff {
    fn new(tty: &File) -> EchoOff {
        let fd = tty.as_raw_fd();
        // SAFETY: `termios` is plain old data for which all-zero bytes are
        // a valid value; `tcgetattr` only writes into it.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` is an open descriptor borrowed from `tty`, which
        // outlives this call; `t` is a valid, writable termios.
        if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
            return EchoOff { fd, saved: None };
        }
        let saved = t;
        t.c_lflag &= !libc::ECHO;
        // SAFETY: as above; `t` is a termios read from this terminal.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) };
        EchoOff { fd, saved: Some(saved) }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // SAFETY: restores the settings read in `new` on the same,
            // still open descriptor.
            unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, saved) };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::FromRawFd;

    use super::*;

    fn echo_on(fd: i32) -> bool {
        // SAFETY: all-zero termios is valid; `fd` is an open terminal.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: as above, `t` is writable.
        assert_eq!(unsafe { libc::tcgetattr(fd, &mut t) }, 0);
        t.c_lflag & libc::ECHO != 0
    }

    #[test]
    fn echo_is_off_while_asking_and_restored_after() {
        let (mut leader, mut follower) = (-1, -1);
        // SAFETY: openpty writes two descriptors into the given integers;
        // the name, termios and window size pointers may be null.
        let opened = unsafe {
            libc::openpty(&mut leader, &mut follower, std::ptr::null_mut(), std::ptr::null(), std::ptr::null())
        };
        assert_eq!(opened, 0, "a pseudo-terminal");
        // SAFETY: both descriptors were just opened and are owned here only.
        let (_leader, tty) = unsafe { (File::from_raw_fd(leader), File::from_raw_fd(follower)) };
        assert!(echo_on(follower), "a new terminal echoes");
        let off = EchoOff::new(&tty);
        assert!(!echo_on(follower));
        drop(off);
        assert!(echo_on(follower), "restored");
    }

    #[test]
    fn a_file_that_is_no_terminal_is_left_alone() {
        let file = File::open("/dev/null").unwrap();
        assert!(EchoOff::new(&file).saved.is_none());
    }
}
