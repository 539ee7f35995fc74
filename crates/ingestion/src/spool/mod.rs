//! The on-disk spool: where batches go while InfluxDB cannot take them.
//!
//! Each batch becomes one segment file, `{sequence:020}.lp`, holding its
//! line protocol. A segment is written to a temporary file, flushed to disk
//! (`fsync`), renamed into place and the directory flushed too, so after a
//! crash a segment is either whole or absent. Only then are the batch's
//! messages acknowledged. Segments are replayed oldest first and removed
//! once InfluxDB has them; points are idempotent, so a segment replayed
//! twice (crash between write and removal) stores nothing twice.
//!
//! The spool is bounded: when it holds `max_bytes`, `append` refuses and
//! ingestion stops acknowledging until it drains.
//!
//! `replay` is the task that drains it ([`run_replay`]).

mod replay;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub(crate) use replay::run_replay;

/// Why a batch could not be spooled.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The spool holds its maximum: nothing more until it drains.
    #[error("the spool is full ({bytes} of {max_bytes} bytes)")]
    Full {
        /// Bytes held.
        bytes: u64,
        /// The bound.
        max_bytes: u64,
    },
    /// The disk refused (full, read-only, permissions…).
    #[error("cannot write the spool at {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Another process holds the spool directory.
    #[error(
        "the spool directory {0} is in use by another process; give each ingestion process its own INGEST_SPOOL_DIR"
    )]
    Locked(PathBuf),
}

#[derive(Debug)]
struct State {
    /// Sequence number and size of each segment, oldest first.
    segments: VecDeque<(u64, u64)>,
    bytes: u64,
    next: u64,
}

