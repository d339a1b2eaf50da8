//! The S3 backend against a real S3-compatible server (moto, started per
//! test on a free port): bytes go through pre-signed URLs exactly as a
//! client sends them, and every check reads the server's answers.
//!
//! moto checks `Authorization`-header signatures (when told to, see
//! `header_signatures_are_checked`) but never the signature, the signed
//! `Content-Length` or the expiry of a pre-signed URL: s3s-fs, which
//! checks them as S3 does, is the server of
//! `presigned_urls_are_refused_when_tampered_expired_or_resized`.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    thread,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use chatgw_media::testing::{Moto, S3sFs, S3S_ACCESS_KEY, S3S_SECRET_KEY};
use chatgw_media::{
    MediaBackend, MediaConversation, MediaError, MediaKey, S3Backend, S3Config, S3Credentials, UploadSlot,
    S3_MIN_PART_SIZE,
};
use chatgw_protocol::GroupId;
use reqwest::{blocking::Client, StatusCode};

const MIB: u64 = 1 << 20;
const TTL: Duration = Duration::from_secs(600);

fn credentials(access_key_id: &str, secret_access_key: &str) -> S3Credentials {
    S3Credentials {
        access_key_id: access_key_id.to_owned(),
        secret_access_key: secret_access_key.to_owned(),
        session_token: None,
    }
}

fn http() -> Client {
    Client::builder().timeout(Duration::from_secs(120)).build().unwrap()
}

/// A moto server with an empty bucket, and a backend for it.
fn bucket() -> Option<(Moto, S3Backend)> {
    let moto = Moto::start()?;
    moto.create_bucket("media");
    let config = S3Config::parse(&moto.url("media")).unwrap();
    let backend = S3Backend::new(&config, credentials("test", "test")).unwrap();
    Some((moto, backend))
}

fn new_key() -> MediaKey {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut random = [0u8; 16];
    random[..8].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    random[8..].copy_from_slice(&nanos.to_be_bytes());
    MediaKey::new(MediaConversation::Group(GroupId(7)), random)
}

fn bytes(len: u64) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// `PUT` each part to its URL as a client does; returns the ETags.
fn upload(slot: &UploadSlot, data: &[u8]) -> Vec<String> {
    let http = http();
    data.chunks(slot.part_size as usize)
        .zip(&slot.part_urls)
        .map(|(part, url)| {
            let answer = http.put(url).body(part.to_vec()).send().unwrap();
            assert_eq!(answer.status(), StatusCode::OK, "PUT part: {}", answer.text().unwrap());
            answer.headers()["etag"].to_str().unwrap().to_owned()
        })
        .collect()
}

fn download(backend: &S3Backend, key: &MediaKey) -> Vec<u8> {
    let url = backend.download_url(key, TTL).unwrap().url;
    let answer = http().get(url).send().unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    answer.bytes().unwrap().to_vec()
}

/// The bucket's raw listing (`list-type=2` or `uploads`), read the way
/// moto lets anyone read it.
fn listing(moto: &Moto, query: &str) -> String {
    http().get(format!("{}/media?{query}", moto.endpoint)).send().unwrap().text().unwrap()
}

fn ranged(backend: &S3Backend, key: &MediaKey, first: u64, last: u64) -> Vec<u8> {
    let url = backend.download_url(key, TTL).unwrap().url;
    let answer = http().get(url).header("range", format!("bytes={first}-{last}")).send().unwrap();
    assert_eq!(answer.status(), StatusCode::PARTIAL_CONTENT);
    answer.bytes().unwrap().to_vec()
}

