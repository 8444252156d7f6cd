//! A Server-Sent Events decoder, reduced to what chat-completion streams use:
//! the `data` field of each event. Bytes arrive in arbitrary pieces; lines end
//! with LF, CRLF or CR; comments (`: keep-alive`) and other fields are
//! skipped. It is small enough to own rather than adding a dependency whose
//! stream adapter would sit awkwardly with the stall timeout and
//! cancellation handled around each read.

/// Decodes a byte stream into the data of its events.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    line: Vec<u8>,
    data: Option<String>,
    /// The previous byte was a CR, so an LF right after it ends nothing.
    after_cr: bool,
}

impl SseDecoder {
    /// Feeds `bytes`, returning the data of each event they complete.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut events = Vec::new();
        for &byte in bytes {
            let after_cr = std::mem::replace(&mut self.after_cr, false);
            match byte {
                b'\n' if after_cr => {}
                b'\n' => self.end_line(&mut events),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut events);
                }
                _ => self.line.push(byte),
            }
        }
        events
    }

    /// Ends the stream: an unterminated last line and event still count.
    pub(crate) fn finish(&mut self) -> Vec<String> {
        let mut events = Vec::new();
        if !self.line.is_empty() {
            self.end_line(&mut events);
        }
        events.extend(self.data.take());
        events
    }

    /// Bytes held back waiting for the end of a line or event.
    pub(crate) fn pending(&self) -> usize {
        self.line.len() + self.data.as_ref().map_or(0, String::len)
    }

    fn end_line(&mut self, events: &mut Vec<String>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            events.extend(self.data.take());
            return;
        }
        let line = String::from_utf8_lossy(&line);
        let line = line.strip_prefix('\u{feff}').unwrap_or(&line);
        if line.starts_with(':') {
            return;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        if field != "data" {
            return;
        }
        let value = value.strip_prefix(' ').unwrap_or(value);
        match &mut self.data {
            Some(data) => {
                data.push('\n');
                data.push_str(value);
            }
            None => self.data = Some(value.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(pieces: &[&[u8]]) -> Vec<String> {
        let mut decoder = SseDecoder::default();
        let mut events: Vec<String> = pieces.iter().flat_map(|p| decoder.push(p)).collect();
        events.extend(decoder.finish());
        events
    }

    #[test]
    fn events_end_at_blank_lines_whatever_the_line_endings() {
        let expected = vec!["{\"a\":1}".to_owned(), "[DONE]".to_owned()];
        assert_eq!(decode(&[b"data: {\"a\":1}\n\ndata: [DONE]\n\n"]), expected);
        assert_eq!(
            decode(&[b"data: {\"a\":1}\r\n\r\ndata: [DONE]\r\n\r\n"]),
            expected
        );
        assert_eq!(decode(&[b"data: {\"a\":1}\r\rdata: [DONE]\r\r"]), expected);
    }

    #[test]
    fn events_split_anywhere_are_reassembled() {
        let stream = "data: {\"content\":\"h\u{e9}llo\"}\r\n\r\ndata: [DONE]\r\n\r\n".as_bytes();
        for cut in 0..stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(
                decode(&[a, b]),
                vec![
                    "{\"content\":\"h\u{e9}llo\"}".to_owned(),
                    "[DONE]".to_owned()
                ],
                "cut at {cut}"
            );
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode(&bytes).len(), 2);
    }

    #[test]
    fn comments_and_other_fields_are_skipped_and_data_lines_join() {
        let events = decode(&[
            b": keep-alive\n\nevent: message\nid: 7\nretry: 10\ndata: one\ndata:two\n\n",
            b":ping\n\n\n",
        ]);
        assert_eq!(events, vec!["one\ntwo".to_owned()]);
    }

    #[test]
    fn an_unterminated_last_event_still_counts() {
        assert_eq!(decode(&[b"data: [DONE]"]), vec!["[DONE]".to_owned()]);
    }
}
