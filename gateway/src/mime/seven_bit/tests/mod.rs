use super::*;

#[test]
fn eight_bit_text_becomes_quoted_printable() {
    let entity = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße\r\n";
    let out = to_seven_bit(entity.as_bytes()).unwrap();
    let text = String::from_utf8(out.to_vec()).unwrap();
    assert!(text.contains("Content-Transfer-Encoding: quoted-printable"));
    assert!(text.contains("Gr=C3=BC=C3=9Fe"));
    assert!(is_seven_bit_safe(text.as_bytes()));
    let parsed = MessageParser::default().parse(text.as_bytes()).unwrap();
    assert_eq!(parsed.body_text(0).unwrap(), "Grüße\r\n");
}

#[test]
fn seven_bit_input_is_untouched() {
    let entity = b"Content-Type: text/plain\r\n\r\nhello\r\n";
    assert!(matches!(to_seven_bit(entity).unwrap(), Cow::Borrowed(_)));
}

#[test]
fn binary_attachment_in_multipart_becomes_base64() {
    let mut entity = b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n".to_vec();
    entity.extend_from_slice(&[0, 1, 2, 0xff, 0xfe]);
    entity.extend_from_slice(b"\r\n--b--\r\n");
    let out = to_seven_bit(&entity).unwrap();
    assert!(is_seven_bit_safe(&out));
    let parsed = MessageParser::default().parse(&out[..]).unwrap();
    assert_eq!(
        parsed.attachment(0).unwrap().contents(),
        &[0, 1, 2, 0xff, 0xfe]
    );
}

#[test]
fn quoted_printable_soft_breaks_long_lines() {
    let long = vec![b'a'; 200];
    let qp = quoted_printable(&long);
    assert!(qp.split(|b| *b == b'\n').all(|l| l.len() <= 77));
}
