//! How a fuzz input says where to cut the byte stream into reads.
//!
//! Layout: one byte `n`, then `n % 16` chunk lengths of one byte each, then
//! the stream. Chunk lengths are `1 + 4 * b` bytes, and whatever the listed
//! chunks leave is the last read. Keeping the cuts as lengths (not
//! offsets) means a mutation of the stream does not move every cut.

/// A stream and the reads it arrives in.
#[derive(Debug)]
pub(crate) struct Split<'a> {
    lengths: &'a [u8],
    /// The bytes of the connection, in order.
    pub(crate) stream: &'a [u8],
}

impl<'a> Split<'a> {
    /// Read the cut lengths at the start of `data`; the rest is the stream.
    pub(crate) fn new(data: &'a [u8]) -> Self {
        let Some((&n, rest)) = data.split_first() else {
            return Split { lengths: &[], stream: &[] };
        };
        let n = usize::from(n % 16).min(rest.len());
        let (lengths, stream) = rest.split_at(n);
        Split { lengths, stream }
    }

    /// The stream cut into reads; never an empty read.
    pub(crate) fn chunks(&self) -> Vec<&'a [u8]> {
        let mut out = Vec::with_capacity(self.lengths.len() + 1);
        let mut rest = self.stream;
        for &b in self.lengths {
            if rest.is_empty() {
                break;
            }
            let (head, tail) = rest.split_at((1 + 4 * usize::from(b)).min(rest.len()));
            out.push(head);
            rest = tail;
        }
        if !rest.is_empty() {
            out.push(rest);
        }
        out
    }

    /// Offsets in the stream where one read ends and the next begins.
    pub(crate) fn cut_offsets(&self) -> Vec<usize> {
        let chunks = self.chunks();
        let mut at = 0;
        let mut cuts = Vec::with_capacity(chunks.len());
        for c in chunks.iter().take(chunks.len().saturating_sub(1)) {
            at += c.len();
            cuts.push(at);
        }
        cuts
    }
}
