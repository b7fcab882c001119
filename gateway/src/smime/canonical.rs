//! RFC 8551 §3.1.1 canonical form: lines end in CRLF.

use std::borrow::Cow;

/// Feed `bytes` to `sink` with every bare LF turned into CRLF, without copying the input.
pub fn for_each_crlf_chunk(bytes: &[u8], mut sink: impl FnMut(&[u8])) {
    // `rest` starts the input or follows a bare LF, never a CR: the LFs `bare_lf` finds in it
    // are bare in `bytes` too.
    let mut rest = bytes;
    while let Some((line, [_lf, after @ ..])) =
        bare_lf(rest).and_then(|lf| rest.split_at_checked(lf))
    {
        sink(line);
        sink(b"\r\n");
        rest = after;
    }
    sink(rest);
}

/// `bytes` with bare LF turned into CRLF; borrowed when nothing needs changing.
pub fn to_crlf(bytes: &[u8]) -> Cow<'_, [u8]> {
    if bare_lf(bytes).is_none() {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 32);
    for_each_crlf_chunk(bytes, |c| out.extend_from_slice(c));
    Cow::Owned(out)
}

/// Offset of the first LF in `bytes` that no CR precedes.
fn bare_lf(bytes: &[u8]) -> Option<usize> {
    let mut offset = 0;
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        offset += line.len();
        match line {
            [.., b'\r', b'\n'] => {}
            [.., b'\n'] => return Some(offset - 1),
            _ => {}
        }
    }
    None
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
