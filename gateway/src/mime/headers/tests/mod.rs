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
fn garbage_line_ends_headers_without_loss() {
    let s = split(b"From: a\r\nnot a header\r\nmore\r\n");
    assert_eq!(s.headers.len(), 1);
    assert_eq!(s.body, b"not a header\r\nmore\r\n");
    let s = split(b"");
    assert!(s.headers.is_empty() && s.body.is_empty());
}
