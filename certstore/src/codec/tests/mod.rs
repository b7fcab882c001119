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
