//! The engine's cryptography comes from one [`CryptoProvider`] value (the `crypto-provider`
//! crate), passed into every engine call: no engine module names a backend. Private keys are
//! held behind [`PrivateKeyOps`], so a key in an HSM or a counting wrapper in a test fits in
//! the same place.

pub use crypto_provider::{
    default_provider, CryptoProvider, KeyError, PrivateKey, PrivateKeyOps, PublicKeyAlg,
    RsaSignature, SignatureAlg, UnwrappedKey,
};
