//! The XML bodies the backend sends and reads: S3's error document, the
//! answers of CreateMultipartUpload, ListObjectsV2 and
//! ListMultipartUploads, and the CompleteMultipartUpload request.
//!
//! Read with `quick-xml`'s serde support; unknown elements are ignored so
//! S3-compatible servers that add their own still parse.

use std::time::SystemTime;

use serde::Deserialize;

use super::{parts::StoredPart, utc::parse_iso8601};

#[derive(Deserialize)]
struct ErrorDocument {
    #[serde(rename = "Code")]
    code: Option<String>,
    #[serde(rename = "Message", default)]
    message: String,
}

/// `(Code, Message)` of an S3 error document, if `body` is one.
pub(crate) fn error(body: &[u8]) -> Option<(String, String)> {
    let document: ErrorDocument = quick_xml::de::from_reader(body).ok()?;
    Some((document.code?, document.message))
}

#[derive(Deserialize)]
struct InitiateResult {
    #[serde(rename = "UploadId")]
    upload_id: String,
}

/// The `UploadId` of a CreateMultipartUpload answer.
pub(crate) fn upload_id(body: &[u8]) -> Option<String> {
    quick_xml::de::from_reader::<_, InitiateResult>(body).ok().map(|r| r.upload_id).filter(|id| !id.is_empty())
}

/// One listed object or unfinished upload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Listed {
    pub(crate) key: String,
    /// The multipart upload id (empty for an object).
    pub(crate) upload_id: String,
    /// When it was written (object) or initiated (upload).
    pub(crate) created: SystemTime,
}

/// One page of a listing and where the next starts.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Page {
    pub(crate) items: Vec<Listed>,
    /// Continuation token (objects) or `(key-marker, upload-id-marker)`
    /// (uploads) when the listing is truncated.
    pub(crate) next: Option<(String, String)>,
}

#[derive(Deserialize)]
struct ObjectListing {
    #[serde(rename = "Contents", default)]
    contents: Vec<ListedObject>,
    #[serde(rename = "IsTruncated", default)]
    is_truncated: bool,
    #[serde(rename = "NextContinuationToken")]
    next_continuation_token: Option<String>,
}

#[derive(Deserialize)]
struct ListedObject {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "LastModified")]
    last_modified: String,
}

/// A ListObjectsV2 answer.
pub(crate) fn object_page(body: &[u8]) -> Option<Page> {
    let listing: ObjectListing = quick_xml::de::from_reader(body).ok()?;
    let items = listing
        .contents
        .into_iter()
        .map(|o| Some(Listed { created: parse_iso8601(&o.last_modified)?, key: o.key, upload_id: String::new() }))
        .collect::<Option<Vec<_>>>()?;
    let next = match (listing.is_truncated, listing.next_continuation_token) {
        (true, Some(token)) => Some((token, String::new())),
        (true, None) => return None,
        (false, _) => None,
    };
    Some(Page { items, next })
}

#[derive(Deserialize)]
struct UploadListing {
    #[serde(rename = "Upload", default)]
    uploads: Vec<ListedUpload>,
    #[serde(rename = "IsTruncated", default)]
    is_truncated: bool,
    #[serde(rename = "NextKeyMarker")]
    next_key_marker: Option<String>,
    #[serde(rename = "NextUploadIdMarker")]
    next_upload_id_marker: Option<String>,
}

#[derive(Deserialize)]
struct ListedUpload {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "UploadId")]
    upload_id: String,
    #[serde(rename = "Initiated")]
    initiated: String,
}

/// A ListMultipartUploads answer.
pub(crate) fn upload_page(body: &[u8]) -> Option<Page> {
    let listing: UploadListing = quick_xml::de::from_reader(body).ok()?;
    let items = listing
        .uploads
        .into_iter()
        .map(|u| Some(Listed { created: parse_iso8601(&u.initiated)?, key: u.key, upload_id: u.upload_id }))
        .collect::<Option<Vec<_>>>()?;
    let next = match (listing.is_truncated, listing.next_key_marker) {
        (true, Some(key)) => Some((key, listing.next_upload_id_marker.unwrap_or_default())),
        (true, None) => return None,
        (false, _) => None,
    };
    Some(Page { items, next })
}

