//! RFC 3464 delivery status notifications for recipients refused by policy, sent back to the
//! original sender when a message is delivered to some recipients and not to others.
//!
//! The MIME structure, the header encoding and the transfer encoding of the text are
//! mail-builder's; the `message/delivery-status` report itself is a header-like block written
//! here (it must stay 7-bit; `message/global-delivery-status`, RFC 6533, when an address is
//! UTF-8).

use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart, MimePart};
use mail_builder::MessageBuilder;
use rand::RngCore;
use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;

/// One recipient the message could not be delivered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRecipient {
    pub address: String,
    /// RFC 3463 status, e.g. `5.7.1`.
    pub status: String,
    /// The SMTP reply that refused it, e.g. `550 5.7.1 no S/MIME certificate on file`.
    pub diagnostic: String,
    /// The reason in words for the person reading the notification.
    pub reason: String,
    /// `type;address` the sender gave as ORCPT (decoded), for `Original-Recipient`.
    pub original_recipient: Option<String>,
}

/// What the notification is about.
#[derive(Debug, Clone)]
pub struct DsnRequest<'a> {
    /// Our host name (`Reporting-MTA`).
    pub reporting_mta: &'a str,
    /// `From:` of the notification, e.g. `MAILER-DAEMON@gw.agency.example`.
    pub from: &'a str,
    /// Envelope sender of the original message: the notification goes there.
    pub original_sender: &'a str,
    /// The original message (only its header block is included).
    pub original_message: &'a [u8],
    pub failed: &'a [FailedRecipient],
    /// When the original arrived (`Arrival-Date`), if known.
    pub arrival_date: Option<OffsetDateTime>,
    /// The sender's ENVID (xtext, as received), for `Original-Envelope-Id` (RFC 3464 §2.2.1).
    pub envelope_id: Option<&'a str>,
}

/// A notification ready to send: with the null sender (RFC 3461 §6.2, so it can never
/// cause another notification) to `rcpt_to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn {
    /// Always `""`.
    pub mail_from: String,
    pub rcpt_to: String,
    pub message: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DsnError {
    /// Mail from the null sender (itself a bounce) never gets a notification.
    #[error("the original message has the null sender; no notification is sent")]
    NullSender,
    #[error("no failed recipients to report")]
    NoRecipients,
    #[error("the notification could not be written: {0}")]
    Build(String),
}

/// Most of the original header block included, so a huge header cannot make a huge bounce.
const MAX_ORIGINAL_HEADERS: usize = 64 * 1024;

