//! Whether an upload's stored parts are the ones a completion names,
//! checked before CompleteMultipartUpload: S3 would otherwise publish an
//! object from whichever listed parts the tags name (two of three parts
//! make a valid, shorter object) and the upload would be gone. Checked
//! first, a missing or changed part leaves the upload open, so the client
//! `PUT`s the part and completes again.

use crate::MediaError;

use super::xml::quoted;

/// A part S3 holds for an upload (ListParts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredPart {
    pub(crate) number: u32,
    /// Quoted, as S3 sends it; `None` from a server that lists no tags
    /// (s3s-fs), which leaves the tag check to CompleteMultipartUpload.
    pub(crate) etag: Option<String>,
    pub(crate) size: u64,
}

/// Parts `1..=tags.len()` must be stored with the tags given, and hold
/// exactly `size` bytes together.
pub(crate) fn check(stored: &[StoredPart], tags: &[String], size: u64) -> Result<(), MediaError> {
    let mut total = 0u64;
    for (index, tag) in tags.iter().enumerate() {
        let number = index + 1;
        let Some(part) = stored.iter().find(|p| p.number as usize == number) else {
            return Err(MediaError::Incomplete(format!("part {number} is missing")));
        };
        if part.etag.as_ref().is_some_and(|etag| *etag != quoted(tag)) {
            return Err(MediaError::Incomplete(format!("part {number}'s tag does not match its bytes")));
        }
        total = total.saturating_add(part.size);
    }
    if tags.is_empty() {
        return Err(MediaError::Incomplete("no part tags given".to_owned()));
    }
    if total != size {
        return Err(MediaError::Incomplete(format!(
            "the {} parts named hold {total} bytes, {size} were announced",
            tags.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(number: u32, etag: &str, size: u64) -> StoredPart {
        StoredPart { number, etag: Some(format!("\"{etag}\"")), size }
    }

    fn refusal(result: Result<(), MediaError>) -> String {
        match result {
            Err(MediaError::Incomplete(why)) => why,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_the_part_that_is_missing_or_changed() {
        let stored = [part(1, "a", 5), part(3, "c", 2), part(2, "b", 5)];
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        check(&stored, &tags(&["a", "\"b\"", "c"]), 12).unwrap();
        assert_eq!(refusal(check(&stored[..2], &tags(&["a", "b", "c"]), 12)), "part 2 is missing");
        assert_eq!(refusal(check(&stored, &tags(&["a", "x", "c"]), 12)), "part 2's tag does not match its bytes");
        assert_eq!(
            refusal(check(&stored, &tags(&["a", "b"]), 12)),
            "the 2 parts named hold 10 bytes, 12 were announced"
        );
        assert_eq!(refusal(check(&stored, &[], 12)), "no part tags given");
        let untagged = [StoredPart { etag: None, ..part(1, "a", 12) }];
        check(&untagged, &tags(&["anything"]), 12).unwrap();
    }
}
