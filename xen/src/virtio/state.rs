//! The text a device model saves for its successor (see [`super::VirtioPci::save_state`]):
//! lines of a keyword and numbers, decimal or `0x` hexadecimal.

use core::str::SplitWhitespace;

/// One number: decimal, or hexadecimal after `0x`.
pub(crate) fn num(s: Option<&str>) -> Option<u64> {
    let s = s?;
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The next `N` numbers of a line.
pub(crate) fn nums<const N: usize>(w: &mut SplitWhitespace<'_>) -> Option<[u64; N]> {
    let mut out = [0; N];
    for v in &mut out {
        *v = num(w.next())?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_both_bases_and_what_is_not_one() {
        let mut w = "12 0x1f 0 0xffffffffffffffff".split_whitespace();
        assert_eq!(nums::<4>(&mut w), Some([12, 31, 0, u64::MAX]));
        assert_eq!(nums::<1>(&mut "x".split_whitespace()), None);
        assert_eq!(nums::<2>(&mut "1".split_whitespace()), None, "too few");
        assert_eq!(num(Some("0x")), None);
        assert_eq!(num(Some("-1")), None);
    }
}
