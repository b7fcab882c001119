//! Record encoding: every stored value is JSON carrying a schema version `v`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// The schema version this build writes and the newest it can read.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Deserialize)]
struct VersionOnly {
    v: u32,
}

pub(crate) fn encode_record<T: Serialize>(record: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(|e| StoreError::CorruptRecord(e.to_string()))
}

/// Decode a record, refusing one written by a newer schema rather than misreading it.
pub(crate) fn decode_record<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    let version: VersionOnly =
        serde_json::from_slice(bytes).map_err(|e| StoreError::CorruptRecord(e.to_string()))?;
    if version.v > SCHEMA_VERSION {
        return Err(StoreError::UnsupportedSchemaVersion {
            found: version.v,
            supported: SCHEMA_VERSION,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| StoreError::CorruptRecord(e.to_string()))
}

/// Seconds since the Unix epoch; times before it clamp to 0 (never produced in practice).
pub(crate) fn to_unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn from_unix(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Byte strings as lower-case hex inside JSON records (compact and readable).
pub(crate) mod hexbytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        hex::decode(s.as_bytes()).map_err(serde::de::Error::custom)
    }
}

/// `SystemTime` as an RFC 3339 string for the admin API.
pub mod rfc3339 {
    use std::time::SystemTime;

    use serde::Serializer;
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let formatted = OffsetDateTime::from(*t)
            .format(&Rfc3339)
            .map_err(serde::ser::Error::custom)?;
        s.serialize_str(&formatted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug)]
    struct R {
        v: u32,
        #[serde(with = "hexbytes")]
        b: Vec<u8>,
    }

    #[test]
    fn newer_schema_is_refused() {
        let bytes = encode_record(&R {
            v: 99,
            b: vec![1, 2],
        })
        .unwrap();
        assert!(matches!(
            decode_record::<R>(&bytes),
            Err(StoreError::UnsupportedSchemaVersion { found: 99, .. })
        ));
        let bytes = encode_record(&R {
            v: 1,
            b: vec![1, 2],
        })
        .unwrap();
        assert_eq!(decode_record::<R>(&bytes).unwrap().b, vec![1, 2]);
        assert!(matches!(
            decode_record::<R>(b"garbage"),
            Err(StoreError::CorruptRecord(_))
        ));
    }
}
