//! `chatgw chat` as a child process: lines written to its standard input,
//! its standard output read line by line, for tests that drive the chat as
//! a user would.

use std::{
    io::{BufRead, BufReader, Write},
    net::SocketAddr,
    path::Path,
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use super::SECRET;

/// The passphrase the tests seal chat state with.
pub const PASSPHRASE: &str = "correct horse battery staple";

/// A running `chatgw chat`.
pub struct ChatProc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// Every line read so far, for failure messages.
    pub seen: Vec<String>,
}

impl ChatProc {
    /// `chatgw chat --user user --device device --to to` against `addr`,
    /// minting its token from the tests' secret, with `flags` after.
    pub fn spawn(addr: SocketAddr, user: u64, device: &str, to: u64, flags: &[&str]) -> ChatProc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chatgw"))
            .args(["chat", "--user", &user.to_string(), "--device", device, "--to", &to.to_string()])
            .args(["--connect", &addr.to_string(), "--secret", SECRET])
            .args(flags)
            .env("CHATGW_CHAT_PASSPHRASE", PASSPHRASE)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("chatgw chat starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        ChatProc { child, stdin, lines, seen: Vec::new() }
    }

    /// An encrypted chat whose state file is `state`.
    pub fn encrypted(addr: SocketAddr, user: u64, device: &str, to: u64, state: &Path) -> ChatProc {
        let state = state.to_str().expect("a UTF-8 path");
        let mut chat = ChatProc::spawn(addr, user, device, to, &["--state", state]);
        chat.expect("connected as");
        chat
    }

    /// Type a line.
    pub fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("the chat reads its input");
        stdin.flush().expect("flush");
    }

    /// The next line containing `needle`, within `wait` (lines before it
    /// are kept in `seen`).
    pub fn expect_within(&mut self, needle: &str, wait: Duration) -> String {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?} in {wait:?}; the chat printed:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// [`ChatProc::expect_within`] 20 seconds.
    pub fn expect(&mut self, needle: &str) -> String {
        self.expect_within(needle, Duration::from_secs(20))
    }

    /// The line after the next line containing `needle`.
    pub fn line_after(&mut self, needle: &str) -> String {
        self.expect(needle);
        self.expect("")
    }

    /// Lines printed within `quiet` from now.
    pub fn drain(&mut self, quiet: Duration) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(quiet) {
            self.seen.push(line.clone());
            out.push(line);
        }
        out
    }

    /// End the input (Ctrl-D) and wait for the chat to exit; whether it
    /// exited successfully.
    pub fn quit(mut self) -> bool {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.success();
            }
            assert!(Instant::now() < deadline, "the chat did not quit on end of input");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ChatProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