#[test]
fn small_upload_is_one_signed_put_and_downloads_by_range() {
    let Some((_moto, backend)) = bucket() else { return };
    let key = new_key();
    let data = bytes(1000);
    let before = SystemTime::now();
    let slot = backend.start_upload(&key, 1000, "application/octet-stream", 8 * MIB, TTL).unwrap();
    assert_eq!((slot.part_urls.len(), slot.upload_id.as_str()), (1, ""));
    let url = &slot.part_urls[0];
    assert!(url.starts_with(&format!("{}/media/{key}?", _moto.endpoint)), "{url}");
    for parameter in [
        "X-Amz-Algorithm=AWS4-HMAC-SHA256",
        "X-Amz-Credential=test%2F",
        "%2Fus-east-1%2Fs3%2Faws4_request",
        "X-Amz-Expires=600&",
        "X-Amz-SignedHeaders=content-length%3Bhost",
        "X-Amz-Signature=",
    ] {
        assert!(url.contains(parameter), "{parameter} missing from {url}");
    }
    // Signed in whole seconds: valid from the second the URL was signed in.
    let expires_in = slot.expires_at.duration_since(before - Duration::from_secs(1)).unwrap();
    assert!(expires_in >= TTL && expires_in < TTL + Duration::from_secs(5), "{expires_in:?}");
    assert_eq!(slot.expires_at.duration_since(UNIX_EPOCH).unwrap().subsec_nanos(), 0);

    assert!(matches!(backend.download_url(&key, TTL), Err(MediaError::NotFound)));
    let tags = upload(&slot, &data);
    backend.complete_upload(&key, "", 1000, &tags).unwrap();
    assert_eq!(download(&backend, &key), data);
    assert_eq!(ranged(&backend, &key, 10, 19), &data[10..20]);
}

#[test]
fn multipart_upload_of_20_mb_round_trips() {
    let Some((_moto, backend)) = bucket() else { return };
    let key = new_key();
    let size = 20_000_000;
    let data = bytes(size);
    let slot = backend.start_upload(&key, size, "video/mp4", 5 * MIB, TTL).unwrap();
    assert_eq!(slot.part_size, 5 * MIB);
    assert_eq!(slot.part_urls.len(), 4);
    assert!(!slot.upload_id.is_empty());
    for (number, url) in slot.part_urls.iter().enumerate() {
        assert!(url.contains(&format!("partNumber={}&", number + 1)) && url.contains("uploadId="), "{url}");
    }
    let tags = upload(&slot, &data);
    // Nothing is downloadable before completion.
    assert!(matches!(backend.download_url(&key, TTL), Err(MediaError::NotFound)));
    backend.complete_upload(&key, &slot.upload_id, size, &tags).unwrap();
    assert!(download(&backend, &key) == data, "downloaded bytes differ");
    // A range across the first part boundary.
    let boundary = 5 * MIB;
    assert_eq!(ranged(&backend, &key, boundary - 3, boundary + 2), &data[boundary as usize - 3..boundary as usize + 3]);
    // A completion retried after its answer was lost still succeeds.
    backend.complete_upload(&key, &slot.upload_id, size, &tags).unwrap();
}

#[test]
fn part_size_below_s3_minimum_is_raised_for_multipart() {
    let Some((_moto, backend)) = bucket() else { return };
    let small = backend.start_upload(&new_key(), 3 * MIB, "image/png", MIB, TTL).unwrap();
    assert_eq!((small.part_size, small.part_urls.len()), (S3_MIN_PART_SIZE, 1));
    let large = backend.start_upload(&new_key(), 12 * MIB, "image/png", MIB, TTL).unwrap();
    assert_eq!((large.part_size, large.part_urls.len()), (S3_MIN_PART_SIZE, 3));
}