#[derive(Deserialize)]
struct PartListing {
    #[serde(rename = "Part", default)]
    parts: Vec<ListedPart>,
    #[serde(rename = "IsTruncated", default)]
    is_truncated: bool,
    #[serde(rename = "NextPartNumberMarker")]
    next_part_number_marker: Option<u32>,
}

#[derive(Deserialize)]
struct ListedPart {
    #[serde(rename = "PartNumber")]
    number: u32,
    #[serde(rename = "ETag")]
    etag: Option<String>,
    #[serde(rename = "Size")]
    size: u64,
}

/// A ListParts answer: the parts and, when truncated, the next marker.
pub(crate) fn part_page(body: &[u8]) -> Option<(Vec<StoredPart>, Option<u32>)> {
    let listing: PartListing = quick_xml::de::from_reader(body).ok()?;
    let parts = listing
        .parts
        .into_iter()
        .map(|p| StoredPart { number: p.number, etag: p.etag.as_deref().map(quoted), size: p.size })
        .collect();
    let next = match (listing.is_truncated, listing.next_part_number_marker) {
        (true, Some(marker)) => Some(marker),
        (true, None) => return None,
        (false, _) => None,
    };
    Some((parts, next))
}

/// The CompleteMultipartUpload body: part `i + 1` with `tags[i]`.
pub(crate) fn complete_body(tags: &[String]) -> String {
    let mut body = String::from("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (index, tag) in tags.iter().enumerate() {
        body.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
            index + 1,
            quick_xml::escape::partial_escape(quoted(tag).as_str())
        ));
    }
    body.push_str("</CompleteMultipartUpload>");
    body
}

/// The DeleteObjects body for `keys`, in quiet mode (only failures are
/// reported).
pub(crate) fn delete_body(keys: &[String]) -> String {
    let mut body = String::from("<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>");
    for key in keys {
        body.push_str(&format!("<Object><Key>{}</Key></Object>", quick_xml::escape::escape(key.as_str())));
    }
    body.push_str("</Delete>");
    body
}

#[derive(Deserialize)]
struct DeleteResult {
    #[serde(rename = "Error", default)]
    errors: Vec<DeleteError>,
}

#[derive(Deserialize)]
struct DeleteError {
    #[serde(rename = "Key", default)]
    key: String,
    #[serde(rename = "Code", default)]
    code: String,
}

/// The `(Key, Code)` of each object a DeleteObjects answer failed to delete.
pub(crate) fn delete_failures(body: &[u8]) -> Option<Vec<(String, String)>> {
    let result: DeleteResult = quick_xml::de::from_reader(body).ok()?;
    Some(result.errors.into_iter().map(|e| (e.key, e.code)).collect())
}

