use super::*;

#[test]
fn recognises_the_command_only() {
    assert_eq!(
        arguments(b"XFORWARD ADDR=1.2.3.4\r\n"),
        Some(&b" ADDR=1.2.3.4\r\n"[..])
    );
    assert_eq!(arguments(b"xforward name=x\r\n"), Some(&b" name=x\r\n"[..]));
    assert_eq!(arguments(b"XFORWARDX\r\n"), None);
    assert_eq!(arguments(b"MAIL FROM:<a@b>\r\n"), None);
    assert_eq!(arguments(b"XFOR"), None);
}

#[test]
fn records_decoded_attributes() {
    let mut f = Forwarded::default();
    apply(
        b" NAME=client.example ADDR=IPV6:2001:db8::1 PROTO=ESMTP\r\n",
        &mut f,
    )
    .unwrap();
    apply(b" HELO=[UNAVAILABLE] LOGIN=alice+40agency\r\n", &mut f).unwrap();
    assert_eq!(f.name.as_deref(), Some("client.example"));
    assert_eq!(f.addr.as_deref(), Some("2001:db8::1"));
    assert_eq!(f.proto.as_deref(), Some("ESMTP"));
    assert_eq!(f.helo, None);
    assert_eq!(f.login.as_deref(), Some("alice@agency"));
    // A control character cannot start a new log line.
    apply(b" LOGIN=eve+0Aforged\r\n", &mut f).unwrap();
    assert_eq!(f.login.as_deref(), Some("eve?forged"));
}

#[test]
fn bad_input_changes_nothing() {
    let mut f = Forwarded::default();
    apply(b" LOGIN=alice\r\n", &mut f).unwrap();
    let before = f.clone();
    for bad in [
        &b"\r\n"[..],
        b" LOGIN\r\n",
        b" PORT=25\r\n",
        b" LOGIN=bob ADDR=+zz\r\n",
        b" LOGIN=+4\r\n",
    ] {
        let reply = apply(bad, &mut f).unwrap_err();
        assert_eq!(reply.code, 501, "{bad:?}");
        assert_eq!(f, before, "{bad:?}");
    }
    let long = format!(" NAME={}\r\n", "a".repeat(300));
    assert!(apply(long.as_bytes(), &mut f).is_err());
}
