//! A connection's unread bytes while its opening (PROXY header, HTTP
//! request) is incomplete.
//!
//! Most openings arrive in one read, so the bytes are parsed where the
//! driver put them, with no copy. Only when an earlier read left a partial
//! opening in the connection's `inbuf` are the new bytes appended to it;
//! and only when this read is still incomplete are its bytes copied into
//! `inbuf` to wait for the next.

/// The bytes to parse now: the kept partial opening and this read, joined.
pub(super) struct Unread<'a> {
    kept: Vec<u8>,
    read: &'a mut [u8],
}

impl<'a> Unread<'a> {
    /// Join what `inbuf` kept (taking it) with `read`.
    pub(super) fn join(inbuf: &mut Vec<u8>, read: &'a mut [u8]) -> Self {
        let mut kept = std::mem::take(inbuf);
        if !kept.is_empty() {
            kept.extend_from_slice(read);
        }
        Unread { kept, read }
    }

    /// Everything unread, in order.
    pub(super) fn bytes(&mut self) -> &mut [u8] {
        if self.kept.is_empty() {
            self.read
        } else {
            &mut self.kept
        }
    }

    /// All of it, to keep in `inbuf` until more arrives.
    pub(super) fn keep(self) -> Vec<u8> {
        if self.kept.is_empty() {
            self.read.to_vec()
        } else {
            self.kept
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Unread;

    #[test]
    fn a_first_read_is_parsed_in_place_and_copied_only_to_be_kept() {
        let mut inbuf = Vec::new();
        let mut read = *b"GET / HT";
        let mut unread = Unread::join(&mut inbuf, &mut read);
        assert_eq!(unread.bytes(), b"GET / HT");
        assert_eq!(unread.keep(), b"GET / HT");
    }

    #[test]
    fn a_later_read_is_appended_to_what_was_kept() {
        let mut inbuf = b"GET / HT".to_vec();
        let mut read = *b"TP/1.1\r\n";
        let mut unread = Unread::join(&mut inbuf, &mut read);
        assert!(inbuf.is_empty(), "taken from the connection");
        assert_eq!(unread.bytes(), b"GET / HTTP/1.1\r\n");
        unread.bytes()[0] = b'g';
        assert_eq!(unread.keep(), b"gET / HTTP/1.1\r\n");
    }
}
