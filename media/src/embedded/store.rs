//! The embedded backend's files: uploads in progress and completed
//! objects, one directory each, under the media root.
//!
//! ```text
//! <root>/uploads/<media id>/meta     upload id, size, part size, content type, created
//! <root>/uploads/<media id>/<n>.<tag>      part n, complete and synced, named by its tag (hex SHA-256)
//! <root>/uploads/<media id>/<n>.<k>.partial  a part being received
//! <root>/objects/<media id>/...      the same, once completed
//! ```
//!
//! A part is written to a `.partial` file of its own and renamed to its
//! tag's name once all its bytes arrived and were synced, so a connection
//! cut mid-part leaves the complete copies (or none) and the client `PUT`s
//! the part again; a name that is the hash of the bytes cannot be paired
//! with other bytes, even by two `PUT`s of one part at once. Completion
//! picks, per part, the copy the client's tag names, writes the tags into
//! `meta` (atomically, by rename) and renames the upload's directory into
//! `objects/`: no copy, so a 256 MiB video completes in a millisecond, and
//! a crash leaves either the upload or the object. A `GET` reads the parts
//! in sequence.

use std::{
    fs,
    io::{self, Read, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use sha2::{Digest, Sha256};

use super::refusal::Refusal;
use crate::{random::hex, MediaError, MediaKey};

/// Bytes moved per read or write: the only buffer a transfer holds.
pub const BUFFER: usize = 64 * 1024;

/// What `meta` holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) upload: String,
    pub(crate) size: u64,
    pub(crate) part_size: u64,
    pub(crate) content_type: String,
    pub(crate) created: u64,
    /// The tag of each part, once completed.
    pub(crate) tags: Vec<String>,
}

impl Meta {
    pub(crate) fn parts(&self) -> u32 {
        self.size.div_ceil(self.part_size.max(1)).max(1) as u32
    }

    /// Bytes of part `n` (from 1).
    pub(crate) fn part_len(&self, n: u32) -> u64 {
        let start = u64::from(n - 1) * self.part_size;
        (self.size - start.min(self.size)).min(self.part_size)
    }

    fn encode(&self) -> String {
        format!(
            "upload={}\nsize={}\npart_size={}\ncontent_type={}\ncreated={}\ntags={}\n",
            self.upload,
            self.size,
            self.part_size,
            self.content_type,
            self.created,
            self.tags.join(",")
        )
    }

    fn decode(text: &str) -> Option<Meta> {
        let mut m = Meta {
            upload: String::new(),
            size: 0,
            part_size: 0,
            content_type: String::new(),
            created: 0,
            tags: Vec::new(),
        };
        for line in text.lines() {
            let (k, v) = line.split_once('=')?;
            match k {
                "upload" => m.upload = v.to_owned(),
                "size" => m.size = v.parse().ok()?,
                "part_size" => m.part_size = v.parse().ok()?,
                "content_type" => m.content_type = v.to_owned(),
                "created" => m.created = v.parse().ok()?,
                "tags" => m.tags = v.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect(),
                _ => {}
            }
        }
        (m.part_size > 0).then_some(m)
    }
}

/// Unix seconds of `t`.
pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The directories of one media root.
#[derive(Debug)]
pub(crate) struct Store {
    uploads: PathBuf,
    objects: PathBuf,
    partials: AtomicU64,
}

impl Store {
    pub(crate) fn open(root: &Path) -> io::Result<Store> {
        let (uploads, objects) = (root.join("uploads"), root.join("objects"));
        fs::create_dir_all(&uploads)?;
        fs::create_dir_all(&objects)?;
        Ok(Store { uploads, objects, partials: AtomicU64::new(0) })
    }

    pub(crate) fn upload_dir(&self, key: &MediaKey) -> PathBuf {
        self.uploads.join(key.to_string())
    }

    pub(crate) fn object_dir(&self, key: &MediaKey) -> PathBuf {
        self.objects.join(key.to_string())
    }

    pub(crate) fn create_upload(&self, key: &MediaKey, meta: &Meta) -> io::Result<()> {
        let dir = self.upload_dir(key);
        fs::create_dir(&dir)?;
        write_synced(&dir.join("meta"), meta.encode().as_bytes())
    }

    pub(crate) fn meta(dir: &Path) -> Result<Meta, MediaError> {
        match fs::read_to_string(dir.join("meta")) {
            Ok(text) => {
                Meta::decode(&text).ok_or_else(|| MediaError::Backend(format!("bad meta in {}", dir.display())))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(MediaError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// Receive part `n` of `key`'s upload, exactly `len` bytes from
    /// `body`, in [`BUFFER`]-sized steps; returns its tag.
    pub(crate) fn put_part(&self, key: &MediaKey, n: u32, len: u64, body: &mut dyn Read) -> Result<String, Refusal> {
        let dir = self.upload_dir(key);
        let meta = Self::meta(&dir).map_err(|e| match e {
            MediaError::NotFound => Refusal::NotFound,
            _ => Refusal::Io,
        })?;
        if n > meta.parts() || meta.part_len(n) != len {
            return Err(Refusal::BadRequest("this part is not in the upload"));
        }
        let k = self.partials.fetch_add(1, Ordering::Relaxed);
        let partial = dir.join(format!("{n}.{k}.partial"));
        let result = receive(&partial, len, body);
        let tag = match result {
            Ok(tag) => tag,
            Err(refusal) => {
                let _ = fs::remove_file(&partial);
                return Err(refusal);
            }
        };
        fs::rename(&partial, dir.join(format!("{n}.{tag}"))).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Refusal::NotFound,
            _ => Refusal::Io,
        })?;
        Ok(tag)
    }

    /// Check every part against `tags` and the sizes, then publish.
    pub(crate) fn complete(&self, key: &MediaKey, upload: &str, size: u64, tags: &[String]) -> Result<(), MediaError> {
        let dir = self.upload_dir(key);
        let meta = match Self::meta(&dir) {
            // Completed already (a retried completion): fine if it matches.
            Err(MediaError::NotFound) => {
                let done = Self::meta(&self.object_dir(key))?;
                return match done.upload == upload && done.size == size {
                    true => Ok(()),
                    false => Err(MediaError::NotFound),
                };
            }
            other => other?,
        };
        if meta.upload != upload {
            return Err(MediaError::NotFound);
        }
        if meta.size != size {
            return Err(MediaError::Incomplete(format!("the upload is of {} bytes, not {size}", meta.size)));
        }
        if tags.len() != meta.parts() as usize {
            return Err(MediaError::Incomplete(format!("{} parts, {} tags", meta.parts(), tags.len())));
        }
        let mut names: Vec<String> = Vec::new();
        for entry in fs::read_dir(&dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        let mut chosen = Vec::with_capacity(tags.len());
        for (i, want) in tags.iter().enumerate() {
            let n = i as u32 + 1;
            let want = want.trim_matches('"');
            let name = format!("{n}.{want}");
            let is_tag = want.len() == 64 && want.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            let len = fs::metadata(dir.join(&name)).map(|m| m.len()).ok().filter(|_| is_tag);
            if len != Some(meta.part_len(n)) {
                let prefix = format!("{n}.");
                let any = names.iter().any(|f| f.starts_with(&prefix) && !f.ends_with(".partial"));
                return Err(MediaError::Incomplete(match any {
                    true => format!("part {n}: the tag does not match the part"),
                    false => format!("part {n} is missing"),
                }));
            }
            chosen.push(want.to_owned());
        }
        let done = Meta { tags: chosen, ..meta };
        write_synced(&dir.join("meta.new"), done.encode().as_bytes())?;
        fs::rename(dir.join("meta.new"), dir.join("meta"))?;
        fs::rename(&dir, self.object_dir(key))?;
        sync_dir(&self.objects)?;
        Ok(())
    }

    /// Remove an upload and an object of `key`.
    pub(crate) fn delete(&self, key: &MediaKey) -> io::Result<()> {
        for dir in [self.upload_dir(key), self.object_dir(key)] {
            match fs::remove_dir_all(dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Remove uploads and objects created before `cutoff` (Unix seconds).
    pub(crate) fn delete_created_before(&self, cutoff: u64) -> io::Result<u64> {
        let mut deleted = 0;
        for parent in [&self.uploads, &self.objects] {
            for entry in fs::read_dir(parent)? {
                let dir = entry?.path();
                // A directory without meta is an upload being created.
                let Ok(meta) = Self::meta(&dir) else { continue };
                if meta.created < cutoff {
                    match fs::remove_dir_all(&dir) {
                        Ok(()) => deleted += 1,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(deleted)
    }

    /// Write bytes `start..end` of the completed object `key` to `out`.
    pub(crate) fn copy_range(
        &self,
        key: &MediaKey,
        meta: &Meta,
        start: u64,
        end: u64,
        out: &mut dyn Write,
    ) -> io::Result<u64> {
        let dir = self.object_dir(key);
        let mut buf = vec![0u8; BUFFER];
        let mut at = start;
        while at < end {
            let n = (at / meta.part_size) as u32 + 1;
            let offset = at % meta.part_size;
            let tag = meta.tags.get(n as usize - 1).ok_or_else(|| io::Error::other("a part without its tag"))?;
            let mut file = fs::File::open(dir.join(format!("{n}.{tag}")))?;
            io::Seek::seek(&mut file, io::SeekFrom::Start(offset))?;
            let mut left = (meta.part_len(n) - offset).min(end - at);
            while left > 0 {
                let want = left.min(BUFFER as u64) as usize;
                let got = file.read(&mut buf[..want])?;
                if got == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "part shorter than its meta says"));
                }
                out.write_all(&buf[..got])?;
                left -= got as u64;
                at += got as u64;
            }
        }
        Ok(end - start)
    }
}

/// Copy exactly `len` bytes of `body` into a new file at `path`, synced;
/// returns the hex SHA-256 of the bytes.
fn receive(path: &Path, len: u64, body: &mut dyn Read) -> Result<String, Refusal> {
    let mut file = fs::File::create(path).map_err(|_| Refusal::Io)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; BUFFER];
    let mut left = len;
    while left > 0 {
        let want = left.min(BUFFER as u64) as usize;
        let got = match body.read(&mut buf[..want]) {
            Ok(0) => return Err(Refusal::TooSmall { signed: len }),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(Refusal::Timeout)
            }
            Err(_) => return Err(Refusal::TooSmall { signed: len }),
        };
        hash.update(&buf[..got]);
        file.write_all(&buf[..got]).map_err(|_| Refusal::Io)?;
        left -= got as u64;
    }
    file.sync_data().map_err(|_| Refusal::Io)?;
    Ok(hex(&hash.finalize()))
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}
