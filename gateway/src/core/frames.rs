//! The WebSocket frame layer of an open connection: framing rules,
//! fragmentation, control frames, UTF-8, close handshake.

use chatgw_protocol::close;

use super::{conn::Phase, Engine};
use crate::ws::frame::{self, Decoded, FrameError, Header, Opcode};

impl<S> Engine<S> {
    /// Bytes for an open connection: decode as many whole frames as there
    /// are, keep the rest for next time.
    pub(super) fn on_frame_bytes(&mut self, slot: usize, data: &mut [u8]) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        if c.inbuf.is_empty() {
            let used = self.process_frames(slot, data);
            if let Some(c) = self.conns.get_mut(slot) {
                if c.phase == Phase::Open && used < data.len() {
                    c.inbuf = data[used..].to_vec();
                }
            }
        } else {
            let mut buf = std::mem::take(&mut c.inbuf);
            buf.extend_from_slice(data);
            let used = self.process_frames(slot, &mut buf);
            if let Some(c) = self.conns.get_mut(slot) {
                if c.phase == Phase::Open && used < buf.len() {
                    buf.drain(..used);
                    c.inbuf = buf;
                }
            }
        }
    }

    /// Decode and handle whole frames at the start of `buf`; returns the
    /// bytes consumed.
    fn process_frames(&mut self, slot: usize, buf: &mut [u8]) -> usize {
        let max = self.ctx.settings.max_frame;
        let mut pos = 0;
        loop {
            if self.conns.get(slot).is_none_or(|c| c.phase != Phase::Open) {
                return buf.len();
            }
            let rest = &mut buf[pos..];
            let h = match frame::decode_header(rest, max) {
                Ok(Decoded::Header(h)) => h,
                Ok(Decoded::NeedMore) => return pos,
                Err(FrameError::TooBig) => {
                    self.fail(slot, close::TOO_BIG, "frame larger than the maximum");
                    return buf.len();
                }
                Err(FrameError::Protocol(why)) => {
                    self.fail(slot, close::PROTOCOL_ERROR, why);
                    return buf.len();
                }
            };
            let end = h.header_len + h.payload_len;
            if rest.len() < end {
                return pos;
            }
            let payload = &mut rest[h.header_len..end];
            frame::unmask(payload, h.mask, 0);
            self.on_frame(slot, h, payload);
            pos += end;
        }
    }

    /// Close the connection for a protocol violation.
    pub(super) fn fail(&mut self, slot: usize, code: u16, why: &str) {
        self.ctx.metrics.framing_errors.inc();
        if code == close::TOO_BIG {
            self.ctx.metrics.oversize_closes.inc();
        }
        self.close_with(slot, code, why);
    }

    fn on_frame(&mut self, slot: usize, h: Header, payload: &mut [u8]) {
        let max = self.ctx.settings.max_frame;
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        match h.opcode {
            Opcode::Text | Opcode::Binary => {
                if c.frag_opcode.is_some() {
                    return self.fail(slot, close::PROTOCOL_ERROR, "new data frame inside a fragmented message");
                }
                if h.fin {
                    self.on_message(slot, h.opcode, payload);
                } else {
                    c.frag_opcode = Some(h.opcode);
                    c.frag = payload.to_vec();
                }
            }
            Opcode::Continuation => {
                let Some(op) = c.frag_opcode else {
                    return self.fail(slot, close::PROTOCOL_ERROR, "continuation frame with nothing to continue");
                };
                if c.frag.len() + payload.len() > max {
                    return self.fail(slot, close::TOO_BIG, "message larger than the maximum");
                }
                c.frag.extend_from_slice(payload);
                if h.fin {
                    let mut whole = std::mem::take(&mut c.frag);
                    c.frag_opcode = None;
                    self.on_message(slot, op, &mut whole);
                }
            }
            Opcode::Ping => self.queue_frame(slot, Opcode::Pong, payload),
            Opcode::Pong => c.ping_sent = None,
            Opcode::Close => self.on_close_frame(slot, payload),
        }
    }

    fn on_close_frame(&mut self, slot: usize, payload: &[u8]) {
        match payload.len() {
            0 => self.close_with(slot, close::NORMAL, ""),
            1 => self.fail(slot, close::PROTOCOL_ERROR, "close frame with a one-byte payload"),
            _ => {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                if !frame::is_valid_close_code(code) {
                    self.fail(slot, close::PROTOCOL_ERROR, "invalid close code");
                } else if std::str::from_utf8(&payload[2..]).is_err() {
                    self.fail(slot, close::INVALID_PAYLOAD, "close reason is not valid UTF-8");
                } else {
                    self.close_with(slot, code, "");
                }
            }
        }
    }

    fn on_message(&mut self, slot: usize, opcode: Opcode, payload: &mut [u8]) {
        let echo = self.conns.get(slot).is_some_and(|c| c.echo);
        match opcode {
            Opcode::Text => match std::str::from_utf8(payload) {
                Err(_) => self.fail(slot, close::INVALID_PAYLOAD, "text frame is not valid UTF-8"),
                Ok(_) if echo => self.queue_frame(slot, Opcode::Text, payload),
                Ok(text) => self.on_text(slot, text),
            },
            _ if echo => self.queue_frame(slot, Opcode::Binary, payload),
            _ => self.fail(slot, close::UNSUPPORTED_DATA, "binary frames are not part of protocol v1"),
        }
    }
}
