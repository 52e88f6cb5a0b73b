//! Free text typed by people (names, address lines, reasons): one rule for what it may hold, so
//! the API and workflow validators refuse the same input with the same words.
//!
//! Refused: every control character (NUL, BEL, ESC, CR, LF, DEL and the C1 range) and the
//! Unicode bidirectional controls (U+202A–U+202E, U+2066–U+2069, U+200E/U+200F, U+061C), which
//! can make an address or a reason display differently from what it holds.

/// Why a text was refused: the first offending character and where it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("must not contain {what} (U+{code:04X} at character {position})")]
pub struct TextError {
    pub what: &'static str,
    pub code: u32,
    /// 1-based character position.
    pub position: usize,
}

/// What kind of forbidden character `c` is, if it is one.
fn forbidden(c: char) -> Option<&'static str> {
    match c {
        '\0' => Some("a NUL character"),
        '\r' | '\n' => Some("a line break"),
        '\u{1b}' => Some("an escape character"),
        '\u{7}' => Some("a bell character"),
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{61c}' => {
            Some("a bidirectional control")
        }
        c if c.is_control() => Some("a control character"),
        _ => None,
    }
}

/// Ok when `s` is a single line of printable text (spaces allowed, tabs not).
pub fn check_line(s: &str) -> Result<(), TextError> {
    match s
        .chars()
        .enumerate()
        .find_map(|(i, c)| forbidden(c).map(|w| (i, c, w)))
    {
        None => Ok(()),
        Some((i, c, what)) => Err(TextError {
            what,
            code: c as u32,
            position: i + 1,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_controls_and_bidi_overrides_and_names_them() {
        for (s, what) in [
            ("a\0b", "a NUL character"),
            ("a\r\nb", "a line break"),
            ("a\nb", "a line break"),
            ("a\u{1b}[31mb", "an escape character"),
            ("a\u{7}", "a bell character"),
            ("evil\u{202e}gpj.exe", "a bidirectional control"),
            ("x\u{2067}y", "a bidirectional control"),
            ("tab\there", "a control character"),
            ("del\u{7f}", "a control character"),
            ("c1\u{85}", "a control character"),
        ] {
            let e = check_line(s).unwrap_err();
            assert_eq!(e.what, what, "{s:?}");
        }
        let e = check_line("ab\u{202e}").unwrap_err();
        assert_eq!((e.code, e.position), (0x202e, 3));
        assert_eq!(
            e.to_string(),
            "must not contain a bidirectional control (U+202E at character 3)"
        );
    }

    #[test]
    fn accepts_ordinary_text_in_any_script() {
        for s in [
            "",
            "Zoë Müller",
            "北京市朝阳区 1号",
            "O'Brien-Smith, Apt. 4",
            "مرحبا",
        ] {
            assert_eq!(check_line(s), Ok(()), "{s:?}");
        }
    }
}
