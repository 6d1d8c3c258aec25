//! One input file: opened (standard input and any other file that is not a regular file spooled so it
//! can be read twice) and read as significant lines, every byte hashed on the way. No line may hold
//! more than [`MAX_LINE`] bytes, so neither an endless line (`/dev/zero`) nor a huge one is ever held
//! in memory or quoted whole.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::InputError;

/// The most bytes an input line may hold, its line end not counted: 64 KiB. AWS's names are at most
/// 128 bytes; a CSV or JSON Lines pair, with its quoting and spacing, is far below this.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// The most bytes of an over-long line quoted in its message.
const QUOTED: usize = 32;

/// One readable input: where to read it and how to name it in messages.
#[derive(Debug)]
pub(super) struct Source {
    pub(super) display: String,
    pub(super) path: PathBuf,
    /// The extension of the name the user gave (`csv`, `jsonl`), lowercase; `None` for `-`.
    pub(super) ext: Option<String>,
    /// Keeps a spooled copy of standard input (or of a FIFO, a device) alive.
    pub(super) _spool: Option<tempfile::NamedTempFile>,
}

impl Source {
    pub(super) fn open(p: &Path) -> Result<Source, InputError> {
        if p.as_os_str() == "-" {
            let display = "<stdin>".to_string();
            let spool = spool(std::io::stdin().lock(), &display)?;
            return Ok(Source {
                display,
                path: spool.path().to_path_buf(),
                ext: None,
                _spool: Some(spool),
            });
        }
        let display = p.display().to_string();
        let io = |source| InputError::Io {
            file: display.clone(),
            source,
        };
        // Open now so a missing or unreadable file is reported at once, with its name.
        let file = File::open(p).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if meta.is_dir() {
            return Err(io(std::io::Error::other("is a directory")));
        }
        let ext = p
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if !meta.is_file() {
            // A FIFO, a device, `/dev/stdin`, a process substitution (`/dev/fd/N`): it can be read
            // once only, so it is read once, here, into a spool that every later pass reads.
            let spool = spool(file, &display)?;
            return Ok(Source {
                display,
                path: spool.path().to_path_buf(),
                ext,
                _spool: Some(spool),
            });
        }
        Ok(Source {
            display,
            path: p.to_path_buf(),
            ext,
            _spool: None,
        })
    }

    /// Reads the file from the start. `expect`: the xxh3 of its bytes when it was validated; a read
    /// to the end that hashes otherwise ends with [`InputError::Changed`].
    pub(super) fn lines(&self, expect: Option<u64>) -> Result<Lines, InputError> {
        let f = File::open(&self.path).map_err(|source| InputError::Io {
            file: self.display.clone(),
            source,
        })?;
        Ok(Lines {
            reader: BufReader::with_capacity(1 << 16, f),
            buf: Vec::with_capacity(256),
            line: 0,
            file: self.display.as_str().into(),
            hash: xxhash_rust::xxh3::Xxh3::new(),
            expect,
            at_end: false,
        })
    }
}

/// Copies `from` to a temporary file, line by line: it stops at the first line longer than
/// [`MAX_LINE`] (so `/dev/zero` ends at once), naming it like any other pass would.
fn spool(from: impl Read, display: &str) -> Result<tempfile::NamedTempFile, InputError> {
    let io = |source| InputError::Io {
        file: display.to_string(),
        source,
    };
    let mut spool = tempfile::NamedTempFile::new().map_err(io)?;
    let mut reader = BufReader::with_capacity(1 << 16, from);
    let mut buf = Vec::with_capacity(256);
    let mut line = 0u64;
    {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, spool.as_file_mut());
        loop {
            buf.clear();
            let capped = read_line_capped(&mut reader, &mut buf).map_err(io)?;
            if buf.is_empty() {
                break;
            }
            line += 1;
            if capped == Capped::TooLong {
                return Err(too_long(display, line, &buf));
            }
            out.write_all(&buf).map_err(io)?;
        }
        out.flush().map_err(io)?;
    }
    Ok(spool)
}

/// How [`read_line_capped`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Capped {
    /// A whole line (through its `\n`, or to the end of the file), or nothing at the end.
    Line,
    /// More than [`MAX_LINE`] bytes before a `\n`: `buf` holds the first of them only.
    TooLong,
}

/// Appends one line (through its `\n`) to `buf`, reading no more than [`MAX_LINE`] + 2 bytes of it
/// (a line end `\r\n` is not counted).
pub(super) fn read_line_capped(r: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Capped> {
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok(Capped::Line);
        }
        let room = MAX_LINE + 2 - buf.len();
        let (take, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) if i < room => (i + 1, true),
            _ => (avail.len().min(room), false),
        };
        buf.extend_from_slice(&avail[..take]);
        r.consume(take);
        let content = buf.strip_suffix(b"\n").unwrap_or(buf);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.len() > MAX_LINE {
            return Ok(Capped::TooLong);
        }
        if done {
            return Ok(Capped::Line);
        }
    }
}

