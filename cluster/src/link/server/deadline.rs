//! A socket whose reads and writes all end by one deadline: the handshake
//! must be through by then however its bytes trickle in. A timeout per read
//! would let a peer sending one byte just before each timeout hold its slot
//! among the pending handshakes (`pending`) for as long as it liked.

use std::{
    io::{self, Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

/// `stream`, with every read and write bounded by `deadline`.
pub(super) struct ByDeadline<'a> {
    pub(super) stream: &'a mut TcpStream,
    pub(super) deadline: Instant,
}

impl ByDeadline<'_> {
    /// The time left, as the socket's timeouts (never zero, which would
    /// mean none); an error once the deadline has passed.
    fn arm(&mut self) -> io::Result<()> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the handshake took too long"));
        }
        let left = left.max(Duration::from_millis(1));
        self.stream.set_read_timeout(Some(left))?;
        self.stream.set_write_timeout(Some(left))
    }
}

impl Read for ByDeadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm()?;
        self.stream.read(buf)
    }
}

impl Write for ByDeadline<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm()?;
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::{io::Read, net::TcpListener, time::Duration};

    use super::*;

    #[test]
    fn a_trickle_of_bytes_does_not_outlast_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let trickle = std::thread::spawn(move || {
            // One byte every 50 ms, for longer than the deadline.
            for _ in 0..20 {
                if client.write_all(b"x").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let started = Instant::now();
        let mut bounded = ByDeadline { stream: &mut server, deadline: started + Duration::from_millis(300) };
        let mut byte = [0u8; 1];
        let mut read = 0;
        let err = loop {
            match bounded.read(&mut byte) {
                Ok(n) => read += n,
                Err(e) => break e,
            }
        };
        assert!(read >= 1, "bytes before the deadline are read");
        assert!(matches!(err.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock), "{err}");
        assert!(started.elapsed() < Duration::from_millis(900), "ended by the deadline: {:?}", started.elapsed());
        drop(server);
        trickle.join().unwrap();
    }
}
