use super::*;

#[test]
fn splits_folded_headers_and_body() {
    let msg = b"From: a@b\r\nSubject: one\r\n two\r\nContent-Type: text/plain\r\n\r\nbody\r\n";
    let s = split(msg);
    assert_eq!(s.headers.len(), 3);
    assert_eq!(s.get("subject").unwrap().value(), "one two");
    assert!(s.headers[2].is_content());
    assert_eq!(s.body, b"body\r\n");
}

#[test]
fn garbage_line_among_fields_is_skipped_without_loss() {
    // OpenSSL and NSS read on past a stray line: so do we, and the fields after it count.
    let s = split(b"From: a\r\nnot a header\r\nContent-Type: multipart/signed\r\n\r\nbody");
    assert_eq!(s.headers.len(), 3);
    assert_eq!(s.headers[1].name, "");
    assert_eq!(s.headers[1].raw, b"not a header\r\n");
    assert!(s.get("content-type").is_some());
    assert_eq!(s.body, b"body");
    let mut out = Vec::new();
    write_fields(&s.headers, &mut out);
    assert_eq!(
        out,
        b"From: a\r\nnot a header\r\nContent-Type: multipart/signed\r\n"
    );
    // No field at all: no header block, everything is body.
    let s = split(b"not a header\r\nmore\r\n");
    assert!(s.headers.is_empty());
    assert_eq!(s.body, b"not a header\r\nmore\r\n");
    let s = split(b"");
    assert!(s.headers.is_empty() && s.body.is_empty());
}
