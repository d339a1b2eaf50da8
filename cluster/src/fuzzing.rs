//! Fuzzing harness of the node-link frame decoder ([`frame::decode`]),
//! shared by the cargo-fuzz target `link_frames` (in `fuzz/`) and the
//! corpus replay test (`tests/fuzz_corpus.rs`), so the checked-in corpus
//! runs in every `cargo test`.
//!
//! A link reads whatever a peer (or anything that reaches the link port)
//! sends, so the decoder must hold up to arbitrary bytes. Besides not
//! panicking, the harness checks what the session loop relies on:
//! - a frame that decodes re-encodes to exactly the bytes it consumed, and
//!   `encoded_len` says how many (nothing in a frame is ignored);
//! - `Ok(None)` (wait for more) only while the declared frame is not all
//!   there yet, and never for a length over the maximum;
//! - decoding from a prefix never claims more bytes than the prefix holds;
//! - the same bytes as what a dialler sends an acceptor never pass the
//!   handshake (the acceptor's nonce is fresh, so no input carries a good
//!   MAC) and never make it panic.

use std::io::{self, Read, Write};

use crate::link::{
    frame::{self, encode, encoded_len, FrameError, LEN_BYTES},
    handshake, LinkKey,
};

/// The largest frame the harness accepts: small, so that length checks
/// are exercised by short inputs.
const MAX: usize = 4096;

/// Decode `data` as a stream of frames, checking every invariant above;
/// panics (which the fuzzer reports) when one does not hold.
pub fn link_frames(data: &[u8]) {
    let mut peer = Peer { rest: data };
    let accepted = handshake::accept(&mut peer, 1, 1, &LinkKey::derive(b"fuzz"));
    assert!(accepted.is_err(), "arbitrary bytes passed the handshake: {accepted:?}");
    let mut at = 0;
    while at < data.len() {
        let rest = &data[at..];
        match frame::decode(rest, MAX) {
            Ok(Some((f, used))) => {
                assert!(used > LEN_BYTES && used <= rest.len(), "claimed {used} of {} bytes", rest.len());
                let mut again = Vec::new();
                encode(&f, &mut again);
                assert_eq!(again, &rest[..used], "{f:?} does not re-encode to its bytes");
                assert_eq!(encoded_len(&f), used, "encoded_len of {f:?}");
                at += used;
            }
            Ok(None) => {
                if rest.len() >= LEN_BYTES {
                    let declared = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                    assert!(declared <= MAX, "waiting for a frame of {declared} bytes over the maximum");
                    assert!(rest.len() < LEN_BYTES + declared, "waiting although the frame is all there");
                }
                return;
            }
            Err(FrameError::TooLarge { len, max }) => {
                assert!(len > max, "refused {len} bytes as over {max}");
                return;
            }
            Err(_) => return,
        }
    }
}

/// A peer that sends `rest` and takes whatever it is written.
struct Peer<'a> {
    rest: &'a [u8],
}

impl Read for Peer<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.rest.read(buf)
    }
}

impl Write for Peer<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
