//! Just enough HTTP/1.1 for the load generator: frames one response at the
//! start of a receive buffer (status line, `Content-Length` or a chunked
//! body, `Connection: close`) and reads the `id` of a JSON body. The API's
//! answers always carry `Content-Length`; anything this cannot frame is
//! counted as a bad response rather than guessed at.

/// One complete response at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Bytes of the buffer it takes (head + body).
    pub len: usize,
    /// Where the body starts.
    pub body_start: usize,
    /// The server will close the connection after it.
    pub close: bool,
}

/// What the start of a receive buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole response yet.
    Incomplete,
    /// One whole response.
    Done(Response),
    /// Not an HTTP/1.1 response this client can frame.
    Bad,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Frames one response: status line, `Content-Length` or chunked body, `Connection: close`.
pub fn parse_response(buf: &[u8]) -> Parsed {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return if buf.len() > 64 * 1024 { Parsed::Bad } else { Parsed::Incomplete };
    };
    let head = &buf[..head_end];
    let body_start = head_end + 4;
    let mut lines = head.split(|&b| b == b'\n');
    let status_line = lines.next().unwrap_or_default();
    // "HTTP/1.1 202 Accepted"
    if !status_line.starts_with(b"HTTP/1.") || status_line.len() < 12 {
        return Parsed::Bad;
    }
    let Some(status) = std::str::from_utf8(&status_line[9..12]).ok().and_then(|s| s.parse::<u16>().ok()) else {
        return Parsed::Bad;
    };
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut close = status_line.starts_with(b"HTTP/1.0");
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            match std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()) {
                Some(n) => content_length = Some(n),
                None => return Parsed::Bad,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = value.eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case(b"connection") {
            close = value.eq_ignore_ascii_case(b"close");
        }
    }
    let len = if chunked {
        // The bench's own responses are never chunked; this only has to find the end.
        match find(&buf[body_start..], b"0\r\n\r\n") {
            Some(p) if p == 0 || buf[body_start + p - 1] == b'\n' => body_start + p + 5,
            _ => return Parsed::Incomplete,
        }
    } else if matches!(status, 100..=199 | 204 | 304) {
        body_start
    } else {
        match content_length {
            Some(n) => body_start + n,
            None => return Parsed::Bad,
        }
    };
    if buf.len() < len {
        return Parsed::Incomplete;
    }
    Parsed::Done(Response { status, len, body_start, close })
}

/// `"id"` of a JSON response body.
pub fn job_id(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(body).ok().and_then(|v| v["id"].as_str().map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_framed_by_content_length() {
        let r = b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 10\r\n\r\n{\"id\":\"a\"}";
        match parse_response(r) {
            Parsed::Done(d) => {
                assert_eq!((d.status, d.len, d.close), (202, r.len(), false));
                assert_eq!(&r[d.body_start..d.len], b"{\"id\":\"a\"}");
            }
            other => panic!("{other:?}"),
        }
        let ok = b"HTTP/1.1 202 Accepted\r\nContent-Length: 10\r\n\r\n{\"id\":\"a\"}HTTP/1.1 503";
        let Parsed::Done(d) = parse_response(ok) else { panic!("framed") };
        assert_eq!(job_id(&ok[d.body_start..d.len]).as_deref(), Some("a"));
        assert_eq!(parse_response(&ok[d.len..]), Parsed::Incomplete);
        assert_eq!(parse_response(b"HTTP/1.1 202 Accepted\r\nContent-Length: 10\r\n\r\n{\"id\""), Parsed::Incomplete);
        assert_eq!(parse_response(b"HTTP/1.1 202 Acc"), Parsed::Incomplete);
        let close = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(parse_response(close), Parsed::Done(Response { status: 503, close: true, .. })));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n";
        assert!(matches!(parse_response(chunked), Parsed::Done(Response { status: 200, len, .. }) if len == chunked.len()));
        assert_eq!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n"), Parsed::Bad);
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\n\r\n"), Parsed::Bad);
    }
}