/// Builds the notification. `now` is the `Date:`.
pub fn build_dsn(req: &DsnRequest<'_>, now: OffsetDateTime) -> Result<Dsn, DsnError> {
    let sender = one_line(req.original_sender);
    if sender.is_empty() {
        return Err(DsnError::NullSender);
    }
    if req.failed.is_empty() {
        return Err(DsnError::NoRecipients);
    }
    let host = ascii_line(req.reporting_mta);
    let headers = original_headers(req.original_message);

    let mut rng = rand::thread_rng();
    let boundary = loop {
        let b = format!("=_dsn_{:016x}{:016x}", rng.next_u64(), rng.next_u64());
        if !contains(&headers, b.as_bytes()) {
            break b;
        }
    };
    let message_id = format!(
        "dsn.{}.{:016x}@{}",
        now.unix_timestamp(),
        rng.next_u64(),
        host
    );

    let mut human = String::new();
    human.push_str("This is the mail system at ");
    human.push_str(&host);
    human.push_str(".\r\n\r\n");
    for f in req.failed {
        human.push_str(&format!(
            "Your message to {} could not be delivered: {}\r\n\r\n",
            one_line(&f.address),
            one_line(&f.reason)
        ));
    }
    human.push_str("The headers of your message are attached.\r\n");

    let mut status = String::new();
    if let Some(envid) = req.envelope_id {
        status.push_str(&format!("Original-Envelope-Id: {}\r\n", ascii_line(envid)));
    }
    status.push_str(&format!("Reporting-MTA: dns; {host}\r\n"));
    if let Some(arrival) = req.arrival_date.and_then(|d| d.format(&Rfc2822).ok()) {
        status.push_str(&format!("Arrival-Date: {arrival}\r\n"));
    }
    for f in req.failed {
        let code = if valid_permanent_status(&f.status) {
            f.status.as_str()
        } else {
            "5.0.0"
        };
        status.push_str("\r\n");
        if let Some(original) = &f.original_recipient {
            status.push_str(&format!("Original-Recipient: {}\r\n", ascii_line(original)));
        }
        // A UTF-8 address keeps its form with the `utf-8` type (RFC 6533 §3).
        let (kind, address) = if f.address.is_ascii() {
            ("rfc822", ascii_line(&f.address))
        } else {
            ("utf-8", one_line(&f.address))
        };
        status.push_str(&format!("Final-Recipient: {kind}; {address}\r\n"));
        status.push_str("Action: failed\r\n");
        status.push_str(&format!("Status: {code}\r\n"));
        status.push_str(&format!(
            "Diagnostic-Code: smtp; {}\r\n",
            ascii_line(&f.diagnostic)
        ));
    }

    // UTF-8 in the report needs the internationalised type (RFC 6533 §6).
    let (status_type, status_encoding) = if status.is_ascii() {
        ("message/delivery-status", "7bit")
    } else {
        ("message/global-delivery-status", "8bit")
    };
    let headers_encoding = if headers.is_ascii() { "7bit" } else { "8bit" };
    let report = MimePart::new(
        ContentType::new("multipart/report")
            .attribute("report-type", "delivery-status")
            .attribute("boundary", boundary),
        vec![
            MimePart::new("text/plain", human)
                .header("Content-Description", Raw::new("Notification")),
            MimePart::new(status_type, BodyPart::Binary(status.into_bytes().into()))
                .transfer_encoding(status_encoding)
                .header("Content-Description", Raw::new("Delivery report")),
            MimePart::new("text/rfc822-headers", BodyPart::Binary(headers.into()))
                .transfer_encoding(headers_encoding)
                .header(
                    "Content-Description",
                    Raw::new("Undelivered message headers"),
                ),
        ],
    );
    let out = MessageBuilder::new()
        .from(("Mail Delivery System", one_line(req.from).as_str()))
        .to(sender.as_str())
        .subject("Undelivered Mail Returned to Sender")
        .date(Date::new(now.unix_timestamp()))
        .message_id(message_id)
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .body(report)
        .write_to_vec()
        .map_err(|e| DsnError::Build(e.to_string()))?;

    Ok(Dsn {
        mail_from: String::new(),
        rcpt_to: sender,
        message: out,
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The header block of `message` (up to the empty line), CRLF line ends, ending in CRLF.
fn original_headers(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if out.len() + line.len() + 2 > MAX_ORIGINAL_HEADERS {
            break;
        }
        // A bare CR inside a header line would be read as a line end by some parsers.
        out.extend(line.iter().map(|&b| if b == b'\r' { b' ' } else { b }));
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Text safe for one header or body line: control characters become spaces.
fn one_line(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    s.trim().chars().take(900).collect()
}

/// Like [`one_line`], and 7-bit (`message/delivery-status` must be).
fn ascii_line(s: &str) -> String {
    one_line(s)
        .chars()
        .map(|c| if c.is_ascii() { c } else { '?' })
        .collect()
}

fn valid_permanent_status(s: &str) -> bool {
    crate::reply::enhanced_matches(550, s)
}

#[cfg(test)]
mod tests {
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
        let text = String::from_utf8(build_dsn(&req, OffsetDateTime::UNIX_EPOCH).unwrap().message)
            .unwrap();
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
}