#[test]
fn completion_with_a_wrong_or_missing_part_is_refused() {
    let Some((_moto, backend)) = bucket() else { return };
    let key = new_key();
    let size = 12 * MIB;
    let data = bytes(size);
    let slot = backend.start_upload(&key, size, "application/octet-stream", 5 * MIB, TTL).unwrap();
    assert_eq!(slot.part_urls.len(), 3);
    let tags = upload(&slot, &data);

    // Refused before anything is published: the upload stays open.
    let mut wrong = tags.clone();
    wrong[1] = "\"0123456789abcdef0123456789abcdef\"".to_owned();
    let refused = backend.complete_upload(&key, &slot.upload_id, size, &wrong);
    assert!(
        matches!(&refused, Err(MediaError::Incomplete(why)) if why == "part 2's tag does not match its bytes"),
        "{refused:?}"
    );
    let refused = backend.complete_upload(&key, &slot.upload_id, size, &tags[..2]);
    assert!(matches!(&refused, Err(MediaError::Incomplete(why)) if why.contains("10485760 bytes")), "{refused:?}");
    assert!(matches!(backend.download_url(&key, TTL), Err(MediaError::NotFound)));
    backend.complete_upload(&key, &slot.upload_id, size, &tags).unwrap();
    assert!(download(&backend, &key) == data, "downloaded bytes differ");

    // A part never uploaded: named, and the upload waits for it.
    let gap = new_key();
    let slot = backend.start_upload(&gap, size, "application/octet-stream", 5 * MIB, TTL).unwrap();
    let first_and_last = UploadSlot { part_urls: vec![slot.part_urls[0].clone()], ..slot.clone() };
    let mut tags = upload(&first_and_last, &data[..5 << 20]);
    let refused = backend.complete_upload(&gap, &slot.upload_id, size, &[tags[0].clone(), "\"x\"".into()]);
    assert!(matches!(&refused, Err(MediaError::Incomplete(why)) if why == "part 2 is missing"), "{refused:?}");
    let answer = http().put(&slot.part_urls[1]).body(data[5 << 20..10 << 20].to_vec()).send().unwrap();
    tags.push(answer.headers()["etag"].to_str().unwrap().to_owned());
    let answer = http().put(&slot.part_urls[2]).body(data[10 << 20..].to_vec()).send().unwrap();
    tags.push(answer.headers()["etag"].to_str().unwrap().to_owned());
    backend.complete_upload(&gap, &slot.upload_id, size, &tags).unwrap();

    // Single part: completion before the PUT, and with a wrong tag.
    let single = new_key();
    let slot = backend.start_upload(&single, 100, "text/plain", 5 * MIB, TTL).unwrap();
    let early = backend.complete_upload(&single, "", 100, &["\"x\"".to_owned()]);
    assert!(matches!(early, Err(MediaError::Incomplete(_))), "{early:?}");
    let tags = upload(&slot, &bytes(100));
    let wrong = backend.complete_upload(&single, "", 100, &["\"0123\"".to_owned()]);
    assert!(matches!(wrong, Err(MediaError::Incomplete(_))), "{wrong:?}");
    backend.complete_upload(&single, "", 100, &tags).unwrap();

    // An upload id the bucket never issued: S3 answers 404 NoSuchUpload
    // (NotFound); moto fails with 500. Either way nothing is completed.
    let unknown = new_key();
    assert!(backend.complete_upload(&unknown, "no-such-upload", size, &tags).is_err());
    assert!(matches!(backend.download_url(&unknown, TTL), Err(MediaError::NotFound)));
}

#[test]
fn delete_removes_the_object_and_its_unfinished_upload() {
    let Some((moto, backend)) = bucket() else { return };
    let done = new_key();
    let slot = backend.start_upload(&done, 10, "text/plain", 5 * MIB, TTL).unwrap();
    let tags = upload(&slot, &bytes(10));
    backend.complete_upload(&done, "", 10, &tags).unwrap();
    backend.delete(&done).unwrap();
    assert!(matches!(backend.download_url(&done, TTL), Err(MediaError::NotFound)));
    backend.delete(&done).unwrap();

    let unfinished = new_key();
    let slot = backend.start_upload(&unfinished, 6 * MIB, "text/plain", 5 * MIB, TTL).unwrap();
    let first = upload(&UploadSlot { part_urls: slot.part_urls[..1].to_vec(), ..slot.clone() }, &bytes(5 * MIB));
    assert!(listing(&moto, "uploads").contains(&slot.upload_id));
    backend.delete(&unfinished).unwrap();
    // The upload is gone: not listed, its part URLs and its completion
    // refused (S3: 404 NoSuchUpload; moto: 500).
    assert!(!listing(&moto, "uploads").contains(&slot.upload_id));
    let answer = http().put(&slot.part_urls[1]).body(bytes(MIB)).send().unwrap();
    assert!(!answer.status().is_success(), "{}", answer.status());
    assert!(backend.complete_upload(&unfinished, &slot.upload_id, 6 * MIB, &first).is_err());
    assert!(!listing(&moto, "list-type=2").contains(&unfinished.to_string()));
}

