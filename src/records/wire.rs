//! Small, non-panicking readers for the record formats' hot paths.
//!
//! Everything returns `Option`: the callers turn a `None` into one error
//! that names the batch, so the per-field paths build no error values.

/// Splits `n` bytes off the front of `s`.
#[inline]
pub(crate) fn take<'a>(s: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if n > s.len() {
        return None;
    }
    let (head, tail) = s.split_at(n);
    *s = tail;
    Some(head)
}

/// Splits `N` bytes off the front of `s` as an array.
#[inline]
pub(crate) fn take_array<const N: usize>(s: &mut &[u8]) -> Option<[u8; N]> {
    take(s, N).and_then(|b| b.try_into().ok())
}
