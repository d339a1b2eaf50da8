//! Fuzzing harnesses of everything the gateway parses from the network,
//! shared by the cargo-fuzz targets in `fuzz/` and the corpus replay test
//! (`tests/fuzz_corpus.rs`): the checked-in corpus runs in every
//! `cargo test`, and a crash the fuzzer finds becomes a test by adding its
//! input to the corpus.
//!
//! Both harnesses drive a real [`Engine`](crate::core::Engine) the way the
//! epoll driver does, because that is where bytes arrive in arbitrary
//! pieces: the fuzzer chooses the cuts (see `split`), and the same bytes fed
//! in one read must make the engine write exactly the same bytes and leave
//! the connection in the same phase. On top of that each checks what holds
//! for any input: what the server writes is a valid response and valid
//! server frames within the limits, and the decoders' own invariants.
//!
//! Hidden from the docs: this is test code that lives here so the fuzz
//! targets and the tests share it.

mod decoder;
mod rig;
mod split;
mod written;

use split::Split;

use crate::ws::handshake;

/// Frame limits the `ws_frames` harness picks from (its first byte): the
/// smallest allowed by `--max-frame`, one around the 16-bit length form,
/// and the default.
const MAX_FRAME_CHOICES: [usize; 4] = [1024, 126, 65_536, 128 * 1024];
/// The frame limit of the `http_upgrade` harness.
const HTTP_MAX_FRAME: usize = 1024;

/// Harness of the HTTP request that opens a connection. Input: the cut
/// lengths (see `split`), then the bytes the client sends from the start.
pub fn http_upgrade(data: &[u8]) {
    let split = Split::new(data);
    let stream = split.stream;
    if let Ok(Some(req)) = handshake::parse(stream) {
        assert!(req.len <= stream.len());
        // The head alone parses to the same request, and any read that ends
        // inside it asks for more (the engine buffers on that answer).
        let head = &stream[..req.len];
        assert_eq!(handshake::parse(head), handshake::parse(stream));
        for cut in split.cut_offsets().into_iter().filter(|&c| c < req.len) {
            assert_eq!(handshake::parse(&stream[..cut]), Ok(None), "read ending at {cut} inside the head");
        }
        let _ = req.token();
        if let Some(key) = req.ws_key {
            assert_eq!(handshake::accept_key(key).len(), 28);
        }
    }

    let mut whole = rig::run(HTTP_MAX_FRAME, &[stream]);
    let mut pieces = rig::run(HTTP_MAX_FRAME, &split.chunks());
    whole.order_metric_lines();
    pieces.order_metric_lines();
    assert_eq!(whole, pieces, "one read and {} reads differ", split.chunks().len());
    if whole.written.is_empty() {
        return;
    }
    let (status, after) = written::response(&whole.written);
    if status == 101 {
        written::server_frames(after, HTTP_MAX_FRAME);
    } else {
        assert!(after.len() < 1 << 16, "an HTTP refusal stays small");
        assert_eq!(whole.phase, None, "the connection closes after an HTTP response");
    }
}

/// Harness of the PROXY protocol header (`crate::proxy`). Input: the bytes
/// a balancer sends first. A complete header is complete at exactly its
/// length and not before, and parses the same with or without what
/// follows it; a header is never longer than the bounds say.
pub fn proxy_header(data: &[u8]) {
    use crate::proxy::{parse, MAX_HEADER};
    let Ok(Some((header, used))) = parse(data) else { return };
    assert!(used <= data.len() && used <= MAX_HEADER, "took {used} of {} bytes", data.len());
    assert_eq!(parse(&data[..used]), Ok(Some((header, used))));
    for cut in 0..used {
        assert_eq!(parse(&data[..cut]), Ok(None), "a header cut at {cut} of {used}");
    }
}

/// What a `ws_frames` input sends to the echo endpoint and what the engine
/// writes back, so a test can send the same bytes to a real server and
/// compare.
#[derive(Debug)]
pub struct EchoCase {
    /// The frame limit the input chose.
    pub max_frame: usize,
    /// Every byte the client sends: the upgrade, then the input's stream.
    pub sent: Vec<u8>,
    /// Every byte the engine writes: the 101 response, then server frames.
    pub written: Vec<u8>,
    /// The engine closed the connection after writing.
    pub closed: bool,
}

/// The [`EchoCase`] of a `ws_frames` input; `None` for an empty input.
pub fn ws_frames_echo(data: &[u8]) -> Option<EchoCase> {
    let (&setup, rest) = data.split_first()?;
    let max_frame = MAX_FRAME_CHOICES[usize::from(setup & 3)];
    let stream = Split::new(rest).stream;
    let outcome = rig::run(max_frame, &[rig::ECHO_UPGRADE, stream]);
    Some(EchoCase {
        max_frame,
        sent: [rig::ECHO_UPGRADE, stream].concat(),
        written: outcome.written,
        closed: outcome.phase.is_none(),
    })
}

/// Harness of the WebSocket frame layer of an open connection. Input: one
/// byte choosing `max_frame`, the cut lengths, then the client's bytes after
/// the upgrade.
pub fn ws_frames(data: &[u8]) {
    let Some((&setup, rest)) = data.split_first() else {
        return;
    };
    let max_frame = MAX_FRAME_CHOICES[usize::from(setup & 3)];
    let split = Split::new(rest);
    let stream = split.stream;
    decoder::check_stream(stream, max_frame, usize::from(setup >> 2));

    let mut whole_reads = vec![rig::ECHO_UPGRADE];
    whole_reads.push(stream);
    let whole = rig::run(max_frame, &whole_reads);
    let mut piece_reads = vec![rig::ECHO_UPGRADE];
    piece_reads.extend(split.chunks());
    let pieces = rig::run(max_frame, &piece_reads);
    assert_eq!(whole, pieces, "one read and {} reads differ", piece_reads.len() - 1);

    let (status, after) = written::response(&whole.written);
    assert_eq!(status, 101);
    let frames = written::server_frames(after, max_frame);
    // The echo endpoint answers each data message once, so it never writes
    // more payload than it was sent.
    let echoed: usize = frames.iter().filter(|f| f.opcode != 0x8).map(|f| f.payload.len()).sum();
    assert!(echoed <= stream.len(), "echoed {echoed} bytes of a {}-byte stream", stream.len());
}