/// The error of line `line` of `file`, longer than [`MAX_LINE`], quoting only its start.
fn too_long(file: &str, line: u64, buf: &[u8]) -> InputError {
    let start = String::from_utf8_lossy(&buf[..buf.len().min(QUOTED)]).into_owned();
    InputError::LineTooLong {
        file: file.to_string(),
        line,
        start,
    }
}

/// Significant lines of a file: BOM, CR, surrounding blanks, blank lines and `#` comments removed.
/// Every byte read is hashed on the way, so the pass that validates a file also fingerprints it, and a
/// later pass can tell that the file changed in between.
pub(super) struct Lines {
    pub(super) reader: BufReader<File>,
    pub(super) buf: Vec<u8>,
    pub(super) line: u64,
    pub(super) file: std::sync::Arc<str>,
    pub(super) hash: xxhash_rust::xxh3::Xxh3,
    pub(super) expect: Option<u64>,
    pub(super) at_end: bool,
}

impl Lines {
    /// The xxh3 of the bytes read so far (of the whole file once [`Lines::next_line`] gave `None`).
    pub(super) fn digest(&self) -> u64 {
        self.hash.digest()
    }

    /// The next significant line and its 1-based number.
    pub(super) fn next_line(&mut self) -> Option<Result<(u64, &str), InputError>> {
        let (start, end) = loop {
            self.buf.clear();
            match read_line_capped(&mut self.reader, &mut self.buf) {
                Ok(_) if self.buf.is_empty() => {
                    if self.at_end {
                        return None;
                    }
                    self.at_end = true;
                    return match self.expect {
                        Some(e) if e != self.hash.digest() => Some(Err(InputError::Changed {
                            file: self.file.to_string(),
                        })),
                        _ => None,
                    };
                }
                Ok(Capped::TooLong) => {
                    self.line += 1;
                    self.at_end = true;
                    return Some(Err(too_long(&self.file, self.line, &self.buf)));
                }
                Ok(Capped::Line) => self.hash.update(&self.buf),
                Err(source) => {
                    return Some(Err(InputError::Io {
                        file: self.file.to_string(),
                        source,
                    }))
                }
            }
            self.line += 1;
            let mut start = 0;
            if self.line == 1 && self.buf.starts_with(b"\xEF\xBB\xBF") {
                start = 3;
            }
            let mut end = self.buf.len();
            while start < end && self.buf[start].is_ascii_whitespace() {
                start += 1;
            }
            while end > start && self.buf[end - 1].is_ascii_whitespace() {
                end -= 1;
            }
            if start == end || self.buf[start] == b'#' {
                continue;
            }
            break (start, end);
        };
        let line = self.line;
        Some(match std::str::from_utf8(&self.buf[start..end]) {
            Ok(s) => Ok((line, s)),
            Err(_) => Err(InputError::NotUtf8 {
                file: self.file.to_string(),
                line,
            }),
        })
    }
}

/// `s` cut to at most `max` bytes (at a character boundary), with `…` when cut: what a message
/// quotes of a line, a name or a header.
pub(super) fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_up_to_the_cap_and_no_further() {
        let mut body = b"short\r\n".to_vec();
        body.extend([b'a'; MAX_LINE]);
        body.extend(b"\r\n");
        body.extend([b'b'; MAX_LINE + 1]);
        body.extend(b"\n");
        let mut r = BufReader::with_capacity(1000, &body[..]);
        let mut buf = Vec::new();
        assert_eq!(read_line_capped(&mut r, &mut buf).unwrap(), Capped::Line);
        assert_eq!(buf, b"short\r\n");
        buf.clear();
        assert_eq!(read_line_capped(&mut r, &mut buf).unwrap(), Capped::Line);
        assert_eq!(
            buf.len(),
            MAX_LINE + 2,
            "a line at the cap, CRLF not counted"
        );
        buf.clear();
        assert_eq!(
            read_line_capped(&mut r, &mut buf).unwrap(),
            Capped::TooLong,
            "one byte over"
        );
        // A line three times the cap is read no further than the cap.
        let body = [b'c'; 3 * MAX_LINE];
        let mut r = BufReader::with_capacity(1000, &body[..]);
        buf.clear();
        assert_eq!(read_line_capped(&mut r, &mut buf).unwrap(), Capped::TooLong);
        assert!(buf.len() <= MAX_LINE + 2);
        assert_eq!(clip("ééé", 3), "é…");
        assert_eq!(clip("abc", 3), "abc");
    }
}
