//! NDJSON input in batches: the reader behind `roomgraph ingest` and the harness, feeding
//! [`Engine::ingest_stream`](super::Engine::ingest_stream).

use std::io::BufRead;

/// Reads up to `batch_lines` non-blank lines at a time as `(line number, bytes)` pairs (numbered from 1,
/// blank lines counted but skipped). Stops at end of input or at the first read error, which
/// [`LineBatches::error`] then reports.
pub struct LineBatches<R> {
    reader: R,
    batch_lines: usize,
    line_no: u64,
    bytes_read: u64,
    error: Option<std::io::Error>,
    done: bool,
}

impl<R: BufRead> LineBatches<R> {
    pub fn new(reader: R, batch_lines: usize) -> Self {
        LineBatches {
            reader,
            batch_lines: batch_lines.max(1),
            line_no: 0,
            bytes_read: 0,
            error: None,
            done: false,
        }
    }

    /// Bytes read so far (for progress reports).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Lines read so far, blank ones included.
    pub fn lines_read(&self) -> u64 {
        self.line_no
    }

    /// The read error that ended the input early, if any.
    pub fn take_error(&mut self) -> Option<std::io::Error> {
        self.error.take()
    }
}

impl<R: BufRead> Iterator for LineBatches<R> {
    type Item = Vec<(u64, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut batch = Vec::with_capacity(self.batch_lines);
        while batch.len() < self.batch_lines {
            let mut line = Vec::new();
            match self.reader.read_until(b'\n', &mut line) {
                Ok(0) => {
                    self.done = true;
                    break;
                }
                Ok(n) => {
                    self.bytes_read += n as u64;
                    self.line_no += 1;
                    if !line.iter().all(u8::is_ascii_whitespace) {
                        batch.push((self.line_no, line));
                    }
                }
                Err(e) => {
                    self.error = Some(e);
                    self.done = true;
                    break;
                }
            }
        }
        (!batch.is_empty()).then_some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_number_lines_and_skip_blank_ones() {
        let input: &[u8] = b"a\n\n  \nb\nc\nd";
        let mut batches = LineBatches::new(input, 2);
        let all: Vec<Vec<(u64, Vec<u8>)>> = batches.by_ref().collect();
        assert_eq!(
            all,
            vec![
                vec![(1, b"a\n".to_vec()), (4, b"b\n".to_vec())],
                vec![(5, b"c\n".to_vec()), (6, b"d".to_vec())],
            ]
        );
        assert_eq!(batches.lines_read(), 6);
        assert_eq!(batches.bytes_read(), input.len() as u64);
        assert!(batches.take_error().is_none());
    }
}
