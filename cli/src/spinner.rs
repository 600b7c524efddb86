//! A tiny progress spinner on stderr: a frame, the job's status and the time
//! elapsed, redrawn in place every 100 ms. It runs on its own thread (it must
//! keep turning while the async runtime waits on a long-poll) and is a no-op
//! unless stderr is a terminal, so pipes and logs never see control codes.

use std::io::Write;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const TICK: Duration = Duration::from_millis(100);

enum Msg {
    Set(String),
    Stop,
}

/// A running spinner; [`Spinner::finish`] (or drop) clears its line.
pub struct Spinner {
    tx: Option<Sender<Msg>>,
    thread: Option<JoinHandle<()>>,
}

impl Spinner {
    /// Starts drawing `status` when `enabled` (stderr is a terminal); otherwise does nothing.
    pub fn start(enabled: bool, status: &str) -> Spinner {
        if !enabled {
            return Spinner { tx: None, thread: None };
        }
        let (tx, rx) = channel::<Msg>();
        let mut status = status.to_string();
        let spawned = std::thread::Builder::new().name("spinner".into()).spawn(move || {
            let started = Instant::now();
            let mut frame = 0usize;
            let mut err = std::io::stderr();
            loop {
                let _ = write!(
                    err,
                    "\r{} {status} · {:.1} s\x1b[K",
                    FRAMES[frame % FRAMES.len()],
                    started.elapsed().as_secs_f64()
                );
                let _ = err.flush();
                frame += 1;
                match rx.recv_timeout(TICK) {
                    Ok(Msg::Set(s)) => status = s,
                    Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                    Err(RecvTimeoutError::Timeout) => {}
                }
            }
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        });
        match spawned {
            Ok(thread) => Spinner { tx: Some(tx), thread: Some(thread) },
            // No thread, no spinner: progress display is optional.
            Err(_) => Spinner { tx: None, thread: None },
        }
    }

    /// Changes the status text.
    pub fn set(&mut self, status: &str) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Set(status.to_string()));
        }
    }

    /// Stops and clears the line (idempotent).
    pub fn finish(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Msg::Stop);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.finish();
    }
}
