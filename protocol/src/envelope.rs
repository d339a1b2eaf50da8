//! The shape of an `encrypted` message's body (docs/PROTOCOL.md, "Encrypted
//! messages"): the envelope a client library writes around its Olm and
//! Megolm ciphertexts.
//!
//! The server never decrypts, but it refuses an envelope it could not hand
//! on intact: recipients that find a malformed envelope in their inbox
//! cannot tell a bug from an attack, and would find it again on every
//! replay. The check is strict (fields in the agreed order, no whitespace,
//! no escapes, nothing unknown) because one spelling per envelope keeps the
//! check a single forward scan: it runs on the event loop for every
//! encrypted `send`, reads each byte about once, with one table load per
//! byte of a string, and allocates nothing unless it refuses, whatever the
//! number of entries.
//!
//! What it does not check: that the ciphertexts decrypt, that `k` names
//! real devices, or that a device appears once. Those are the recipients'
//! business.

use std::fmt;

use crate::{DeviceName, UserId};

/// The only envelope version.
pub const ENVELOPE_VERSION: u8 = 1;

/// Most per-device ciphertexts (`k` entries) in one envelope.
pub const MAX_ENVELOPE_ENTRIES: usize = 256;

/// What a well-formed envelope says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvelopeSummary {
    /// `d`: the device that wrote it.
    pub device: DeviceName,
    /// Entries of `k`.
    pub entries: usize,
    /// Whether `g` (a Megolm ciphertext) is present.
    pub group: bool,
}

