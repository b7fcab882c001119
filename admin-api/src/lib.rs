//! Admin REST API over the certstore.
