//! Reading a dataset the tool wrote: a Parquet or Arrow IPC file, or a directory of part files, as a
//! stream of RecordBatches (bounded memory: one batch at a time).

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::error::ArrowError;
use arrow::ipc::reader::FileReader;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::sink::Format;

/// Errors reading a dataset, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("{path}: {source}")]
    Arrow {
        path: PathBuf,
        #[source]
        source: ArrowError,
    },
    #[error("{0}: no .parquet or .arrow files found")]
    Empty(PathBuf),
}

/// The data files of a dataset: the file itself, or the committed part files of a directory (hidden
/// temporaries excluded), in name order.
pub fn data_files(path: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let io = |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    };
    if !path.is_dir() {
        std::fs::metadata(path).map_err(io)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let p = entry.map_err(io)?.path();
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.') || n.starts_with('_'));
        if !hidden && p.is_file() && Format::from_path(&p).is_some() {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(DatasetError::Empty(path.to_path_buf()));
    }
    Ok(files)
}

/// Batches of one file, by its extension (Parquet unless `.arrow`/`.feather`/`.ipc`).
pub fn read_file(
    path: &Path,
    batch_rows: usize,
) -> Result<Box<dyn Iterator<Item = Result<RecordBatch, DatasetError>> + Send>, DatasetError> {
    let f = File::open(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let p = path.to_path_buf();
    match Format::from_path(path).unwrap_or(Format::Parquet) {
        Format::Parquet => {
            let reader = ParquetRecordBatchReaderBuilder::try_new(f)
                .and_then(|b| b.with_batch_size(batch_rows).build())
                .map_err(|source| DatasetError::Parquet {
                    path: p.clone(),
                    source,
                })?;
            Ok(Box::new(reader.map(move |r| {
                r.map_err(|source| DatasetError::Arrow {
                    path: p.clone(),
                    source,
                })
            })))
        }
        Format::Arrow => {
            let reader = FileReader::try_new(f, None).map_err(|source| DatasetError::Arrow {
                path: p.clone(),
                source,
            })?;
            Ok(Box::new(reader.map(move |r| {
                r.map_err(|source| DatasetError::Arrow {
                    path: p.clone(),
                    source,
                })
            })))
        }
    }
}

/// Every batch of a dataset, file after file.
pub fn read_dataset(
    path: &Path,
    batch_rows: usize,
) -> Result<impl Iterator<Item = Result<RecordBatch, DatasetError>>, DatasetError> {
    let files = data_files(path)?;
    Ok(files
        .into_iter()
        .flat_map(move |f| match read_file(&f, batch_rows) {
            Ok(it) => it,
            Err(e) => Box::new(std::iter::once(Err(e))),
        }))
}