#[test]
fn retention_deletes_objects_and_unfinished_uploads_older_than_the_cutoff() {
    let Some((moto, backend)) = bucket() else { return };
    let old = new_key();
    let slot = backend.start_upload(&old, 10, "text/plain", 5 * MIB, TTL).unwrap();
    backend.complete_upload(&old, "", 10, &upload(&slot, &bytes(10))).unwrap();
    let abandoned = new_key();
    let abandoned_slot = backend.start_upload(&abandoned, 6 * MIB, "text/plain", 5 * MIB, TTL).unwrap();
    // Not a media id: retention leaves it alone.
    let other = format!("{}/media/notes.txt", moto.endpoint);
    let put = http().put(&other).header("content-type", "text/plain").body("keep").send().unwrap();
    assert!(put.status().is_success());

    // moto reports every unfinished upload as initiated 2010-11-10, so only
    // the old side of the cutoff is checked for uploads (the listing's
    // parsing is a unit test of xml.rs; s3s-fs has no ListMultipartUploads).
    // S3 times have whole seconds: step over a second on each side.
    thread::sleep(Duration::from_millis(1100));
    let cutoff = SystemTime::now();
    thread::sleep(Duration::from_millis(1100));
    let young = new_key();
    let slot = backend.start_upload(&young, 10, "text/plain", 5 * MIB, TTL).unwrap();
    backend.complete_upload(&young, "", 10, &upload(&slot, &bytes(10))).unwrap();

    assert!(listing(&moto, "uploads").contains(&abandoned_slot.upload_id));
    assert_eq!(backend.delete_created_before(cutoff).unwrap(), 2);
    assert!(matches!(backend.download_url(&old, TTL), Err(MediaError::NotFound)));
    assert_eq!(download(&backend, &young), bytes(10));
    let objects = listing(&moto, "list-type=2");
    assert!(objects.contains("<Key>notes.txt</Key>") && objects.contains(&young.to_string()), "{objects}");
    assert!(!listing(&moto, "uploads").contains(&abandoned_slot.upload_id));
    assert!(listing(&moto, "uploads").contains("<IsTruncated>false</IsTruncated>"));
    assert_eq!(backend.delete_created_before(cutoff).unwrap(), 0);
}

#[test]
fn retention_pages_through_listings_of_more_than_1000_keys() {
    let Some((moto, backend)) = bucket() else { return };
    let keys: Vec<MediaKey> = (0..1010).map(|_| new_key()).collect();
    thread::scope(|scope| {
        for chunk in keys.chunks(keys.len().div_ceil(4)) {
            let backend = &backend;
            scope.spawn(move || {
                for key in chunk {
                    upload(&backend.start_upload(key, 3, "text/plain", 5 * MIB, TTL).unwrap(), b"abc");
                }
            });
        }
    });
    let first_page = listing(&moto, "list-type=2");
    assert!(first_page.contains("<IsTruncated>true</IsTruncated>"), "one page holds every key");
    assert_eq!(backend.delete_created_before(SystemTime::now() + Duration::from_secs(60)).unwrap(), 1010);
    assert!(!listing(&moto, "list-type=2").contains("<Key>"));
}

/// Send an IAM or STS query action to moto (it routes by the credential
/// scope of the `Authorization` header; these run before its checks are on).
fn query_action(moto: &Moto, service: &str, form: &[(&str, &str)]) -> String {
    let version = if service == "sts" { "2011-06-15" } else { "2010-05-08" };
    let mut body = vec![("Version", version)];
    body.extend_from_slice(form);
    let encoded: Vec<String> = body
        .iter()
        .map(|(n, v)| format!("{n}={}", v.bytes().map(|b| format!("%{b:02X}")).collect::<String>()))
        .collect();
    let scope = format!("setup/20260101/us-east-1/{service}/aws4_request");
    let answer = http()
        .post(&moto.endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", format!("AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host, Signature=0"))
        .body(encoded.join("&"))
        .send()
        .unwrap();
    let status = answer.status();
    let text = answer.text().unwrap();
    assert!(status.is_success(), "{service} {form:?}: {status} {text}");
    text
}

fn iam(moto: &Moto, form: &[(&str, &str)]) -> String {
    query_action(moto, "iam", form)
}

const ALLOW_S3: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;

fn element<'a>(xml: &'a str, name: &str) -> &'a str {
    let start = xml.find(&format!("<{name}>")).unwrap() + name.len() + 2;
    &xml[start..start + xml[start..].find('<').unwrap()]
}

