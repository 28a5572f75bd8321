//! Reading input lines without trusting their length.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::chat::limits::MAX_INPUT_BYTES;

/// One line of input: its text (at most [`MAX_INPUT_BYTES`] + 1 bytes of it kept, newline
/// removed) and its full length in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The line's text, possibly cut.
    pub text: String,
    /// The full length in bytes, without the newline.
    pub len: usize,
}

impl Line {
    /// True when the line is longer than a command may be.
    pub fn too_long(&self) -> bool {
        self.len > MAX_INPUT_BYTES
    }
}

/// Reads the next line; `None` at the end of input. Bytes past the limit are read and dropped,
/// so a huge line costs no memory; invalid UTF-8 is replaced.
pub async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> std::io::Result<Option<Line>> {
    let keep = MAX_INPUT_BYTES + 1;
    let mut kept: Vec<u8> = Vec::new();
    let mut len = 0usize;
    let mut saw_any = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            if !saw_any {
                return Ok(None);
            }
            break;
        }
        saw_any = true;
        let (chunk, found_newline) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], Some(i)),
            None => (buf, None),
        };
        len += chunk.len();
        let room = keep.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let consumed = found_newline.map(|i| i + 1).unwrap_or(buf.len());
        reader.consume(consumed);
        if found_newline.is_some() {
            break;
        }
    }
    if kept.last() == Some(&b'\r') && len <= keep {
        kept.pop();
        len = len.saturating_sub(1);
    }
    Ok(Some(Line {
        text: String::from_utf8_lossy(&kept).into_owned(),
        len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_bounded() {
        let long = "x".repeat(20_000);
        let input = format!("a\r\n{long}\nb");
        let mut r = input.as_bytes();
        let a = read_line(&mut r).await.unwrap().unwrap();
        assert_eq!(a.text, "a");
        let l = read_line(&mut r).await.unwrap().unwrap();
        assert!(l.too_long());
        assert_eq!(l.len, 20_000);
        assert_eq!(l.text.len(), MAX_INPUT_BYTES + 1);
        assert_eq!(read_line(&mut r).await.unwrap().unwrap().text, "b");
        assert_eq!(read_line(&mut r).await.unwrap(), None);
    }
}