/// Check the decoded text of an envelope (the body string's content, not
/// its JSON literal). `Err` says what is wrong, for a `bad_field` message.
/// Allocates only to say what is wrong.
pub fn check_envelope(text: &str) -> Result<EnvelopeSummary, String> {
    let mut s = Scan { b: text.as_bytes(), at: 0 };
    s.lit(br#"{"v":"#, || "must start with {\"v\":".into())?;
    if s.next() != Some(b'1') || matches!(s.peek(), Some(b'0'..=b'9')) {
        return Err("`v` must be 1".into());
    }
    s.lit(br#","d":"#, || "`d` must follow `v`".into())?;
    let device = s.device(Field::Top("d"))?;
    s.lit(br#","k":["#, || "`k` (an array) must follow `d`".into())?;
    let mut entries = 0;
    if s.peek() == Some(b']') {
        s.at += 1;
    } else {
        loop {
            if entries == MAX_ENVELOPE_ENTRIES {
                return Err(format!("`k` must hold at most {MAX_ENVELOPE_ENTRIES} entries"));
            }
            s.entry(entries)?;
            entries += 1;
            match s.next() {
                Some(b',') => continue,
                Some(b']') => break,
                _ => return Err(format!("`k[{}]` must be followed by `,` or `]`", entries - 1)),
            }
        }
    }
    let group = match s.next() {
        Some(b'}') => false,
        Some(b',') => {
            s.lit(br#""g":{"s":"#, || "only `g` (an object starting with `s`) may follow `k`".into())?;
            s.base64(Field::Top("g.s"))?;
            s.lit(br#","c":"#, || "`g.c` must follow `g.s`".into())?;
            s.base64(Field::Top("g.c"))?;
            s.lit(b"}}", || "`g` must end after `c`, and the envelope after `g`".into())?;
            true
        }
        _ => return Err("`k` must be followed by `g` or the end of the envelope".into()),
    };
    if s.at != s.b.len() {
        return Err("must end after its last field".into());
    }
    if entries == 0 && !group {
        return Err("needs a non-empty `k` or a `g`".into());
    }
    Ok(EnvelopeSummary { device, entries, group })
}

/// A field's name in an error message, written only when one is.
#[derive(Clone, Copy)]
enum Field {
    /// `d`, `g.s`, `g.c`.
    Top(&'static str),
    /// `k[i].u`, `k[i].d`, ...
    Entry(usize, &'static str),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Top(name) => f.write_str(name),
            Field::Entry(i, name) => write!(f, "k[{i}].{name}"),
        }
    }
}

/// Which bytes a field's alphabet holds, one table per alphabet: the scan
/// checks each byte with one load.
type Alphabet = [bool; 256];

const fn alphabet(extra: &[u8]) -> Alphabet {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = (c as u8).is_ascii_alphanumeric();
        c += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}

/// Device names: `A-Z a-z 0-9 . _ -`.
const DEVICE: Alphabet = alphabet(b"._-");
/// Standard base64 without padding.
const BASE64: Alphabet = alphabet(b"+/");
/// Decimal digits.
const DIGITS: Alphabet = {
    let mut t = [false; 256];
    let mut c = b'0';
    while c <= b'9' {
        t[c as usize] = true;
        c += 1;
    }
    t
};

/// A forward scan over the envelope's bytes.
struct Scan<'a> {
    b: &'a [u8],
    at: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        self.at += usize::from(c.is_some());
        c
    }

    /// Exactly `expected` next, else `why()`.
    fn lit(&mut self, expected: &[u8], why: impl FnOnce() -> String) -> Result<(), String> {
        if self.b.get(self.at..self.at + expected.len()) != Some(expected) {
            return Err(why());
        }
        self.at += expected.len();
        Ok(())
    }

    /// A string of `alphabet`'s bytes, with its quotes; no escapes (no
    /// alphabet has `\` or `"`). Returns its content.
    fn string(&mut self, field: Field, rule: &str, alphabet: &Alphabet) -> Result<&str, String> {
        let not_a_string = || format!("`{field}` must be a string");
        if self.next() != Some(b'"') {
            return Err(not_a_string());
        }
        let rest = self.b.get(self.at..).unwrap_or_default();
        let len = rest.iter().position(|&c| c == b'"').ok_or_else(not_a_string)?;
        let content = &rest[..len];
        if !content.iter().all(|&c| alphabet[usize::from(c)]) {
            return Err(format!("`{field}` {rule}"));
        }
        self.at += len + 1;
        // Every alphabet is ASCII, so this never fails.
        std::str::from_utf8(content).map_err(|_| format!("`{field}` {rule}"))
    }

    fn device(&mut self, field: Field) -> Result<DeviceName, String> {
        let rule = crate::DEVICE_NAME_RULE;
        let name = self.string(field, rule, &DEVICE)?;
        DeviceName::new(name).ok_or_else(|| format!("`{field}` {rule}"))
    }

    /// Unpadded standard base64 with no bits set past the end, not empty.
    fn base64(&mut self, field: Field) -> Result<(), String> {
        let rule = "must be unpadded standard base64";
        let text = self.string(field, rule, &BASE64)?;
        let last = text.bytes().last().map_or(0, sextet);
        let spare_bits_clear = match text.len() % 4 {
            0 => !text.is_empty(),
            2 => last & 0x0f == 0,
            3 => last & 0x03 == 0,
            _ => false,
        };
        if !spare_bits_clear {
            return Err(format!("`{field}` {rule} (not empty, a whole number of bytes, no bits past the end)"));
        }
        Ok(())
    }

    /// `{"u":"<user>","d":"<device>","t":0|1,"c":"<base64>"}`.
    fn entry(&mut self, i: usize) -> Result<(), String> {
        self.lit(br#"{"u":"#, || format!("`k[{i}]` must be an object starting with `u`"))?;
        let user = self.string(Field::Entry(i, "u"), "", &DIGITS).map_err(|_| user_rule(i))?;
        if user.is_empty() || user.parse::<UserId>().is_err() {
            return Err(user_rule(i));
        }
        self.lit(br#","d":"#, || format!("`k[{i}].d` must follow `u`"))?;
        self.device(Field::Entry(i, "d"))?;
        self.lit(br#","t":"#, || format!("`k[{i}].t` must follow `d`"))?;
        if !matches!(self.next(), Some(b'0' | b'1')) || matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(format!("`k[{i}].t` must be 0 or 1"));
        }
        self.lit(br#","c":"#, || format!("`k[{i}].c` must follow `t`"))?;
        self.base64(Field::Entry(i, "c"))?;
        self.lit(b"}", || format!("`k[{i}]` must end after `c`"))
    }
}

fn user_rule(i: usize) -> String {
    format!("`k[{i}].u` must be a user id as a decimal string")
}

/// The value of a base64 character (only called on the alphabet).
fn sextet(c: u8) -> u8 {
    match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRY: &str = r#"{"u":"2","d":"phone","t":0,"c":"AAEC"}"#;

    fn with(k: &str, g: Option<&str>) -> String {
        match g {
            Some(g) => format!(r#"{{"v":1,"d":"laptop","k":[{k}],"g":{g}}}"#),
            None => format!(r#"{{"v":1,"d":"laptop","k":[{k}]}}"#),
        }
    }

    #[test]
    fn good_envelopes_pass() {
        let one = check_envelope(&with(ENTRY, None)).unwrap();
        assert_eq!((one.device.as_str(), one.entries, one.group), ("laptop", 1, false));
        let group = check_envelope(&with("", Some(r#"{"s":"c2Vzc2lvbg","c":"AQ"}"#))).unwrap();
        assert_eq!((group.entries, group.group), (0, true));
        let many = vec![ENTRY; MAX_ENVELOPE_ENTRIES].join(",");
        assert_eq!(check_envelope(&with(&many, Some(r#"{"s":"AAA","c":"AAAA"}"#))).unwrap().entries, 256);
        let pre_key = r#"{"u":"18446744073709551615","d":"a.b_c-D9","t":1,"c":"+/+/"}"#;
        assert!(check_envelope(&with(pre_key, None)).is_ok());
    }

    #[test]
    fn every_malformation_is_named() {
        let too_many = vec![ENTRY; MAX_ENVELOPE_ENTRIES + 1].join(",");
        let entry = |e: &str| with(e, None);
        for (text, why) in [
            (String::new(), "must start with"),
            (r#"{"v":2,"d":"laptop","k":[]}"#.into(), "`v` must be 1"),
            (r#"{"v":10,"d":"laptop","k":[]}"#.into(), "`v` must be 1"),
            (r#"{ "v":1,"d":"laptop","k":[]}"#.into(), "must start with"),
            (r#"{"d":"laptop","v":1,"k":[]}"#.into(), "must start with"),
            (r#"{"v":1,"d":"lap top","k":[]}"#.into(), "`d` must be 1 to 32"),
            (r#"{"v":1,"d":"","k":[]}"#.into(), "`d` must be 1 to 32"),
            (format!(r#"{{"v":1,"d":"{}","k":[]}}"#, "x".repeat(33)), "`d` must be 1 to 32"),
            (r#"{"v":1,"d":7,"k":[]}"#.into(), "`d` must be a string"),
            (r#"{"v":1,"d":"laptop","k":[]}"#.into(), "needs a non-empty `k` or a `g`"),
            (r#"{"v":1,"d":"laptop"}"#.into(), "`k` (an array) must follow `d`"),
            (r#"{"v":1,"d":"laptop","k":[],"x":1}"#.into(), "only `g`"),
            (with(ENTRY, None) + " ", "must end after its last field"),
            (with(ENTRY, Some(r#"{"s":"AAA","c":"AAAA","x":1}"#)), "`g` must end after `c`"),
            (with("", Some(r#"{"s":"AAA="}"#)), "`g.s` must be unpadded"),
            (with("", Some(r#"{"s":"AAA","c":"AAAA="}"#)), "`g.c` must be unpadded"),
            (with("", Some(r#"{"s":"AAA","c":""}"#)), "`g.c` must be unpadded"),
            (with("", Some(r#"{"s":"AAA","c":"A"}"#)), "`g.c` must be unpadded"),
            (with("", Some(r#"{"s":"AAA","c":"AB"}"#)), "`g.c` must be unpadded"),
            (with("", Some(r#"{"s":"AAA","c":"A-_A"}"#)), "`g.c` must be unpadded"),
            (with(&too_many, None), "at most 256 entries"),
            (entry(r#"{"u":"x","d":"phone","t":0,"c":"AAEC"}"#), "`k[0].u` must be a user id"),
            (entry(r#"{"u":"","d":"phone","t":0,"c":"AAEC"}"#), "`k[0].u` must be a user id"),
            (entry(r#"{"u":2,"d":"phone","t":0,"c":"AAEC"}"#), "`k[0].u` must be a user id"),
            (entry(r#"{"u":"99999999999999999999","d":"phone","t":0,"c":"AAEC"}"#), "`k[0].u` must be a user id"),
            (entry(r#"{"u":"2","d":"ph/one","t":0,"c":"AAEC"}"#), "`k[0].d` must be 1 to 32"),
            (entry(r#"{"u":"2","d":"phone","t":2,"c":"AAEC"}"#), "`k[0].t` must be 0 or 1"),
            (entry(r#"{"u":"2","d":"phone","t":01,"c":"AAEC"}"#), "`k[0].t` must be 0 or 1"),
            (entry(r#"{"u":"2","d":"phone","t":"0","c":"AAEC"}"#), "`k[0].t` must be 0 or 1"),
            (entry(r#"{"u":"2","d":"phone","c":"AAEC","t":0}"#), "`k[0].t` must follow `d`"),
            (entry(r#"{"u":"2","d":"phone","t":0,"c":"AAEC","x":1}"#), "`k[0]` must end after `c`"),
            (entry(&format!(r#"{ENTRY},{{"u":"2","d":"phone","t":0,"c":"AA=="}}"#)), "`k[1].c` must be unpadded"),
            (entry(&format!(r#"{ENTRY} "#)), "`k[0]` must be followed by `,` or `]`"),
            (entry("7"), "`k[0]` must be an object starting with `u`"),
        ] {
            let e = check_envelope(&text).expect_err(&text);
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
