use super::*;

#[test]
fn parts_are_exact_and_exclude_the_line_break_before_delimiters() {
    let body = b"preamble\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n\r\n--b\r\nsig\r\n--b--\r\nepilogue";
    let parts = multipart_parts(body, "b");
    assert_eq!(
        parts,
        vec![
            &b"Content-Type: text/plain\r\n\r\nhello\r\n"[..],
            &b"sig"[..]
        ]
    );
    let lf = b"--b\nA\n--b\nB\n--b--\n";
    assert_eq!(multipart_parts(lf, "b"), vec![&b"A"[..], &b"B"[..]]);
    assert!(multipart_parts(b"no delimiters", "b").is_empty());
}

#[test]
fn base64_over_lines() {
    assert_eq!(decode_base64(b"aGVs\r\nbG8=\r\n").unwrap(), b"hello");
    assert_eq!(decode_base64(b"aGVsbG8").unwrap(), b"hello");
    assert!(decode_base64(b"aGV*").is_err());
    // Odd line widths take the slow path.
    assert_eq!(decode_base64(b"aGVsb\r\nG8=\r\n").unwrap(), b"hello");
}
