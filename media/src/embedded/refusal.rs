//! Why the media listener refused a request: the status and the one-line
//! body (`<code>: <explanation>`) docs/MEDIA.md lists.

/// A refused media request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The path names no media object or part (404 `not_found`).
    NoSuchPath,
    /// No such object, or no upload in progress for it (404 `not_found`).
    NotFound,
    /// The URL is for another method (405 `wrong_method`).
    WrongMethod {
        /// The `Allow` header.
        allow: &'static str,
    },
    /// A malformed request or URL (400 `bad_request`).
    BadRequest(&'static str),
    /// The signature does not match the URL (403 `bad_signature`).
    BadSignature,
    /// The URL expired at this Unix second (403 `expired`).
    Expired {
        /// When.
        at: u64,
    },
    /// A `PUT` without `Content-Length` (411 `length_required`).
    LengthRequired,
    /// A body larger than the URL's size (413 `too_large`).
    TooLarge {
        /// The signed size.
        signed: u64,
    },
    /// A body smaller than the URL's size, announced or cut short (400
    /// `too_small`).
    TooSmall {
        /// The signed size.
        signed: u64,
    },
    /// A `Range` outside the object (416 `bad_range`).
    BadRange {
        /// The object's size.
        size: u64,
    },
    /// The request head did not arrive in time (408 `timeout`).
    Timeout,
    /// Every transfer slot is taken (503 `busy`).
    Busy,
    /// The disk failed (500 `io`).
    Io,
}

impl Refusal {
    /// The HTTP status and reason phrase.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            Refusal::NoSuchPath | Refusal::NotFound => (404, "Not Found"),
            Refusal::WrongMethod { .. } => (405, "Method Not Allowed"),
            Refusal::BadRequest(_) | Refusal::TooSmall { .. } => (400, "Bad Request"),
            Refusal::BadSignature | Refusal::Expired { .. } => (403, "Forbidden"),
            Refusal::LengthRequired => (411, "Length Required"),
            Refusal::TooLarge { .. } => (413, "Content Too Large"),
            Refusal::BadRange { .. } => (416, "Range Not Satisfiable"),
            Refusal::Timeout => (408, "Request Timeout"),
            Refusal::Busy => (503, "Service Unavailable"),
            Refusal::Io => (500, "Internal Server Error"),
        }
    }

    /// The stable code that starts the body (and labels the metric).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NoSuchPath | Refusal::NotFound => "not_found",
            Refusal::WrongMethod { .. } => "wrong_method",
            Refusal::BadRequest(_) => "bad_request",
            Refusal::BadSignature => "bad_signature",
            Refusal::Expired { .. } => "expired",
            Refusal::LengthRequired => "length_required",
            Refusal::TooLarge { .. } => "too_large",
            Refusal::TooSmall { .. } => "too_small",
            Refusal::BadRange { .. } => "bad_range",
            Refusal::Timeout => "timeout",
            Refusal::Busy => "busy",
            Refusal::Io => "io",
        }
    }

    /// The body: `<code>: <explanation>\n`.
    pub fn body(&self) -> String {
        let why = match self {
            Refusal::NoSuchPath => "no media URL has this path".to_owned(),
            Refusal::NotFound => "no such media object, or no upload of it in progress".to_owned(),
            Refusal::WrongMethod { allow } => format!("this URL takes {allow}"),
            Refusal::BadRequest(why) => (*why).to_owned(),
            Refusal::BadSignature => "the signature does not match this URL".to_owned(),
            Refusal::Expired { at } => format!("this URL expired at {at} (Unix seconds); ask for a new one"),
            Refusal::LengthRequired => "a PUT needs Content-Length".to_owned(),
            Refusal::TooLarge { signed } => format!("the body is larger than the {signed} bytes this URL is for"),
            Refusal::TooSmall { signed } => format!("the body is smaller than the {signed} bytes this URL is for"),
            Refusal::BadRange { size } => format!("the range is outside the object's {size} bytes"),
            Refusal::Timeout => "the request did not arrive in time".to_owned(),
            Refusal::Busy => "every transfer slot is taken; retry shortly".to_owned(),
            Refusal::Io => "the media store failed; retry".to_owned(),
        };
        format!("{}: {why}\n", self.code())
    }
}
