//! Route handlers, one module per resource. Each handler's `#[utoipa::path]` is what the
//! OpenAPI document says about it.

pub mod audit;
pub mod domains;
pub mod health;
pub mod partners;
pub mod proxy;

use std::time::SystemTime;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// RFC 3339 (UTC) text of a time, as every time field in the API is given.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}
