//! NDJSON input in batches: the reader behind `roomgraph ingest` and the harness, feeding
//! [`Engine::ingest_stream`](super::Engine::ingest_stream).

use std::io::BufRead;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

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

    /// Reads the batches on a thread of their own, one batch ahead of the consumer, so that reading
    /// and splitting the next batch overlaps the engine's work on this one instead of running between
    /// batches. If no thread can be started, no batch is read and [`ReadAhead::take_error`] says why.
    pub fn read_ahead(self) -> ReadAhead<R>
    where
        R: Send + 'static,
    {
        let (tx, rx) = sync_channel(1);
        let spawned = std::thread::Builder::new()
            .name("roomgraph-read".into())
            .spawn(move || {
                let mut lines = self;
                for batch in lines.by_ref() {
                    if tx.send(batch).is_err() {
                        break;
                    }
                }
                lines
            });
        match spawned {
            Ok(thread) => ReadAhead {
                source: Source::Thread { rx, thread },
            },
            Err(e) => ReadAhead {
                source: Source::Failed(Some(std::io::Error::other(format!(
                    "cannot start the input reader thread: {e}"
                )))),
            },
        }
    }
}

/// [`LineBatches`] read on a thread of their own ([`LineBatches::read_ahead`]).
pub struct ReadAhead<R> {
    source: Source<R>,
}

enum Source<R> {
    Thread {
        rx: Receiver<Vec<(u64, Vec<u8>)>>,
        thread: JoinHandle<LineBatches<R>>,
    },
    Finished(LineBatches<R>),
    Failed(Option<std::io::Error>),
}

impl<R> ReadAhead<R> {
    /// Stops reading (if it has not ended yet) and reports the read error that ended the input early,
    /// if any. Call after the last batch.
    pub fn take_error(&mut self) -> Option<std::io::Error> {
        let source = std::mem::replace(&mut self.source, Source::Failed(None));
        self.source = match source {
            Source::Thread { rx, thread } => {
                drop(rx);
                match thread.join() {
                    Ok(lines) => Source::Finished(lines),
                    Err(_) => Source::Failed(Some(std::io::Error::other(
                        "the input reader thread panicked",
                    ))),
                }
            }
            other => other,
        };
        match &mut self.source {
            Source::Finished(lines) => lines.error.take(),
            Source::Failed(e) => e.take(),
            Source::Thread { .. } => None,
        }
    }
}

impl<R> Iterator for ReadAhead<R> {
    type Item = Vec<(u64, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        match &self.source {
            Source::Thread { rx, .. } => rx.recv().ok(),
            Source::Finished(_) | Source::Failed(_) => None,
        }
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

    #[test]
    fn read_ahead_gives_the_same_batches() {
        let input: Vec<u8> = (0..1000)
            .flat_map(|i| format!("line {i}\n\n").into_bytes())
            .collect();
        let direct: Vec<_> = LineBatches::new(&input[..], 7).collect();
        let mut ahead = LineBatches::new(std::io::Cursor::new(input), 7).read_ahead();
        let read: Vec<_> = ahead.by_ref().collect();
        assert_eq!(read, direct);
        assert!(ahead.take_error().is_none());
        assert_eq!(ahead.next(), None);
    }

    #[test]
    fn read_ahead_reports_the_read_error() {
        struct Broken(usize);
        impl std::io::Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::Error::other("disk on fire"));
                }
                self.0 -= 1;
                buf[..2].copy_from_slice(b"x\n");
                Ok(2)
            }
        }
        let mut ahead =
            LineBatches::new(std::io::BufReader::with_capacity(2, Broken(3)), 2).read_ahead();
        let lines: usize = ahead.by_ref().map(|b| b.len()).sum();
        assert_eq!(lines, 3);
        let e = ahead.take_error().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("disk on fire"));
    }

    #[test]
    fn stopping_early_ends_the_reader() {
        let input: Vec<u8> = (0..100_000)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        let mut ahead = LineBatches::new(std::io::Cursor::new(input), 10).read_ahead();
        assert_eq!(ahead.next().map(|b| b.len()), Some(10));
        assert!(ahead.take_error().is_none());
        assert_eq!(ahead.next(), None);
    }
}
