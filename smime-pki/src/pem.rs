//! PEM (RFC 7468) as mail gateways meet it: several blocks in one text, with explanatory
//! text around them (as `openssl x509 -text` writes). One reader for the store and the engine.

/// One PEM block: its label (`CERTIFICATE`, `PRIVATE KEY`, …) and the decoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemBlock {
    pub label: String,
    pub der: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error("unterminated PEM header")]
    UnterminatedHeader,
    #[error("PEM block {0} has no END line")]
    NoEndLine(String),
    #[error("PEM block {label}: {reason}")]
    Undecodable { label: String, reason: String },
}

/// Whether `bytes` hold PEM text (rather than DER).
pub fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Every PEM block in `text`, in order; the text around them is ignored. The first block that
/// does not decode is the error.
pub fn blocks(text: &str) -> Result<Vec<PemBlock>, PemError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let from_begin = rest.get(start..).unwrap_or("");
        let label_end = from_begin
            .get(11..)
            .and_then(|s| s.find("-----"))
            .ok_or(PemError::UnterminatedHeader)?;
        let label = from_begin.get(11..11 + label_end).unwrap_or("").to_string();
        let end_marker = format!("-----END {label}-----");
        let end = from_begin
            .find(&end_marker)
            .ok_or_else(|| PemError::NoEndLine(label.clone()))?;
        let block = from_begin.get(..end + end_marker.len()).unwrap_or("");
        let (_, der) =
            der::pem::decode_vec(block.trim().as_bytes()).map_err(|e| PemError::Undecodable {
                label: label.clone(),
                reason: e.to_string(),
            })?;
        out.push(PemBlock { label, der });
        rest = from_begin.get(end + end_marker.len()..).unwrap_or("");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";

    #[test]
    fn blocks_among_explanatory_text_in_order() {
        let text = format!(
            "Certificate:\n  Data: ...\n{CERT}junk between\n{}",
            CERT.replace("CERTIFICATE", "X509 CRL")
        );
        let found = blocks(&text).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].label, "CERTIFICATE");
        assert_eq!(found[0].der, [0x30, 0x03, 0x02, 0x01, 0x01]);
        assert_eq!(found[1].label, "X509 CRL");
        assert!(is_pem(text.as_bytes()));
        assert!(!is_pem(&[0x30, 0x03, 0x02, 0x01, 0x01]));
    }

    #[test]
    fn broken_blocks_are_named_errors() {
        assert_eq!(
            blocks("-----BEGIN CERTIFICATE"),
            Err(PemError::UnterminatedHeader)
        );
        assert_eq!(
            blocks("-----BEGIN CERTIFICATE-----\nMAMCAQE=\n"),
            Err(PemError::NoEndLine("CERTIFICATE".into()))
        );
        assert!(matches!(
            blocks("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----"),
            Err(PemError::Undecodable { .. })
        ));
    }
}
