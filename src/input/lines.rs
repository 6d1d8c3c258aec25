//! One input file: opened (standard input spooled so it can be read twice) and read as significant
//! lines, every byte hashed on the way.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::InputError;

/// One readable input: where to read it and how to name it in messages.
#[derive(Debug)]
pub(super) struct Source {
    pub(super) display: String,
    pub(super) path: PathBuf,
    /// Keeps a spooled copy of standard input alive.
    pub(super) _spool: Option<tempfile::NamedTempFile>,
}

impl Source {
    pub(super) fn open(p: &Path) -> Result<Source, InputError> {
        if p.as_os_str() == "-" {
            let display = "<stdin>".to_string();
            let mut spool = tempfile::NamedTempFile::new().map_err(|source| InputError::Io {
                file: display.clone(),
                source,
            })?;
            std::io::copy(&mut std::io::stdin().lock(), spool.as_file_mut()).map_err(|source| {
                InputError::Io {
                    file: display.clone(),
                    source,
                }
            })?;
            return Ok(Source {
                display,
                path: spool.path().to_path_buf(),
                _spool: Some(spool),
            });
        }
        let display = p.display().to_string();
        // Open now so a missing or unreadable file is reported at once, with its name.
        File::open(p).map_err(|source| InputError::Io {
            file: display.clone(),
            source,
        })?;
        if p.is_dir() {
            return Err(InputError::Io {
                file: display,
                source: std::io::Error::other("is a directory"),
            });
        }
        Ok(Source {
            display,
            path: p.to_path_buf(),
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
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => {
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
                Ok(_) => self.hash.update(&self.buf),
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
