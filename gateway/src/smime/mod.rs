//! The S/MIME engine: CMS (RFC 5652) operations as pure functions, bytes in and bytes out.
//!
//! One module per operation ([`decrypt`], [`verify`], [`sign`], [`encrypt`]); [`ber`] makes
//! inbound BER readable; [`crypto`] is the seam for private-key backends; [`asn1`] holds the
//! types the `cms` crate lacks. MIME wrapping lives in `crate::mime`.

pub mod algorithms;
pub mod asn1;
pub mod ber;
pub mod canonical;
pub mod certs;
pub mod content_info;
pub mod crypto;
pub mod decrypt;
pub mod encrypt;
pub mod error;
pub mod kari;
pub mod key_preference;
pub mod sign;
pub mod verify;

pub use algorithms::{ContentCipher, DigestAlg, KeyTransport, SignatureScheme};
pub use error::SmimeError;
