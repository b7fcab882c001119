//! RFC 8551 §3.1.1 canonical form: lines end in CRLF.

use std::borrow::Cow;

/// Feed `bytes` to `sink` with every bare LF turned into CRLF, without copying the input.
pub fn for_each_crlf_chunk(bytes: &[u8], mut sink: impl FnMut(&[u8])) {
    let mut start = 0;
    let mut search = 0;
    while let Some(offset) = memchr_lf(&bytes[search..]) {
        let lf = search + offset;
        if lf == 0 || bytes[lf - 1] != b'\r' {
            sink(&bytes[start..lf]);
            sink(b"\r\n");
            start = lf + 1;
        }
        search = lf + 1;
    }
    sink(&bytes[start..]);
}

/// `bytes` with bare LF turned into CRLF; borrowed when nothing needs changing.
pub fn to_crlf(bytes: &[u8]) -> Cow<'_, [u8]> {
    let bare = bytes
        .iter()
        .enumerate()
        .any(|(i, b)| *b == b'\n' && (i == 0 || bytes[i - 1] != b'\r'));
    if !bare {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 32);
    for_each_crlf_chunk(bytes, |c| out.extend_from_slice(c));
    Cow::Owned(out)
}

fn memchr_lf(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|b| *b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_lf_becomes_crlf_and_crlf_stays() {
        assert_eq!(&*to_crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
        assert!(matches!(to_crlf(b"a\r\nb"), Cow::Borrowed(_)));
        assert_eq!(&*to_crlf(b"\n\n"), b"\r\n\r\n");
    }
}
