use super::*;

#[test]
fn base64_lines_are_76_characters() {
    let out = base64_lines(&[7u8; 200]);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(lines[..lines.len() - 1].iter().all(|l| l.len() == 76));
}

#[test]
fn content_entity_moves_content_headers_and_defaults_type() {
    let e = content_entity(b"From: a\r\nSubject: s\r\n\r\nhi\n");
    assert_eq!(
        e,
        b"Content-Type: text/plain; charset=us-ascii\r\n\r\nhi\r\n"
    );
}
