//! The facts certstore, the gateway and the admin API share, with one set of rules each:
//! addresses and domains ([`name`]), where a header block ends ([`header`]), the facts read
//! from a certificate that the store and the engine both use ([`cert`]), PEM text ([`pem`]).
//!
//! Pure functions and values only: no I/O, no store, no engine, so every crate can use it
//! without depending on another.

pub mod cert;
pub mod header;
pub mod name;
pub mod pem;

pub use header::{header_end, HeaderEnd};
pub use name::{domain_of, normalise, Address, AddressError, Domain, DomainError, DomainKind};
