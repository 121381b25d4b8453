//! Checks of user-given arguments shared by the clients, so that a topic
//! name, partition, offset or timestamp out of range fails the same way
//! everywhere: an [`ErrorKind::InvalidArgument`](crate::ErrorKind) error
//! whose message names the argument, before anything reaches a broker.

use crate::error::{Error, Result};

/// The longest topic name Kafka accepts.
const MAX_TOPIC_LEN: usize = 249;

/// A topic name Kafka accepts: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or
/// `..` (the broker's own rule, checked here to fail before a round trip).
pub(crate) fn topic(name: &str) -> Result<()> {
    let why = if name.is_empty() {
        "is empty"
    } else if name.len() > MAX_TOPIC_LEN {
        "is longer than 249 characters"
    } else if name == "." || name == ".." {
        "cannot be `.` or `..`"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        "may only hold ASCII letters, digits, `.`, `_` and `-`"
    } else {
        return Ok(());
    };
    let shown: String = name.chars().take(60).collect();
    Err(Error::invalid_argument(format!("topic name `{shown}` {why}")).with_topic(name))
}

/// A partition index (`>= 0`).
pub(crate) fn partition(topic: &str, partition: i32) -> Result<()> {
    if partition < 0 {
        return Err(Error::invalid_argument(format!(
            "partition {partition} of `{topic}` is negative"
        ))
        .with_partition(topic, partition));
    }
    Ok(())
}

/// An offset (`>= min`: 0 for positions and commits, -1 where -1 means
/// "the end").
pub(crate) fn offset(topic: &str, partition: i32, offset: i64, min: i64) -> Result<()> {
    if offset < min {
        return Err(Error::invalid_argument(format!(
            "offset {offset} for `{topic}` partition {partition} is below {min}"
        ))
        .with_partition(topic, partition)
        .with_offset(offset));
    }
    Ok(())
}

/// A count that must be at least 1, or -1 for "the broker's default".
pub(crate) fn count_or_default(what: &str, topic: &str, n: i64) -> Result<()> {
    if n < 1 && n != -1 {
        return Err(Error::invalid_argument(format!(
            "{what} {n} for `{topic}` must be at least 1 (or -1 for the broker's default)"
        ))
        .with_topic(topic));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        for ok in ["a", "events", "a.b_c-d", &"x".repeat(249)] {
            assert!(topic(ok).is_ok(), "{ok}");
        }
        for (bad, word) in [
            ("", "empty"),
            (".", "`.`"),
            ("..", "`..`"),
            ("a b", "ASCII"),
            ("a/b", "ASCII"),
            ("é", "ASCII"),
        ] {
            let e = topic(bad).unwrap_err();
            assert!(
                e.to_string().contains("topic name") && e.to_string().contains(word),
                "{e}"
            );
        }
        assert!(topic(&"x".repeat(250)).is_err());
        assert!(partition("t", -1).is_err() && partition("t", 0).is_ok());
        assert!(offset("t", 0, -2, -1).is_err() && offset("t", 0, -1, -1).is_ok());
        assert!(count_or_default("num_partitions", "t", 0).is_err());
        assert!(count_or_default("num_partitions", "t", -1).is_ok());
    }
}