#[test]
fn header_signatures_are_checked() {
    let Some((moto, _)) = bucket() else { return };
    iam(&moto, &[("Action", "CreateUser"), ("UserName", "gateway")]);
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    iam(
        &moto,
        &[("Action", "PutUserPolicy"), ("UserName", "gateway"), ("PolicyName", "media"), ("PolicyDocument", policy)],
    );
    let created = iam(&moto, &[("Action", "CreateAccessKey"), ("UserName", "gateway")]);
    let (id, secret) = (element(&created, "AccessKeyId"), element(&created, "SecretAccessKey"));
    let config = S3Config::parse(&moto.url("media")).unwrap();
    let backend = S3Backend::new(&config, credentials(id, secret)).unwrap();

    // A client's single-part upload while moto checks nothing (with checks
    // on, moto fails every request without an `Authorization` header).
    let single = new_key();
    let slot = backend.start_upload(&single, 10, "text/plain", 5 * MIB, TTL).unwrap();
    let tags = upload(&slot, &bytes(10));
    moto.check_signatures();

    // Every call of the backend is now verified: HeadObject, CreateMultipartUpload,
    // ListObjectsV2, DeleteObjects, ListMultipartUploads,
    // AbortMultipartUpload, DeleteObject, CompleteMultipartUpload.
    backend.complete_upload(&single, "", 10, &tags).unwrap();
    backend.download_url(&single, TTL).unwrap();
    let multi = new_key();
    let slot = backend.start_upload(&multi, 6 * MIB, "text/plain", 5 * MIB, TTL).unwrap();
    assert_eq!(backend.delete_created_before(SystemTime::now() + Duration::from_secs(60)).unwrap(), 2);
    assert!(matches!(backend.download_url(&single, TTL), Err(MediaError::NotFound)));
    backend.delete(&multi).unwrap();
    assert!(backend.complete_upload(&multi, &slot.upload_id, 6 * MIB, &["\"a\"".into()]).is_err());

    let forged = S3Backend::new(&config, credentials(id, "not-the-secret")).unwrap();
    let refused = forged.start_upload(&new_key(), 6 * MIB, "text/plain", 5 * MIB, TTL);
    assert!(matches!(&refused, Err(MediaError::Backend(why)) if why.contains("SignatureDoesNotMatch")), "{refused:?}");
    let refused = forged.delete_created_before(SystemTime::now());
    assert!(matches!(&refused, Err(MediaError::Backend(why)) if why.contains("403")), "{refused:?}");
    let unknown = S3Backend::new(&config, credentials("AKIAUNKNOWNKEY000000", secret)).unwrap();
    assert!(matches!(unknown.download_url(&multi, TTL), Err(MediaError::Backend(_))));
}

