//! The human-readable text of a certificate reply.

use sha2::{Digest, Sha256};

use crate::keys::LoadedIdentity;

pub(super) fn shorten(s: &str) -> String {
    if s.chars().count() <= 80 {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(77).collect();
        out.push_str("...");
        out
    }
}

/// SHA-256 fingerprint as mail clients show it: upper-case hex pairs joined by colons.
pub(super) fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub(super) fn not_after(identity: &LoadedIdentity) -> String {
    let t = identity
        .certificate
        .tbs_certificate
        .validity
        .not_after
        .to_system_time();
    time::OffsetDateTime::from(t).date().to_string()
}

/// Greedy word wrap to `width` columns, CRLF line ends.
pub(super) fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line_len = 0;
    for word in text.split_whitespace() {
        if line_len > 0 && line_len + 1 + word.len() > width {
            out.push_str("\r\n");
            line_len = 0;
        } else if line_len > 0 {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += word.len();
    }
    out
}

pub(super) struct CertificateText<'a> {
    pub(super) wanted: &'a str,
    pub(super) cert_query: &'a str,
    pub(super) request_id: Option<&'a str>,
    pub(super) ca_subject: &'a str,
    /// The internal domains the proxy CA is limited to.
    pub(super) ca_domains: &'a [String],
    pub(super) ca_fingerprint: &'a str,
    pub(super) cert_fingerprint: &'a str,
    pub(super) not_after: String,
}

/// The instructions in a certificate reply.
pub(super) fn certificate_text(t: &CertificateText<'_>) -> String {
    let wanted = t.wanted;
    let request = t
        .request_id
        .map(|id| format!(" (message <{id}>)"))
        .unwrap_or_default();
    // Fingerprints are split in two lines of 16 bytes so they are not wrapped by clients.
    let (ca_fp1, ca_fp2) = t.ca_fingerprint.split_at(t.ca_fingerprint.len().min(48));
    let (fp1, fp2) = t
        .cert_fingerprint
        .split_at(t.cert_fingerprint.len().min(48));
    let lines = [
        "Hello,".to_string(),
        String::new(),
        wrap(
            &format!(
                "this is the automatic answer to your certificate request{request}. Your \
                 certificate has been registered: mail from the agency to you will be \
                 encrypted with it."
            ),
            72,
        ),
        String::new(),
        wrap(
            &format!(
                "This message comes from {wanted} and is signed with its S/MIME certificate, \
                 attached as \"{wanted}.cer\". That certificate was issued by the agency's \
                 proxy certificate authority ({}), attached as \"proxy-ca.cer\".",
                t.ca_subject
            ),
            72,
        ),
        String::new(),
        format!("To send encrypted mail to {wanted}:"),
        String::new(),
        "1. Trust the agency's proxy CA once, for e-mail only (first compare".into(),
        "   its fingerprint with the one below). It can vouch only for".into(),
        format!("   addresses at {};", t.ca_domains.join(", ")),
        "   do not trust it for websites or software.".into(),
        "   - Outlook (Windows): open proxy-ca.cer, Install Certificate, Current".into(),
        "     User, place it in \"Trusted Root Certification Authorities\". Then".into(),
        "     in certmgr.msc open it there: Properties > \"Enable only the".into(),
        "     following purposes\" > tick \"Secure Email\" only.".into(),
        "   - Thunderbird: Settings > Privacy & Security > Manage Certificates >".into(),
        "     Authorities > Import proxy-ca.cer; tick only \"Trust this CA to".into(),
        "     identify email users\" (not websites).".into(),
        "   - Apple Mail: open proxy-ca.cer (Keychain Access adds it), open it".into(),
        "     in Keychain Access, under Trust set \"Secure Mail (S/MIME)\" to".into(),
        "     \"Always Trust\" and leave every other setting unspecified.".into(),
        format!("2. Add the sender of this message, {wanted}, to your"),
        "   contacts (Outlook: right-click the sender, Add to Outlook Contacts;".into(),
        "   Thunderbird and Apple Mail keep the certificate of signed mail).".into(),
        format!("3. Write to {wanted} with encryption switched on."),
        String::new(),
        "SHA-256 fingerprint of the proxy CA certificate:".into(),
        format!("   {ca_fp1}"),
        format!("   {}", ca_fp2.trim_start_matches(':')),
        format!("SHA-256 fingerprint of the certificate of {wanted}:"),
        format!("   {fp1}"),
        format!("   {}", fp2.trim_start_matches(':')),
        format!("It is valid until {}.", t.not_after),
        String::new(),
        wrap(
            &format!(
                "When your certificate is renewed, send a signed message with the new one to \
                 {} (Subject: {wanted}) so the agency uses it.",
                t.cert_query
            ),
            72,
        ),
        String::new(),
        "This is an automatic message; replies to it are not read.".into(),
    ];
    let mut out = lines.join("\r\n");
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_and_fingerprints() {
        assert_eq!(wrap("a bb ccc", 4), "a bb\r\nccc");
        assert_eq!(fingerprint(b"").len(), 32 * 3 - 1);
    }
}
