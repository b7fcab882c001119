use super::*;

#[test]
fn der_input_is_borrowed() {
    let der = [0x30, 0x03, 0x02, 0x01, 0x05];
    assert!(matches!(normalise(&der).unwrap(), Cow::Borrowed(_)));
}

#[test]
fn indefinite_lengths_become_definite() {
    let ber = [0x30, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00];
    assert_eq!(&*normalise(&ber).unwrap(), &[0x30, 0x03, 0x02, 0x01, 0x05]);
}

#[test]
fn constructed_octet_strings_are_joined() {
    let ber = [
        0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0x00, 0x00,
    ];
    assert_eq!(&*normalise(&ber).unwrap(), &[0x04, 0x03, b'a', b'b', b'c']);
}

/// Difftest class "BER constructed string mixing types": OpenSSL joins segments of any tag,
/// NSS and X.690 accept only segments of the string's own universal type, and so do we.
#[test]
fn constructed_string_segments_must_be_of_the_same_universal_type() {
    for segment_tag in [0x0c, 0x13, 0x02, 0x84, 0x44] {
        let ber = [
            0x24,
            0x80,
            segment_tag,
            0x02,
            b'a',
            b'b',
            0x04,
            0x01,
            b'c',
            0x00,
            0x00,
        ];
        assert_eq!(
            normalise(&ber),
            Err(BerError::BadConstructedString(0)),
            "segment tag {segment_tag:#x}"
        );
    }
    // A constructed segment of the same type is allowed (X.690 §8.7.3.2).
    let nested = [
        0x24, 0x80, 0x24, 0x80, 0x04, 0x01, b'a', 0x00, 0x00, 0x04, 0x01, b'b', 0x00, 0x00,
    ];
    assert_eq!(&*normalise(&nested).unwrap(), &[0x04, 0x02, b'a', b'b']);
}

#[test]
fn encrypted_content_chunks_are_joined_but_explicit_tags_kept() {
    // SEQUENCE { OID, SEQUENCE {}, [0] { OCTET STRING "ab", OCTET STRING "c" } }
    let ber = [
        0x30, 0x80, 0x06, 0x01, 0x2a, 0x30, 0x00, 0xa0, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01,
        b'c', 0x00, 0x00, 0x00, 0x00,
    ];
    let der = normalise(&ber).unwrap();
    assert_eq!(
        &*der,
        &[0x30, 0x0a, 0x06, 0x01, 0x2a, 0x30, 0x00, 0x80, 0x03, b'a', b'b', b'c']
    );
    // SEQUENCE { OID, [0] EXPLICIT OCTET STRING } (eContent) stays as it is.
    let explicit = [
        0x30, 0x80, 0x06, 0x01, 0x2a, 0xa0, 0x80, 0x04, 0x01, b'x', 0, 0, 0, 0,
    ];
    assert_eq!(
        &*normalise(&explicit).unwrap(),
        &[0x30, 0x08, 0x06, 0x01, 0x2a, 0xa0, 0x03, 0x04, 0x01, b'x']
    );
}

#[test]
fn long_lengths_are_written_minimally() {
    let mut ber = vec![0x04, 0x82, 0x00, 0x03, 1, 2, 3];
    assert_eq!(&*normalise(&ber).unwrap(), &[0x04, 0x03, 1, 2, 3]);
    ber.truncate(5);
    assert!(normalise(&ber).is_err());
}

#[test]
fn hostile_input_is_bounded() {
    let deep: Vec<u8> = [0x30, 0x80].repeat(10_000);
    assert_eq!(normalise(&deep), Err(BerError::TooDeep));
    assert!(normalise(&[0x04, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
    assert!(normalise(&[0x04, 0x80]).is_err());
    assert!(normalise(&[0x30, 0x80, 0x02, 0x01]).is_err());
    assert!(normalise(&[]).is_err());
    // Trailing bytes are dropped, not refused (as the references do).
    assert_eq!(
        normalise(&[0x02, 0x01, 0x05, 0xff]).unwrap().as_ref(),
        &[0x02, 0x01, 0x05]
    );
}
