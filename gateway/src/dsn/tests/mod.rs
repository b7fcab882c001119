use super::*;
use mail_parser::{MessageParser, MimeHeaders};

fn failed(addr: &str, reason: &str) -> FailedRecipient {
    FailedRecipient {
        address: addr.into(),
        status: "5.7.1".into(),
        diagnostic: format!("550 5.7.1 {reason}"),
        reason: reason.into(),
        original_recipient: None,
    }
}

#[test]
fn dsn_parses_back_with_all_fields() {
    let original = b"From: Staff <staff@agency.example>\r\nTo: bob@partner.example\r\nSubject: Budget\r\nMessage-ID: <orig@agency.example>\r\n\r\nsecret body\r\n";
    let refused = [
        failed(
            "bob@partner.example",
            "no S/MIME certificate on file for bob@partner.example; ask them to send a signed message to cert-query@agency.example",
        ),
        failed("eve@gmail.com", "domain not approved — grüße"),
    ];
    let req = DsnRequest {
        reporting_mta: "gw.agency.example",
        from: "MAILER-DAEMON@gw.agency.example",
        original_sender: "staff@agency.example",
        original_message: original,
        failed: &refused,
        arrival_date: Some(OffsetDateTime::UNIX_EPOCH),
        envelope_id: None,
    };
    let dsn = build_dsn(&req, OffsetDateTime::UNIX_EPOCH).unwrap();
    assert_eq!(dsn.mail_from, "");
    assert_eq!(dsn.rcpt_to, "staff@agency.example");
    let raw = &dsn.message;
    // CRLF everywhere, no long lines, headers 7-bit.
    for line in raw.split(|&b| b == b'\n') {
        assert!(
            line.is_empty() || line.ends_with(b"\r") || line.starts_with(b"--"),
            "{line:?}"
        );
        assert!(line.len() <= 998);
    }
    assert!(raw.is_ascii());
    assert!(!contains(raw, b"secret body"));

    let msg = MessageParser::default().parse(raw).unwrap();
    assert_eq!(
        msg.from().unwrap().first().unwrap().address(),
        Some("MAILER-DAEMON@gw.agency.example")
    );
    assert_eq!(
        msg.to().unwrap().first().unwrap().address(),
        Some("staff@agency.example")
    );
    assert_eq!(
        msg.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-replied")
    );
    let ct = msg.content_type().unwrap();
    assert_eq!(ct.ctype(), "multipart");
    assert_eq!(ct.subtype(), Some("report"));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));

    let text = msg.body_text(0).unwrap();
    assert!(
        text.contains(
            "Your message to bob@partner.example could not be delivered: no S/MIME certificate"
        ),
        "{text}"
    );
    assert!(text.contains("cert-query@agency.example"));
    assert!(text.contains("grüße"));

    let kinds: Vec<String> = msg
        .parts
        .iter()
        .filter_map(|p| p.content_type())
        .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
        .collect();
    assert!(
        kinds.contains(&"message/delivery-status".to_string()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"text/rfc822-headers".to_string()),
        "{kinds:?}"
    );
    let status_part = msg
        .parts
        .iter()
        .find(|p| {
            p.content_type()
                .is_some_and(|c| c.subtype() == Some("delivery-status"))
        })
        .unwrap();
    let status = String::from_utf8_lossy(status_part.contents());
    for needle in [
        "Reporting-MTA: dns; gw.agency.example",
        "Final-Recipient: rfc822; bob@partner.example",
        "Final-Recipient: rfc822; eve@gmail.com",
        "Action: failed",
        "Status: 5.7.1",
        "Diagnostic-Code: smtp; 550 5.7.1 no S/MIME certificate",
        "Arrival-Date: Thu, 01 Jan 1970",
    ] {
        assert!(status.contains(needle), "{needle} missing in {status}");
    }
    let headers_part = msg
        .parts
        .iter()
        .find(|p| {
            p.content_type()
                .is_some_and(|c| c.subtype() == Some("rfc822-headers"))
        })
        .unwrap();
    let headers = String::from_utf8_lossy(headers_part.contents());
    assert!(headers.contains("Subject: Budget"));
    assert!(headers.contains("Message-ID: <orig@agency.example>"));
}

#[test]
fn header_injection_is_neutralised() {
    let refused = [FailedRecipient {
        address: "a@b.test\r\nBcc: x@y.test".into(),
        status: "bogus".into(),
        diagnostic: "550\r\nX-Evil: 1".into(),
        reason: "r".into(),
        original_recipient: Some("rfc822;o@b.test\r\nX-Evil: 2".into()),
    }];
    let req = DsnRequest {
        reporting_mta: "gw.test",
        from: "MAILER-DAEMON@gw.test",
        original_sender: "s@gw.test\r\nBcc: z@y.test",
        original_message: b"",
        failed: &refused,
        arrival_date: None,
        envelope_id: Some("id\r\nX-Evil: 3"),
    };
    let dsn = build_dsn(&req, OffsetDateTime::UNIX_EPOCH).unwrap();
    let text = String::from_utf8(dsn.message).unwrap();
    assert!(!text.contains("\r\nBcc:"));
    assert!(!text.contains("\r\nX-Evil"));
    assert!(text.contains("Status: 5.0.0"));
    assert!(text.contains("Original-Recipient: rfc822;o@b.test"));
    assert!(text.contains("Original-Envelope-Id: id"));
}

#[test]
fn refuses_null_sender_and_empty_list() {
    let mut req = DsnRequest {
        reporting_mta: "gw.test",
        from: "MAILER-DAEMON@gw.test",
        original_sender: "",
        original_message: b"",
        failed: &[],
        arrival_date: None,
        envelope_id: None,
    };
    assert_eq!(
        build_dsn(&req, OffsetDateTime::UNIX_EPOCH).unwrap_err(),
        DsnError::NullSender
    );
    req.original_sender = "a@b.test";
    assert_eq!(
        build_dsn(&req, OffsetDateTime::UNIX_EPOCH).unwrap_err(),
        DsnError::NoRecipients
    );
}

#[test]
fn quoted_printable_lines() {
    let qp = quoted_printable("é=x \r\n".repeat(40).as_bytes());
    assert!(qp.lines().all(|l| l.len() <= 76));
    assert!(qp.starts_with("=C3=A9=3Dx=20\r\n"));
}

#[test]
fn a_utf8_recipient_is_reported_in_a_global_delivery_status() {
    let refused = [failed("josé@bücher.example", "not approved")];
    let req = DsnRequest {
        reporting_mta: "gw.test",
        from: "MAILER-DAEMON@gw.test",
        original_sender: "s@gw.test",
        original_message: b"Subject: x\r\n\r\n",
        failed: &refused,
        arrival_date: None,
        envelope_id: None,
    };
    let text =
        String::from_utf8(build_dsn(&req, OffsetDateTime::UNIX_EPOCH).unwrap().message).unwrap();
    assert!(
        text.contains("Content-Type: message/global-delivery-status"),
        "{text}"
    );
    assert!(
        text.contains("Final-Recipient: utf-8; josé@bücher.example"),
        "{text}"
    );
    let ascii = [failed("bob@b.example", "not approved")];
    let text = String::from_utf8(
        build_dsn(
            &DsnRequest {
                failed: &ascii,
                ..req
            },
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap()
        .message,
    )
    .unwrap();
    assert!(
        text.contains("Content-Type: message/delivery-status\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Final-Recipient: rfc822; bob@b.example"),
        "{text}"
    );
}
