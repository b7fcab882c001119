//! How a stage (inbound, outbound, cert-query) fails for some recipients: typed, so the
//! dispatcher decides the SMTP answer, the DSN and the metrics from the kind, not from text.

use crate::reply::status;
use crate::telemetry::CryptoFailure;

/// Why a stage could not do its work for some recipients. The text is for a person: it goes
/// into the SMTP answer, the DSN and the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    /// Refused by policy, for good (550 5.7.1).
    #[error("{0}")]
    Refused(String),
    /// The message could not be encrypted to the recipient's certificate: refused (550 5.7.1).
    #[error("{0}")]
    EncryptFailed(String),
    /// The message could not be signed (key or CA chain unreadable): may pass (451 4.3.0).
    #[error("{0}")]
    SignFailed(String),
    /// Something that may pass (the store or a key could not be read, shutting down): the
    /// upstream MTA keeps the message and retries (451 4.3.0).
    #[error("{0}")]
    Temporary(String),
}

impl PipelineError {
    /// Whether a retry may succeed: the upstream MTA must keep the message.
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            PipelineError::SignFailed(_) | PipelineError::Temporary(_)
        )
    }

    /// The enhanced status code (RFC 3463) of the answer.
    pub fn enhanced(&self) -> &'static str {
        if self.is_temporary() {
            status::TEMPORARY_LOCAL
        } else {
            status::REFUSED_BY_POLICY
        }
    }

    /// The failure counted in the metrics, if this is one.
    pub fn crypto_failure(&self) -> Option<CryptoFailure> {
        match self {
            PipelineError::EncryptFailed(_) => Some(CryptoFailure::EncryptFailed),
            PipelineError::SignFailed(_) => Some(CryptoFailure::SignFailed),
            PipelineError::Refused(_) | PipelineError::Temporary(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_decide_answer_and_metric() {
        let refused = PipelineError::Refused("no certificate".into());
        assert_eq!(
            (refused.is_temporary(), refused.enhanced()),
            (false, "5.7.1")
        );
        assert_eq!(refused.to_string(), "no certificate");
        assert_eq!(refused.crypto_failure(), None);
        let encrypt = PipelineError::EncryptFailed("bad key".into());
        assert_eq!(
            (encrypt.enhanced(), encrypt.crypto_failure()),
            ("5.7.1", Some(CryptoFailure::EncryptFailed))
        );
        let sign = PipelineError::SignFailed("no chain".into());
        assert_eq!(
            (sign.is_temporary(), sign.enhanced(), sign.crypto_failure()),
            (true, "4.3.0", Some(CryptoFailure::SignFailed))
        );
        assert!(PipelineError::Temporary("store".into()).is_temporary());
    }
}
