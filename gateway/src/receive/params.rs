//! `MAIL FROM` and `RCPT TO` with the ESMTP parameters the gateway accepts: SIZE and BODY
//! (RFC 1870, 6152), SMTPUTF8 (RFC 6531), RET and ENVID (RFC 3461) on MAIL; NOTIFY and
//! ORCPT (RFC 3461, 6533) on RCPT.
//!
//! Parsed here rather than by smtp-proto because the DSN values must reach the next hop
//! exactly as the client wrote them (xtext stays encoded), smtp-proto decodes xtext lossily,
//! and it refuses the `utf-8` ORCPT type and UTF-8 paths we must accept with SMTPUTF8.

use super::Reply;

/// Longest ENVID, as encoded (RFC 3461 §4.4: 100 characters).
const MAX_ENVID: usize = 100;
/// Longest ORCPT value, type included (RFC 3461 §4.2: 500 characters).
const MAX_ORCPT: usize = 500;
/// Longest path (RFC 5321 §4.5.3.1.3: 256 octets).
const MAX_PATH: usize = 256;
/// More parameters than this on one command is abuse, not mail.
const MAX_PARAMS: usize = 16;

/// `RET` (RFC 3461 §4.3): what a bounce should quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Full,
    Hdrs,
}

impl Ret {
    pub fn as_param(self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Hdrs => "HDRS",
        }
    }
}

/// The parameters of one `MAIL FROM` the gateway keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// Declared size, 0 when not given.
    pub size: usize,
    /// The client said `SMTPUTF8`: addresses and headers may be UTF-8.
    pub smtputf8: bool,
    pub ret: Option<Ret>,
    /// The envelope identifier, still xtext-encoded as received.
    pub envid: Option<String>,
}

/// When the sender wants to be told about a recipient (RFC 3461 §4.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

impl Notify {
    /// `NEVER`.
    pub fn never(self) -> bool {
        !(self.success || self.failure || self.delay)
    }

    /// The value of the NOTIFY parameter.
    pub fn as_param(self) -> String {
        if self.never() {
            return "NEVER".into();
        }
        let mut words = Vec::new();
        for (on, word) in [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ] {
            if on {
                words.push(word);
            }
        }
        words.join(",")
    }
}

/// The parameters of one `RCPT TO`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams {
    pub notify: Option<Notify>,
    /// `addr-type;xtext` as received, for the next hop and our own DSNs.
    pub orcpt: Option<String>,
}

impl RcptParams {
    /// Whether a failure notice to the sender is wanted for this recipient (the default
    /// without NOTIFY is yes).
    pub fn wants_failure_notice(&self) -> bool {
        self.notify.is_none_or(|n| n.failure)
    }

    /// The original recipient for a DSN's `Original-Recipient:` field (`type;address`,
    /// decoded), when given and decodable.
    pub fn original_recipient(&self) -> Option<String> {
        let (kind, value) = self.orcpt.as_deref()?.split_once(';')?;
        Some(format!("{kind};{}", decode_xtext(value)?))
    }
}

/// A parsed `MAIL FROM` or `RCPT TO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EnvelopeCommand {
    Mail {
        from: String,
        params: MailParams,
    },
    /// `address` is `postmaster` for `<postmaster>` (any case).
    Rcpt {
        to: String,
        params: RcptParams,
    },
}

/// The command on `line` if it is MAIL or RCPT: `None` for other commands, `Some(Err(reply))`
/// for a MAIL or RCPT that is malformed.
pub(crate) fn parse(line: &[u8]) -> Option<Result<EnvelopeCommand, Reply>> {
    let line = trim_line_end(line);
    let (is_mail, rest) = if let Some(rest) = strip_prefix_ci(line, b"MAIL FROM:") {
        (true, rest)
    } else {
        (false, strip_prefix_ci(line, b"RCPT TO:")?)
    };
    Some(parse_args(is_mail, rest))
}

