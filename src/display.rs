//! Text made safe for a terminal: indexed code, paths, symbols and repository ids come
//! from files anyone could commit, so before any of it reaches a human's terminal its C0
//! and C1 control characters (ESC, CSI, OSC, carriage return, …) are shown as visible
//! escapes instead of being obeyed. Newline and tab stay. `--json` output never goes
//! through here: JSON escapes control characters itself and stays exact.

use std::borrow::Cow;
use std::io::Write;

/// True for the characters a terminal would act on: C0 (except tab and newline), DEL and
/// C1.
fn is_terminal_control(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || ('\u{80}'..='\u{9f}').contains(&c)
}

/// `text` with every terminal control character replaced by a visible escape (`\x1b`,
/// `\u{9b}`); borrowed when there is none.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_terminal_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_visible(&mut out, c);
    }
    Cow::Owned(out)
}

fn push_visible(out: &mut String, c: char) {
    if !is_terminal_control(c) {
        out.push(c);
    } else if (c as u32) < 0x80 {
        out.push_str(&format!("\\x{:02x}", c as u32));
    } else {
        out.push_str(&format!("\\u{{{:x}}}", c as u32));
    }
}

/// A writer for human output that escapes terminal control characters in everything
/// written through it, so no call site can forget to. Text is UTF-8; a character split
/// across two writes is held back until it is whole.
pub struct TerminalSafe<W: Write> {
    inner: W,
    /// Bytes of an incomplete UTF-8 character from the end of the last write.
    partial: Vec<u8>,
}

impl<W: Write> TerminalSafe<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> TerminalSafe<W> {
        TerminalSafe {
            inner,
            partial: Vec::new(),
        }
    }
}

impl<W: Write> Write for TerminalSafe<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.partial.extend_from_slice(buf);
        let valid = match std::str::from_utf8(&self.partial) {
            Ok(text) => text.len(),
            // An incomplete character at the end waits for the next write; anything else
            // invalid is replaced.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.partial.len(),
        };
        let rest = self.partial.split_off(valid);
        let text = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial = rest;
        self.inner.write_all(escape_controls(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.partial.is_empty() {
            let text = String::from_utf8_lossy(&self.partial).into_owned();
            self.partial.clear();
            self.inner.write_all(escape_controls(&text).as_bytes())?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for TerminalSafe<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_become_visible_and_the_rest_is_untouched() {
        assert!(matches!(escape_controls("plain\ttext\n"), Cow::Borrowed(_)));
        assert_eq!(
            escape_controls("a\x1b[2Jb\x07c\rd\u{9b}e\x7f"),
            "a\\x1b[2Jb\\x07c\\x0dd\\u{9b}e\\x7f"
        );
        assert_eq!(escape_controls("Café ünïcode"), "Café ünïcode");
    }

    #[test]
    fn the_writer_escapes_across_split_writes() {
        let mut out = Vec::new();
        {
            let mut safe = TerminalSafe::new(&mut out);
            let text = "x\u{9b}y\x1b]52;c;AAAA\x07é".as_bytes();
            // Write byte by byte: the two-byte C1 and é are split between writes.
            for b in text {
                safe.write_all(std::slice::from_ref(b)).unwrap();
            }
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "x\\u{9b}y\\x1b]52;c;AAAA\\x07é"
        );
    }
}