#[test]
fn temporary_credentials_sign_their_session_token() {
    let Some((moto, _)) = bucket() else { return };
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#;
    iam(&moto, &[("Action", "CreateRole"), ("RoleName", "gateway"), ("AssumeRolePolicyDocument", trust)]);
    iam(
        &moto,
        &[("Action", "PutRolePolicy"), ("RoleName", "gateway"), ("PolicyName", "media"), ("PolicyDocument", ALLOW_S3)],
    );
    let assumed = query_action(
        &moto,
        "sts",
        &[("Action", "AssumeRole"), ("RoleArn", "arn:aws:iam::123456789012:role/gateway"), ("RoleSessionName", "gw")],
    );
    let temporary = S3Credentials {
        access_key_id: element(&assumed, "AccessKeyId").to_owned(),
        secret_access_key: element(&assumed, "SecretAccessKey").to_owned(),
        session_token: Some(element(&assumed, "SessionToken").to_owned()),
    };
    moto.check_signatures();
    let config = S3Config::parse(&moto.url("media")).unwrap();
    let backend = S3Backend::new(&config, temporary.clone()).unwrap();
    let key = new_key();
    let slot = backend.start_upload(&key, 6 * MIB, "text/plain", 5 * MIB, TTL).unwrap();
    assert!(slot.part_urls.iter().all(|url| url.contains("X-Amz-Security-Token=")));
    backend.delete(&key).unwrap();

    // moto compares the token with the one it issued.
    let stale = S3Credentials { session_token: Some("other-token".to_owned()), ..temporary };
    let refused = S3Backend::new(&config, stale).unwrap().start_upload(&new_key(), 6 * MIB, "text/plain", 5 * MIB, TTL);
    assert!(matches!(&refused, Err(MediaError::Backend(why)) if why.contains("InvalidToken")), "{refused:?}");
}

#[test]
fn presigned_urls_are_refused_when_tampered_expired_or_resized() {
    let Some(server) = S3sFs::start() else { return };
    let config = S3Config::parse(&server.url()).unwrap();
    let backend = S3Backend::new(&config, credentials(S3S_ACCESS_KEY, S3S_SECRET_KEY)).unwrap();
    let http = http();
    let refused = |answer: reqwest::blocking::Response| {
        let status = answer.status();
        let text = answer.text().unwrap();
        assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
        text
    };

    let key = new_key();
    let data = bytes(100);
    let slot = backend.start_upload(&key, 100, "text/plain", 5 * MIB, TTL).unwrap();
    let url = &slot.part_urls[0];
    // A body of another size than the one signed.
    refused(http.put(url).body(bytes(99)).send().unwrap());
    // A changed signature, and the signature of another object.
    let flipped = if url.ends_with('0') { '1' } else { '0' };
    refused(http.put(format!("{}{flipped}", &url[..url.len() - 1])).body(data.clone()).send().unwrap());
    let other = new_key().to_string();
    refused(http.put(url.replace(&key.to_string(), &other)).body(data.clone()).send().unwrap());
    // As signed: stored, completed (HeadObject signed and checked), downloadable.
    let tags = upload(&slot, &data);
    backend.complete_upload(&key, "", 100, &tags).unwrap();
    assert_eq!(download(&backend, &key), data);
    assert_eq!(ranged(&backend, &key, 5, 9), &data[5..10]);

    // Expiry: URLs valid for one second stop working after it.
    let short = Duration::from_secs(1);
    let late = new_key();
    let late_slot = backend.start_upload(&late, 100, "text/plain", 5 * MIB, short).unwrap();
    let late_download = backend.download_url(&key, short).unwrap().url;
    thread::sleep(Duration::from_millis(2100));
    assert!(refused(http.put(&late_slot.part_urls[0]).body(data.clone()).send().unwrap()).contains("expired"));
    assert!(refused(http.get(&late_download).send().unwrap()).contains("expired"));
    assert_eq!(http.get(backend.download_url(&key, TTL).unwrap().url).send().unwrap().status(), StatusCode::OK);

    // Multipart: each part URL takes exactly its part's size. (Wrong bodies
    // stay small: the server answers before reading a body, and a large one
    // still being sent would meet a closed connection instead.)
    let big = new_key();
    let size = 10 * MIB + 100;
    let data = bytes(size);
    let slot = backend.start_upload(&big, size, "application/octet-stream", 5 * MIB, TTL).unwrap();
    assert_eq!(slot.part_urls.len(), 3);
    refused(http.put(&slot.part_urls[2]).body(bytes(101)).send().unwrap());
    refused(http.put(&slot.part_urls[0]).body(bytes(100)).send().unwrap());
    let tags = upload(&slot, &data);
    backend.complete_upload(&big, &slot.upload_id, size, &tags).unwrap();
    assert!(download(&backend, &big) == data, "downloaded bytes differ");
}
