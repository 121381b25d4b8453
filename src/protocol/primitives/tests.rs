//! Round trips, known vectors and malformed input for the primitives.

use super::decoder::{prealloc, MAX_PREALLOC_BYTES};
use super::*;
use crate::error::ErrorKind;
use proptest::prelude::*;

fn dec(v: Vec<u8>) -> Bytes {
    Bytes::from(v)
}

#[test]
fn varint_known_vectors() {
    // From the Kafka protocol guide / ByteUtilsTest.
    let cases: &[(i32, &[u8])] = &[
        (0, &[0x00]),
        (-1, &[0x01]),
        (1, &[0x02]),
        (63, &[0x7e]),
        (-64, &[0x7f]),
        (64, &[0x80, 0x01]),
        (i32::MAX, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
        (i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
    ];
    for (v, bytes) in cases {
        let mut out = Vec::new();
        out.put_varint(*v);
        assert_eq!(&out, bytes, "{v}");
        assert_eq!(varint_len(*v), bytes.len());
        let b = dec(out);
        let mut d = Decoder::new(&b);
        assert_eq!(d.varint().unwrap(), *v);
        d.finish("varint").unwrap();
    }
}

#[test]
fn overlong_varints_are_rejected() {
    let b = dec(vec![0xff, 0xff, 0xff, 0xff, 0x7f]);
    assert!(Decoder::new(&b).uvarint().is_err());
    let b = dec(vec![0xff; 11]);
    assert!(Decoder::new(&b).uvarlong().is_err());
    let b = dec(vec![0x80]);
    assert!(Decoder::new(&b).uvarint().is_err());
}

#[test]
fn lengths_are_checked_before_allocating() {
    // An array claiming 2^31-1 elements in 4 bytes must fail, not allocate.
    let b = dec(vec![0x7f, 0xff, 0xff, 0xff]);
    assert!(Decoder::new(&b).array_len().is_err());
    let b = dec(vec![0x00, 0x10, b'a']);
    assert!(Decoder::new(&b).string().is_err());
    let b = dec(vec![0xff, 0xfe]);
    assert!(Decoder::new(&b).nullable_string().is_err());
    let b = dec(vec![0xff, 0xff]);
    assert_eq!(Decoder::new(&b).nullable_string().unwrap(), None);
    assert!(Decoder::new(&b).string().is_err());
    let b = dec(vec![0x00, 0x02, 0xff, 0xfe]);
    assert!(Decoder::new(&b).string().is_err(), "invalid UTF-8");
}

#[test]
fn bytes_are_shared_views() {
    let b = dec(vec![0, 0, 0, 3, 1, 2, 3, 9]);
    let mut d = Decoder::new(&b);
    let v = d.bytes().unwrap();
    assert_eq!(&*v, &[1, 2, 3]);
    assert!(d.finish("x").is_err());
    assert_eq!(d.i8().unwrap(), 9);
    d.finish("x").unwrap();
}

#[test]
fn tagged_fields_keep_unknown_and_reject_disorder() {
    let mut out = Vec::new();
    let unknown = vec![RawTaggedField {
        tag: 7,
        data: Bytes::from(vec![1, 2]),
    }];
    put_tagged_fields(&mut out, &[(1, vec![42])], &unknown).unwrap();
    let b = dec(out);
    let mut d = Decoder::new(&b);
    let mut seen = None;
    let rest = d
        .tagged_fields(|tag, sub| {
            if tag == 1 {
                seen = Some(sub.i8()?);
                Ok(true)
            } else {
                Ok(false)
            }
        })
        .unwrap();
    d.finish("tags").unwrap();
    assert_eq!(seen, Some(42));
    assert_eq!(rest, unknown);

    let b = dec(vec![2, 5, 0, 3, 0]);
    assert!(Decoder::new(&b).tagged_fields(|_, _| Ok(false)).is_err());
}

#[test]
fn uuid_displays_like_kafka() {
    let u = Uuid([0; 16]);
    assert_eq!(u.to_string(), "AAAAAAAAAAAAAAAAAAAAAA");
    let u = Uuid([0xff; 16]);
    assert_eq!(u.to_string(), "_____________________w");
}

#[test]
fn versioned_forms_pick_classic_or_compact() {
    for compact in [false, true] {
        let mut out = Vec::new();
        out.put_string_v(compact, "ab").unwrap();
        out.put_nullable_string_v(compact, None).unwrap();
        out.put_bytes_v(compact, &[7]).unwrap();
        out.put_nullable_bytes_v(compact, None).unwrap();
        put_array(&mut out, compact, &[1i16, 2], |out, v| {
            out.put_i16(*v);
            Ok(())
        })
        .unwrap();
        put_nullable_array::<i16>(&mut out, compact, None, |_, _| Ok(())).unwrap();
        put_nullable_struct(&mut out, Some(&5i8), |out, v| {
            out.put_i8(*v);
            Ok(())
        })
        .unwrap();
        put_nullable_struct::<i8>(&mut out, None, |_, _| unreachable!()).unwrap();
        let expect: &[u8] = if compact {
            &[3, b'a', b'b', 0, 2, 7, 0, 3, 0, 1, 0, 2, 0, 1, 5, 0xff]
        } else {
            &[
                0, 2, b'a', b'b', 0xff, 0xff, 0, 0, 0, 1, 7, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2, 0,
                1, 0, 2, 0xff, 0xff, 0xff, 0xff, 1, 5, 0xff,
            ]
        };
        assert_eq!(out, expect, "compact: {compact}");

        let b = dec(out);
        let mut d = Decoder::new(&b);
        assert_eq!(d.string_v(compact).unwrap(), "ab");
        assert_eq!(d.nullable_string_v(compact).unwrap(), None);
        assert_eq!(&*d.bytes_v(compact).unwrap(), &[7]);
        assert_eq!(d.nullable_bytes_v(compact).unwrap(), None);
        assert_eq!(d.array_v(compact, |d| d.i16()).unwrap(), [1, 2]);
        assert_eq!(d.nullable_array_v(compact, |d| d.i16()).unwrap(), None);
        assert_eq!(d.nullable_struct(|d| d.i8()).unwrap(), Some(5));
        assert_eq!(d.nullable_struct(|d| d.i8()).unwrap(), None);
        d.finish("all").unwrap();
    }
}

#[test]
fn strings_are_limited_in_both_forms() {
    let long = "x".repeat(32768);
    for compact in [false, true] {
        assert!(Vec::new().put_string_v(compact, &long).is_err());
        assert!(Vec::new().put_string_v(compact, &long[1..]).is_ok());
    }
    let mut out = Vec::new();
    out.put_compact_string(&long).unwrap();
    let b = dec(out);
    assert!(Decoder::new(&b).string_v(true).is_err());
    assert!(Decoder::new(&b).nullable_string_v(true).is_err());
}

#[test]
fn null_arrays_and_bad_elements_fail() {
    let b = dec(vec![0xff, 0xff, 0xff, 0xff]);
    assert!(Decoder::new(&b).array_v(false, |d| d.i8()).is_err());
    let b = dec(vec![0]);
    assert!(Decoder::new(&b).array_v(true, |d| d.i8()).is_err());
    // Two elements claimed, one there.
    let b = dec(vec![3, 1]);
    assert!(Decoder::new(&b).array_v(true, |d| d.i8()).is_err());
}

#[test]
fn preallocation_is_capped() {
    assert_eq!(prealloc::<u8>(10), 10);
    assert_eq!(prealloc::<u8>(1 << 30), MAX_PREALLOC_BYTES);
    assert_eq!(prealloc::<[u8; 4096]>(1 << 30), MAX_PREALLOC_BYTES / 4096);
    assert_eq!(prealloc::<()>(1 << 20), MAX_PREALLOC_BYTES);
}

#[test]
fn raw_tagged_sections() {
    let unknown = [RawTaggedField {
        tag: 3,
        data: Bytes::from(vec![9]),
    }];
    let mut out = Vec::new();
    put_raw_tagged_fields(&mut out, true, &unknown, "M", 1).unwrap();
    assert_eq!(out, [1, 3, 1, 9]);
    let err = put_raw_tagged_fields(&mut Vec::new(), false, &unknown, "M", 0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedVersion);
    put_raw_tagged_fields(&mut out, false, &[], "M", 0).unwrap();
    assert_eq!(out.len(), 4, "nothing written in a non-flexible version");

    let b = dec(out);
    assert_eq!(Decoder::new(&b).raw_tagged_fields(true).unwrap(), unknown);
    assert!(Decoder::new(&b)
        .raw_tagged_fields(false)
        .unwrap()
        .is_empty());
}

#[test]
fn encode_checks() {
    assert_eq!(nullable_in(Some(1), false, "M", "f", 0).unwrap(), Some(1));
    assert_eq!(nullable_in::<i8>(None, true, "M", "f", 1).unwrap(), None);
    let err = nullable_in::<i8>(None, false, "M", "f", 0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedVersion);
    assert!(err.to_string().contains("`f`"), "{err}");
    assert!(non_null::<i8>(None, "M", "f", 0).is_err());
    let err = field_not_in_version("M", "f", 2);
    assert_eq!(err.kind(), ErrorKind::UnsupportedVersion);
    assert!(err.to_string().contains("M version 2"), "{err}");
    assert_eq!(tag_not_in_version("M", 0, 1).kind(), ErrorKind::Protocol);
}

proptest! {
    #[test]
    fn varlong_round_trips(v in any::<i64>()) {
        let mut out = Vec::new();
        out.put_varlong(v);
        prop_assert_eq!(out.len(), varlong_len(v));
        let b = dec(out);
        let mut d = Decoder::new(&b);
        prop_assert_eq!(d.varlong().unwrap(), v);
    }

    #[test]
    fn compact_strings_round_trip(s in proptest::option::of(".{0,40}")) {
        let mut out = Vec::new();
        out.put_compact_nullable_string(s.as_deref()).unwrap();
        let b = dec(out);
        let mut d = Decoder::new(&b);
        prop_assert_eq!(d.compact_nullable_string().unwrap(), s);
        d.finish("s").unwrap();
    }

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
        let b = dec(data);
        let mut d = Decoder::new(&b);
        let _ = d.compact_nullable_string();
        let _ = d.nullable_bytes();
        let _ = d.compact_array_len();
        let _ = d.tagged_fields(|_, _| Ok(false));
        let _ = d.varlong();
    }
}