fn parse_args(is_mail: bool, rest: &[u8]) -> Result<EnvelopeCommand, Reply> {
    let syntax = || {
        let expected = if is_mail {
            "MAIL FROM:<address> [parameters]"
        } else {
            "RCPT TO:<address> [parameters]"
        };
        Reply::new(501, "5.5.4", format!("Syntax error, expected: {expected}"))
    };
    let text = std::str::from_utf8(rest).map_err(|_| {
        Reply::new(
            501,
            "5.6.7",
            "Error: the command is not valid UTF-8 (RFC 6531)",
        )
    })?;
    let text = text.trim_start_matches(' ');
    let (path, params) = split_path(text).ok_or_else(syntax)?;
    let address = strip_source_route(path);
    let words: Vec<&str> = params.split(' ').filter(|w| !w.is_empty()).collect();
    if words.len() > MAX_PARAMS {
        return Err(Reply::new(501, "5.5.4", "Error: too many parameters"));
    }
    if is_mail {
        let mut p = MailParams::default();
        for word in words {
            mail_param(word, &mut p)?;
        }
        Ok(EnvelopeCommand::Mail {
            from: address.to_string(),
            params: p,
        })
    } else {
        let mut p = RcptParams::default();
        for word in words {
            rcpt_param(word, &mut p)?;
        }
        let to = if address.eq_ignore_ascii_case("postmaster") {
            "postmaster".to_string()
        } else {
            address.to_string()
        };
        Ok(EnvelopeCommand::Rcpt { to, params: p })
    }
}

fn invalid(param: &str) -> Reply {
    Reply::new(501, "5.5.4", format!("Invalid {param} parameter"))
}

fn duplicate(param: &str) -> Reply {
    Reply::new(501, "5.5.4", format!("Duplicate {param} parameter"))
}

fn unsupported(word: &str) -> Reply {
    let name: String = word
        .split('=')
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(32)
        .collect();
    Reply::new(555, "5.5.4", format!("Unsupported parameter {name}"))
}

fn mail_param(word: &str, p: &mut MailParams) -> Result<(), Reply> {
    let (key, value) = match word.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (word, None),
    };
    match (key.to_ascii_uppercase().as_str(), value) {
        ("SIZE", Some(v)) => {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("SIZE"));
            }
            // Too large for usize is simply too large: the caller compares with its limit.
            p.size = v.parse().unwrap_or(usize::MAX);
        }
        ("BODY", Some(v))
            if v.eq_ignore_ascii_case("7BIT") || v.eq_ignore_ascii_case("8BITMIME") => {}
        ("BODY", _) => return Err(unsupported(word)),
        ("SMTPUTF8", None) => p.smtputf8 = true,
        ("RET", Some(v)) => {
            if p.ret.is_some() {
                return Err(duplicate("RET"));
            }
            p.ret = Some(match v.to_ascii_uppercase().as_str() {
                "FULL" => Ret::Full,
                "HDRS" => Ret::Hdrs,
                _ => return Err(invalid("RET")),
            });
        }
        ("ENVID", Some(v)) => {
            if p.envid.is_some() {
                return Err(duplicate("ENVID"));
            }
            if v.is_empty() || v.len() > MAX_ENVID || decode_xtext(v).is_none() {
                return Err(invalid("ENVID"));
            }
            p.envid = Some(v.to_string());
        }
        _ => return Err(unsupported(word)),
    }
    Ok(())
}

fn rcpt_param(word: &str, p: &mut RcptParams) -> Result<(), Reply> {
    let Some((key, value)) = word.split_once('=') else {
        return Err(unsupported(word));
    };
    match key.to_ascii_uppercase().as_str() {
        "NOTIFY" => {
            if p.notify.is_some() {
                return Err(duplicate("NOTIFY"));
            }
            p.notify = Some(parse_notify(value).ok_or_else(|| invalid("NOTIFY"))?);
        }
        "ORCPT" => {
            if p.orcpt.is_some() {
                return Err(duplicate("ORCPT"));
            }
            if value.len() > MAX_ORCPT || !valid_orcpt(value) {
                return Err(invalid("ORCPT"));
            }
            p.orcpt = Some(value.to_string());
        }
        _ => return Err(unsupported(word)),
    }
    Ok(())
}

/// `NEVER`, or a comma list of SUCCESS, FAILURE, DELAY, each at most once.
fn parse_notify(value: &str) -> Option<Notify> {
    if value.eq_ignore_ascii_case("NEVER") {
        return Some(Notify::default());
    }
    let mut n = Notify::default();
    for word in value.split(',') {
        let slot = match word.to_ascii_uppercase().as_str() {
            "SUCCESS" => &mut n.success,
            "FAILURE" => &mut n.failure,
            "DELAY" => &mut n.delay,
            _ => return None,
        };
        if *slot {
            return None;
        }
        *slot = true;
    }
    Some(n)
}

