//! The one log line per message: a queue id that the `250` reply also carries (as Postfix
//! logs `250 2.0.0 Ok: queued as <id>` for its next hop), the Message-ID, the direction, the
//! outcome and the reason. Everything logged while the message is handled runs in its
//! `message` span, so those lines carry the queue id too.

use crate::receive::Reply;

/// Longest Message-ID logged; the rest is cut (it comes from outside).
const MAX_LOGGED_MESSAGE_ID: usize = 256;

/// A queue id: 12 upper-case hex digits, random (unique enough to find one message's lines).
pub fn new_queue_id() -> String {
    format!("{:012X}", rand::random::<u64>() & 0xFFFF_FFFF_FFFF)
}

/// The message's Message-ID for the log: unfolded, control characters removed, bounded;
/// `-` when there is none.
pub fn message_id(message: &[u8]) -> String {
    let split = crate::mime::headers::split(message);
    let Some(field) = split.get("Message-ID") else {
        return "-".into();
    };
    let value: String = field
        .value()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_LOGGED_MESSAGE_ID)
        .collect();
    if value.is_empty() {
        "-".into()
    } else {
        value
    }
}

/// The span a message is handled in. `direction` is recorded by the handler once it has
/// routed the recipients ([`record_direction`]).
pub fn message_span(queue_id: &str, message_id: &str) -> tracing::Span {
    tracing::info_span!(
        "message",
        queue_id = %queue_id,
        message_id = %message_id,
        direction = tracing::field::Empty,
    )
}

/// Called by the handler inside the message span: `inbound`, `outbound`, `cert-query`...
/// (several, comma-separated, when recipients went different ways).
pub fn record_direction(direction: &str) {
    tracing::Span::current().record("direction", direction);
}

/// What the SMTP client is told when the message was accepted: the queue id goes into the
/// `250` reply, so the upstream MTA's log line names ours.
pub fn accepted(reply: Reply, queue_id: &str) -> Reply {
    if reply.code == 250 {
        Reply::ok_with(format!("Ok: queued as {queue_id}"))
    } else {
        reply
    }
}

/// `delivered`, `deferred` or `refused`, from the reply.
pub fn outcome(reply: &Reply) -> &'static str {
    if reply.is_success() {
        "delivered"
    } else if reply.is_temporary() {
        "deferred"
    } else {
        "refused"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_ids_are_twelve_hex_digits_and_differ() {
        let a = new_queue_id();
        assert_eq!(a.len(), 12);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)));
        assert_ne!(a, new_queue_id());
    }

    #[test]
    fn message_ids_are_unfolded_cleaned_and_bounded() {
        assert_eq!(
            message_id(b"Subject: x\r\nMessage-ID:\r\n <a@b>\r\n\r\nbody"),
            "<a@b>"
        );
        assert_eq!(message_id(b"Subject: x\r\n\r\nbody"), "-");
        assert_eq!(
            message_id(b"Message-ID: <a\x1b[31m@b>\r\n\r\n"),
            "<a[31m@b>"
        );
        let long = format!("Message-ID: <{}@b>\r\n\r\n", "x".repeat(5000));
        assert_eq!(
            message_id(long.as_bytes()).chars().count(),
            MAX_LOGGED_MESSAGE_ID
        );
    }

    #[test]
    fn only_a_250_carries_the_queue_id() {
        let ok = accepted(Reply::ok(), "ABC123DEF456");
        assert_eq!(ok.to_wire(), "250 2.0.0 Ok: queued as ABC123DEF456\r\n");
        let refused = accepted(Reply::perm_fail("5.7.1", "no"), "ABC123DEF456");
        assert_eq!(refused.code, 550);
        assert_eq!(outcome(&ok), "delivered");
        assert_eq!(outcome(&refused), "refused");
        assert_eq!(outcome(&Reply::temp_fail("4.4.1", "later")), "deferred");
    }
}
