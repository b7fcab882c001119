//! SMTP replies and the enhanced status codes (RFC 3463) the gateway answers with: one type
//! for the server side (`receive`), the pipelines and the client side (`relay`).

use std::fmt;

/// The enhanced status codes the mail flow decides on (the SMTP session's protocol answers
/// stay next to the commands they answer).
pub mod status {
    /// `2.0.0`: accepted.
    pub const OK: &str = "2.0.0";
    /// `5.7.1`: refused by policy (security or delivery not authorised).
    pub const REFUSED_BY_POLICY: &str = "5.7.1";
    /// `5.0.0`: refused by a next hop that gave no enhanced code.
    pub const PERMANENT_UNSPECIFIED: &str = "5.0.0";
    /// `4.3.0`: our own temporary failure (store, keys, shutting down).
    pub const TEMPORARY_LOCAL: &str = "4.3.0";
    /// `4.4.1`: a next hop did not answer or failed temporarily.
    pub const TEMPORARY_NEXT_HOP: &str = "4.4.1";
}

/// An SMTP reply: code, enhanced status code (RFC 3463, may be empty) and text, which may
/// span several lines (separated by `\n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: String,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, enhanced: impl Into<String>, text: impl Into<String>) -> Self {
        Reply {
            code,
            enhanced: enhanced.into(),
            text: text.into(),
        }
    }

    /// `250 2.0.0 OK`.
    pub fn ok() -> Self {
        Reply::new(250, "2.0.0", "OK")
    }

    /// `250 2.0.0 <text>`.
    pub fn ok_with(text: impl Into<String>) -> Self {
        Reply::new(250, "2.0.0", text)
    }

    /// `451 <enhanced> <text>`: the client keeps the message and retries.
    pub fn temp_fail(enhanced: impl Into<String>, text: impl Into<String>) -> Self {
        Reply::new(451, enhanced, text)
    }

    /// `550 <enhanced> <text>`: the client bounces the message.
    pub fn perm_fail(enhanced: impl Into<String>, text: impl Into<String>) -> Self {
        Reply::new(550, enhanced, text)
    }

    pub fn is_success(&self) -> bool {
        (200..400).contains(&self.code)
    }

    pub fn is_temporary(&self) -> bool {
        (400..500).contains(&self.code)
    }

    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The reply as it goes on the wire (CRLF line ends, `code-` continuation lines).
    ///
    /// Anything a handler might get wrong (a code outside 2xx–5xx, an enhanced code of the
    /// wrong class, control characters, over-long lines) is repaired here, because an invalid
    /// reply would make the upstream MTA treat the session as broken.
    pub fn to_wire(&self) -> String {
        let (code, enhanced, text) = if (200..600).contains(&self.code) {
            (self.code, self.enhanced.as_str(), self.text.as_str())
        } else {
            (
                451,
                "4.3.0",
                "Internal error: invalid reply from message handler",
            )
        };
        let enhanced = if enhanced_matches(code, enhanced) {
            enhanced
        } else {
            ""
        };
        let mut lines: Vec<String> = Vec::new();
        for raw in text.split('\n') {
            let clean: String = raw
                .trim_end_matches('\r')
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            // RFC 5321 limits a reply line to 512 octets; split long text at char boundaries.
            let mut rest = clean.as_str();
            loop {
                if rest.len() <= 400 {
                    lines.push(rest.to_string());
                    break;
                }
                let mut cut = 400;
                while !rest.is_char_boundary(cut) {
                    cut -= 1;
                }
                lines.push(rest[..cut].to_string());
                rest = &rest[cut..];
            }
        }
        let mut out = String::new();
        let last = lines.len().saturating_sub(1);
        for (i, line) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            out.push_str(&code.to_string());
            out.push(sep);
            if !enhanced.is_empty() {
                out.push_str(enhanced);
                if !line.is_empty() {
                    out.push(' ');
                }
            }
            out.push_str(line);
            out.push_str("\r\n");
        }
        out
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if !self.enhanced.is_empty() {
            write!(f, " {}", self.enhanced)?;
        }
        let text = self.text.replace(['\r', '\n'], " ");
        if !text.is_empty() {
            write!(f, " {text}")?;
        }
        Ok(())
    }
}

/// Whether `enhanced` is a well-formed RFC 3463 code of the same class as `code`.
pub fn enhanced_matches(code: u16, enhanced: &str) -> bool {
    let mut parts = enhanced.split('.');
    let (Some(class), Some(subject), Some(detail), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let digits = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
    };
    matches!(class.as_bytes(), [c] if *c == b'0' + (code / 100) as u8)
        && digits(subject, 3)
        && digits(detail, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_wire_format_is_repaired() {
        assert_eq!(Reply::ok().to_wire(), "250 2.0.0 OK\r\n");
        assert_eq!(
            Reply::new(550, "4.1.1", "a\r\nb").to_wire(),
            "550-a\r\n550 b\r\n"
        );
        assert_eq!(Reply::new(0, "", "x").to_wire().get(..3), Some("451"));
        let long = Reply::perm_fail("5.7.1", "é".repeat(500)).to_wire();
        assert!(long.lines().all(|l| l.len() < 512));
        assert_eq!(Reply::perm_fail("5.7.1", "no").to_string(), "550 5.7.1 no");
    }
}
