//! Checks and errors shared by the generated messages. Encoding refuses what
//! the chosen version cannot carry (`ErrorKind::UnsupportedVersion`, as the
//! Java client's `UnsupportedVersionException`); decoding errors are all
//! protocol errors. The version-range checks need the `Message` trait and
//! live with it in `api.rs`.

use super::{put_tagged_fields, RawTaggedField};
use crate::error::{Error, ErrorKind, Result};

/// The error for a non-ignorable field that holds a non-default value in a
/// version that does not carry it.
#[cold]
pub(crate) fn field_not_in_version(name: &str, field: &str, version: i16) -> Error {
    Error::new(
        ErrorKind::UnsupportedVersion,
        format!(
            "cannot encode {name} version {version}: `{field}` is not in this version and \
             holds a non-default value; leave it at its default or use a version that carries it"
        ),
    )
}

/// `v`, or an error when it is `None` and the version does not allow null.
#[inline]
pub(crate) fn nullable_in<T>(
    v: Option<T>,
    nullable: bool,
    name: &str,
    field: &str,
    version: i16,
) -> Result<Option<T>> {
    if v.is_some() || nullable {
        Ok(v)
    } else {
        Err(null_not_in_version(name, field, version))
    }
}

/// The value in `v`, or an error when it is `None` (the version does not
/// allow null).
// The generator emits this for a nullable struct field in a version where it
// is not nullable; none of the schemas generated today has one.
#[allow(dead_code)]
#[inline]
pub(crate) fn non_null<T>(v: Option<T>, name: &str, field: &str, version: i16) -> Result<T> {
    v.ok_or_else(|| null_not_in_version(name, field, version))
}

#[cold]
fn null_not_in_version(name: &str, field: &str, version: i16) -> Error {
    Error::new(
        ErrorKind::UnsupportedVersion,
        format!("cannot encode {name} version {version}: `{field}` is None but this version cannot carry a null"),
    )
}

/// An error when `unknown` is not empty: `version` of `name` is not
/// flexible and has no tagged fields.
#[inline]
pub(crate) fn no_tagged_fields(unknown: &[RawTaggedField], name: &str, version: i16) -> Result<()> {
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::UnsupportedVersion,
            format!(
                "cannot encode {name} version {version}: it holds unknown tagged fields \
                 but this version has no tagged fields"
            ),
        ))
    }
}

/// Writes the tagged-field section of a struct without known tagged
/// fields: `unknown` in a flexible version, nothing otherwise (where
/// `unknown` must be empty; see [`no_tagged_fields`]).
#[inline]
pub(crate) fn put_raw_tagged_fields(
    out: &mut Vec<u8>,
    flexible: bool,
    unknown: &[RawTaggedField],
    name: &str,
    version: i16,
) -> Result<()> {
    if flexible {
        put_tagged_fields(out, &[], unknown)
    } else {
        no_tagged_fields(unknown, name, version)
    }
}

/// The error for a known tag read in a version where its field is not
/// tagged (the Java client fails the same way).
#[cold]
pub(crate) fn tag_not_in_version(name: &str, tag: u32, version: i16) -> Error {
    Error::protocol(format!(
        "{name} version {version}: tagged field {tag} is not valid in this version"
    ))
}