/// An ETag in the quoted form S3 answers and compares (clients may hand
/// it back with or without the quotes).
pub(crate) fn quoted(tag: &str) -> String {
    format!("\"{}\"", tag.trim().trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn reads_errors_and_upload_ids() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message><UploadId>x</UploadId></Error>"#;
        assert_eq!(error(body), Some(("NoSuchUpload".into(), "The specified upload does not exist.".into())));
        assert_eq!(error(b""), None);
        assert_eq!(error(b"<CompleteMultipartUploadResult><ETag>\"a\"</ETag></CompleteMultipartUploadResult>"), None);
        let initiate = br#"<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
<Bucket>b</Bucket><Key>k</Key><UploadId>VXBsb2FkIElE</UploadId></InitiateMultipartUploadResult>"#;
        assert_eq!(upload_id(initiate).as_deref(), Some("VXBsb2FkIElE"));
        assert_eq!(upload_id(b"<x/>"), None);
    }

    #[test]
    fn reads_listings_with_continuations() {
        let objects = br#"<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>
<Contents><Key>g1.a</Key><LastModified>2013-05-24T00:00:00.000Z</LastModified><ETag>"e"</ETag><Size>3</Size></Contents>
<Contents><Key>g1.b &amp; c</Key><LastModified>2013-05-24T00:00:01.000Z</LastModified></Contents>
<IsTruncated>true</IsTruncated><NextContinuationToken>t/1</NextContinuationToken></ListBucketResult>"#;
        let page = object_page(objects).unwrap();
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.items[1].key, "g1.b & c");
        assert_eq!(page.items[0].created, UNIX_EPOCH + Duration::from_secs(1_369_353_600));
        assert_eq!(page.next, Some(("t/1".into(), String::new())));
        let empty = object_page(b"<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>").unwrap();
        assert_eq!(empty, Page { items: vec![], next: None });

        let uploads = br#"<ListMultipartUploadsResult><Bucket>b</Bucket>
<Upload><Key>d1-2.x</Key><UploadId>u1</UploadId><Initiated>2013-05-24T00:00:00.000Z</Initiated></Upload>
<IsTruncated>true</IsTruncated><NextKeyMarker>d1-2.x</NextKeyMarker><NextUploadIdMarker>u1</NextUploadIdMarker>
</ListMultipartUploadsResult>"#;
        let page = upload_page(uploads).unwrap();
        assert_eq!(page.items[0].upload_id, "u1");
        assert_eq!(page.next, Some(("d1-2.x".into(), "u1".into())));
        assert_eq!(object_page(b"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"), None);
    }

    #[test]
    fn reads_part_listings() {
        let body = br#"<ListPartsResult><UploadId>u</UploadId><NextPartNumberMarker>2</NextPartNumberMarker>
<IsTruncated>true</IsTruncated><Part><PartNumber>1</PartNumber><LastModified>2013-05-24T00:00:00.000Z</LastModified>
<ETag>"aa"</ETag><Size>5242880</Size></Part><Part><PartNumber>2</PartNumber><ETag>bb</ETag><Size>7</Size></Part>
</ListPartsResult>"#;
        let (parts, next) = part_page(body).unwrap();
        assert_eq!(
            parts,
            vec![
                StoredPart { number: 1, etag: Some("\"aa\"".into()), size: 5_242_880 },
                StoredPart { number: 2, etag: Some("\"bb\"".into()), size: 7 }
            ]
        );
        assert_eq!(next, Some(2));
        assert_eq!(
            part_page(b"<ListPartsResult><IsTruncated>false</IsTruncated></ListPartsResult>"),
            Some((vec![], None))
        );
    }

    #[test]
    fn batch_deletes_escape_keys_and_report_failures() {
        assert_eq!(
            delete_body(&["g1.a".into(), "a&b".into()]),
            "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>\
             <Object><Key>g1.a</Key></Object><Object><Key>a&amp;b</Key></Object></Delete>"
        );
        let answer = br#"<DeleteResult><Deleted><Key>x</Key></Deleted>
<Error><Key>g1.a</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error></DeleteResult>"#;
        assert_eq!(delete_failures(answer), Some(vec![("g1.a".into(), "AccessDenied".into())]));
        assert_eq!(delete_failures(b"<DeleteResult/>"), Some(vec![]));
    }

    #[test]
    fn completion_body_quotes_and_escapes_tags() {
        assert_eq!(
            complete_body(&["abc".into(), "\"d<e\"".into()]),
            "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Part><PartNumber>1</PartNumber><ETag>\"abc\"</ETag></Part>\
             <Part><PartNumber>2</PartNumber><ETag>\"d&lt;e\"</ETag></Part></CompleteMultipartUpload>"
        );
    }
}