/// The spool of one ingestion process.
#[derive(Debug)]
pub(crate) struct Spool {
    directory: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
    /// Held for the life of the spool: one process per directory.
    _lock: File,
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Spool {
    /// Opens (creating if needed) the spool directory and takes stock of
    /// the segments a previous run left: they are replayed first.
    pub(crate) fn open(directory: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        fs::create_dir_all(directory).map_err(io_error(directory))?;
        let lock_path = directory.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        if lock.try_lock().is_err() {
            return Err(SpoolError::Locked(directory.to_owned()));
        }
        let mut segments = Vec::new();
        for entry in fs::read_dir(directory).map_err(io_error(directory))? {
            let entry = entry.map_err(io_error(directory))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") {
                // A write that never finished: its batch was not acknowledged.
                let _ = fs::remove_file(entry.path());
            } else if let Some(sequence) = name
                .strip_suffix(".lp")
                .and_then(|stem| stem.parse::<u64>().ok())
            {
                let size = entry.metadata().map_err(io_error(directory))?.len();
                segments.push((sequence, size));
            }
        }
        segments.sort_unstable();
        let bytes = segments.iter().map(|(_, size)| size).sum();
        let next = segments.last().map_or(0, |(sequence, _)| sequence + 1);
        Ok(Self {
            directory: directory.to_owned(),
            max_bytes,
            state: Mutex::new(State {
                segments: segments.into(),
                bytes,
                next,
            }),
            _lock: lock,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn path(&self, sequence: u64) -> PathBuf {
        self.directory.join(format!("{sequence:020}.lp"))
    }

    /// Stores a batch durably. Blocking: call from `spawn_blocking`.
    pub(crate) fn append(&self, body: &[u8]) -> Result<(), SpoolError> {
        let sequence = {
            let mut state = self.state();
            if state.bytes + body.len() as u64 > self.max_bytes && !state.segments.is_empty() {
                return Err(SpoolError::Full {
                    bytes: state.bytes,
                    max_bytes: self.max_bytes,
                });
            }
            let sequence = state.next;
            state.next += 1;
            sequence
        };
        let path = self.path(sequence);
        let temporary = path.with_extension("tmp");
        let mut file = File::create(&temporary).map_err(io_error(&temporary))?;
        file.write_all(body).map_err(io_error(&temporary))?;
        file.sync_all().map_err(io_error(&temporary))?;
        fs::rename(&temporary, &path).map_err(io_error(&path))?;
        File::open(&self.directory)
            .and_then(|directory| directory.sync_all())
            .map_err(io_error(&self.directory))?;
        let mut state = self.state();
        state.bytes += body.len() as u64;
        // Sequences are taken in order but may finish out of order.
        let position = state
            .segments
            .partition_point(|(existing, _)| *existing < sequence);
        state
            .segments
            .insert(position, (sequence, body.len() as u64));
        Ok(())
    }

    /// The oldest segment, if any: its sequence and contents. Blocking.
    pub(crate) fn oldest(&self) -> Result<Option<(u64, Vec<u8>)>, SpoolError> {
        let Some((sequence, _)) = self.state().segments.front().copied() else {
            return Ok(None);
        };
        let path = self.path(sequence);
        let body = fs::read(&path).map_err(io_error(&path))?;
        Ok(Some((sequence, body)))
    }

    /// Removes a replayed segment. Blocking.
    pub(crate) fn remove(&self, sequence: u64) -> Result<(), SpoolError> {
        let path = self.path(sequence);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(SpoolError::Io { path, source }),
        }
        let mut state = self.state();
        if let Some(position) = state
            .segments
            .iter()
            .position(|(existing, _)| *existing == sequence)
            && let Some((_, size)) = state.segments.remove(position)
        {
            state.bytes -= size;
        }
        Ok(())
    }

    /// Whether nothing waits for replay.
    pub(crate) fn is_empty(&self) -> bool {
        self.state().segments.is_empty()
    }

    /// Segments and bytes waiting for replay.
    pub(crate) fn depth(&self) -> (usize, u64) {
        let state = self.state();
        (state.segments.len(), state.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory(name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("stoker-spool-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        path
    }

    #[test]
    fn segments_replay_oldest_first_and_survive_a_reopen() {
        let path = directory("order");
        {
            let spool = Spool::open(&path, 1 << 20).unwrap();
            spool.append(b"first\n").unwrap();
            spool.append(b"second\n").unwrap();
            assert_eq!(spool.depth(), (2, 13));
        }
        // A write cut short by a crash is discarded on open.
        fs::write(path.join("00000000000000000002.tmp"), b"partial").unwrap();
        let spool = Spool::open(&path, 1 << 20).unwrap();
        assert_eq!(spool.depth(), (2, 13));
        let (sequence, body) = spool.oldest().unwrap().unwrap();
        assert_eq!(body, b"first\n");
        spool.remove(sequence).unwrap();
        spool.append(b"third\n").unwrap();
        let (sequence, body) = spool.oldest().unwrap().unwrap();
        assert_eq!(body, b"second\n");
        spool.remove(sequence).unwrap();
        assert_eq!(spool.oldest().unwrap().unwrap().1, b"third\n");
        fs::remove_dir_all(&path).unwrap();
    }

    #[test]
    fn a_full_spool_refuses_and_accepts_again_once_drained() {
        let path = directory("full");
        let spool = Spool::open(&path, 10).unwrap();
        spool.append(b"0123456789").unwrap();
        assert!(matches!(spool.append(b"x"), Err(SpoolError::Full { .. })));
        let (sequence, _) = spool.oldest().unwrap().unwrap();
        spool.remove(sequence).unwrap();
        // One batch larger than the bound still goes into an empty spool:
        // refusing it would block ingestion for ever.
        spool.append(b"0123456789abc").unwrap();
        fs::remove_dir_all(&path).unwrap();
    }

    #[test]
    fn one_process_per_directory() {
        let path = directory("lock");
        let _first = Spool::open(&path, 10).unwrap();
        assert!(matches!(Spool::open(&path, 10), Err(SpoolError::Locked(_))));
        fs::remove_dir_all(&path).unwrap();
    }
}