/// `rfc822;xtext` (RFC 3461) or `utf-8;utf-8-addr-xtext` (RFC 6533): the type is an atom,
/// the address non-empty and decodable.
fn valid_orcpt(value: &str) -> bool {
    let Some((kind, address)) = value.split_once(';') else {
        return false;
    };
    let atom = |s: &str| {
        !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !atom(kind) || address.is_empty() {
        return false;
    }
    if kind.eq_ignore_ascii_case("utf-8") {
        // Unicode is written as is (or as \x{HEX}); only controls, space, '+' and '=' are out.
        address
            .chars()
            .all(|c| !c.is_control() && c != ' ' && c != '+' && c != '=')
    } else {
        decode_xtext(address).is_some()
    }
}

/// Decodes xtext (RFC 3461 §4): printable ASCII except `+` and `=`, and `+XX` hex escapes.
/// `None` when it is not xtext.
pub fn decode_xtext(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some((&b, after)) = rest.split_first() {
        match b {
            b'+' => {
                let (hex, after) = after.split_first_chunk::<2>()?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                rest = after;
            }
            b'!'..=b'~' if b != b'=' => {
                out.push(b);
                rest = after;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// Splits `<path> params` (or a bare path without brackets, as some clients send) at the
/// end of the path; a quoted local part may hold `>` and spaces.
fn split_path(text: &str) -> Option<(&str, &str)> {
    let Some(inner) = text.strip_prefix('<') else {
        // RFC 5321 requires brackets; a bare address is tolerated like Postfix does.
        let (path, params) = text.split_once(' ').unwrap_or((text, ""));
        return (!path.is_empty() && path.len() <= MAX_PATH).then_some((path, params));
    };
    let mut in_quote = false;
    let mut escaped = false;
    let mut chars = inner.char_indices();
    while let Some((i, c)) = chars.next() {
        if i > MAX_PATH {
            return None;
        }
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            '>' if !in_quote => {
                let params = chars.as_str(); // what follows the '>'
                if !params.is_empty() && !params.starts_with(' ') {
                    return None;
                }
                return Some((inner.get(..i)?, params));
            }
            _ => {}
        }
    }
    None
}

/// `@a,@b:user@d` → `user@d` (RFC 5321 says to ignore source routes).
fn strip_source_route(path: &str) -> &str {
    match path.strip_prefix('@') {
        Some(route) => route.split_once(':').map_or(path, |(_, addr)| addr),
        None => path,
    }
}

fn trim_line_end(mut line: &[u8]) -> &[u8] {
    while let [text @ .., b'\r' | b'\n'] = line {
        line = text;
    }
    line
}

fn strip_prefix_ci<'a>(line: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let (head, rest) = line.split_at_checked(prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(line: &str) -> Result<(String, MailParams), Reply> {
        match parse(line.as_bytes()) {
            Some(Ok(EnvelopeCommand::Mail { from, params })) => Ok((from, params)),
            Some(Err(r)) => Err(r),
            other => panic!("not a MAIL: {other:?}"),
        }
    }

    fn rcpt(line: &str) -> Result<(String, RcptParams), Reply> {
        match parse(line.as_bytes()) {
            Some(Ok(EnvelopeCommand::Rcpt { to, params })) => Ok((to, params)),
            Some(Err(r)) => Err(r),
            other => panic!("not a RCPT: {other:?}"),
        }
    }

    #[test]
    fn mail_parameters_are_kept_as_written() {
        let (from, p) = mail(
            "MAIL FROM:<a@b.example> SIZE=1200 BODY=8BITMIME RET=HDRS ENVID=QQ+2B314 SMTPUTF8\r\n",
        )
        .unwrap();
        assert_eq!(from, "a@b.example");
        assert_eq!(p.size, 1200);
        assert!(p.smtputf8);
        assert_eq!(p.ret, Some(Ret::Hdrs));
        assert_eq!(p.envid.as_deref(), Some("QQ+2B314"));
        assert_eq!(decode_xtext("QQ+2B314").as_deref(), Some("QQ+314"));
        let (from, p) = mail("mail from:<>").unwrap();
        assert_eq!((from.as_str(), p), ("", MailParams::default()));
    }

    #[test]
    fn bad_mail_parameters_are_refused_with_a_defined_answer() {
        for (line, code) in [
            ("MAIL FROM:<a@b.example> RET=ALL", 501),
            ("MAIL FROM:<a@b.example> RET=FULL RET=HDRS", 501),
            ("MAIL FROM:<a@b.example> ENVID=", 501),
            ("MAIL FROM:<a@b.example> ENVID=a=b", 501),
            ("MAIL FROM:<a@b.example> ENVID=a+4", 501),
            ("MAIL FROM:<a@b.example> ENVID=a+ZZ", 501),
            ("MAIL FROM:<a@b.example> SIZE=12x", 501),
            ("MAIL FROM:<a@b.example> BODY=BINARYMIME", 555),
            ("MAIL FROM:<a@b.example> AUTH=<>", 555),
            ("MAIL FROM:<a@b.example> SMTPUTF8=YES", 555),
            ("MAIL FROM:<a@b.example", 501),
            ("MAIL FROM:<a@b.example>SIZE=1", 501),
        ] {
            assert_eq!(mail(line).unwrap_err().code, code, "{line}");
        }
        let long = format!("MAIL FROM:<a@b.example> ENVID={}", "x".repeat(101));
        assert_eq!(mail(&long).unwrap_err().code, 501);
        let many = format!("MAIL FROM:<a@b.example>{}", " SMTPUTF8".repeat(17));
        assert_eq!(mail(&many).unwrap_err().code, 501);
        let huge = "MAIL FROM:<a@b.example> SIZE=99999999999999999999";
        assert_eq!(mail(huge).unwrap().1.size, usize::MAX);
    }

    #[test]
    fn rcpt_parameters() {
        let (to, p) =
            rcpt("RCPT TO:<Bob@b.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob+40b.example")
                .unwrap();
        assert_eq!(to, "Bob@b.example");
        let notify = p.notify.unwrap();
        assert_eq!(notify.as_param(), "SUCCESS,FAILURE");
        assert!(p.wants_failure_notice());
        assert_eq!(p.orcpt.as_deref(), Some("rfc822;Bob+40b.example"));
        assert_eq!(
            p.original_recipient().as_deref(),
            Some("rfc822;Bob@b.example")
        );
        let (_, never) = rcpt("RCPT TO:<b@b.example> NOTIFY=NEVER").unwrap();
        assert!(never.notify.unwrap().never());
        assert!(!never.wants_failure_notice());
        assert!(RcptParams::default().wants_failure_notice());
        let (to, utf8) = rcpt("RCPT TO:<用户@例子.example> ORCPT=utf-8;用户@例子.example").unwrap();
        assert_eq!(to, "用户@例子.example");
        assert!(utf8.orcpt.is_some());
        assert_eq!(rcpt("RCPT TO:<PostMaster>").unwrap().0, "postmaster");
        assert_eq!(
            rcpt("RCPT TO:<@relay.example:c@d.example>").unwrap().0,
            "c@d.example"
        );
        assert_eq!(
            rcpt("RCPT TO:<\"odd> name\"@d.example> NOTIFY=DELAY")
                .unwrap()
                .0,
            "\"odd> name\"@d.example"
        );
    }

    #[test]
    fn bad_rcpt_parameters() {
        for (line, code) in [
            ("RCPT TO:<b@b.example> NOTIFY=NEVER,SUCCESS", 501),
            ("RCPT TO:<b@b.example> NOTIFY=SUCCESS,SUCCESS", 501),
            ("RCPT TO:<b@b.example> NOTIFY=", 501),
            ("RCPT TO:<b@b.example> ORCPT=b@b.example", 501),
            ("RCPT TO:<b@b.example> ORCPT=rfc822;", 501),
            ("RCPT TO:<b@b.example> ORCPT=rfc822;a+b", 501),
            (
                "RCPT TO:<b@b.example> ORCPT=rfc822;a NOTIFY=NEVER ORCPT=rfc822;a",
                501,
            ),
            ("RCPT TO:<b@b.example> RRVS=2030-01-01T00:00:00Z", 555),
            ("RCPT TO:<b@b.example> NOTIFY", 555),
        ] {
            assert_eq!(rcpt(line).unwrap_err().code, code, "{line}");
        }
        let long = format!("RCPT TO:<b@b.example> ORCPT=rfc822;{}", "x".repeat(500));
        assert_eq!(rcpt(&long).unwrap_err().code, 501);
        assert!(parse(b"RCPT TO:<\xff@b.example>").unwrap().is_err());
        assert!(parse(b"DATA").is_none());
    }
}
