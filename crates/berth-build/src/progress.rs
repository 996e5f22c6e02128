//! Build progress, in BuildKit's shapes: `plain` prints numbered lines (`#3 [2/4] RUN ...`,
//! the step's output with its time, `#3 DONE 0.4s` or `#3 CACHED`), so the lines of stages
//! that build in parallel stay readable; `tty` is a live view where a step's line is
//! rewritten in place when it finishes (when nothing else was printed since), its output
//! shown under it while it runs; `quiet` prints nothing (a failed step's output is kept for
//! the error). One `Progress` is shared by every stage's thread behind a mutex.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Numbered lines.
    Plain,
    /// A live view on a terminal.
    Tty,
    /// Nothing.
    Quiet,
}

struct Step {
    title: String,
    started: Instant,
    tail: Vec<String>,
}

/// The progress writer.
pub struct Progress {
    mode: Mode,
    out: Box<dyn Write + Send>,
    n: usize,
    started: Instant,
    steps: HashMap<usize, Step>,
    /// The step whose title or output was printed last, and how many output lines follow
    /// its title (to redraw over them).
    last: (usize, usize),
    /// The output of the step that failed.
    failed: Vec<String>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("mode", &self.mode)
            .field("steps", &self.n)
            .finish()
    }
}

/// Locks a shared progress, whatever another thread did while holding it.
pub fn lock(p: &Mutex<Progress>) -> std::sync::MutexGuard<'_, Progress> {
    p.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Progress {
    /// A progress writer to `out`.
    pub fn new(mode: Mode, out: Box<dyn Write + Send>) -> Progress {
        Progress {
            mode,
            out,
            n: 0,
            started: Instant::now(),
            steps: HashMap::new(),
            last: (0, 0),
            failed: Vec::new(),
        }
    }

    /// The last lines of the failed step's output.
    pub fn tail(&self) -> &[String] {
        &self.failed
    }

    /// Starts a step; returns its number.
    pub fn start(&mut self, title: &str) -> usize {
        self.n += 1;
        let n = self.n;
        self.steps.insert(
            n,
            Step {
                title: title.to_string(),
                started: Instant::now(),
                tail: Vec::new(),
            },
        );
        match self.mode {
            Mode::Plain => {
                let _ = writeln!(self.out, "#{n} {title}");
            }
            Mode::Tty => {
                let _ = writeln!(self.out, "\x1b[36m => {title}\x1b[0m");
            }
            Mode::Quiet => {}
        }
        self.last = (n, 0);
        let _ = self.out.flush();
        n
    }

    /// One line of output of step `n`.
    pub fn line(&mut self, n: usize, text: &str) {
        let t = match self.steps.get_mut(&n) {
            Some(s) => {
                if s.tail.len() >= 20 {
                    s.tail.remove(0);
                }
                s.tail.push(text.to_string());
                s.started.elapsed().as_secs_f64()
            }
            None => 0.0,
        };
        match self.mode {
            Mode::Plain => {
                let _ = writeln!(self.out, "#{n} {t:.3} {text}");
            }
            Mode::Tty => {
                let _ = writeln!(self.out, "\x1b[2m => => # {text}\x1b[0m");
                self.last = if self.last.0 == n { (n, self.last.1 + 1) } else { (0, 0) };
            }
            Mode::Quiet => {}
        }
        let _ = self.out.flush();
    }

    /// Step `n` finished (from the cache, or with nothing to time).
    pub fn done(&mut self, n: usize, cached: bool) {
        match self.mode {
            Mode::Plain => {
                let _ = writeln!(self.out, "#{n} {}", if cached { "CACHED" } else { "DONE 0.0s" });
            }
            Mode::Tty => self.redraw(n, if cached { "CACHED".into() } else { "0.0s".into() }),
            Mode::Quiet => {}
        }
        self.steps.remove(&n);
        let _ = self.out.flush();
    }

    /// Step `n` finished after `took`.
    pub fn done_in(&mut self, n: usize, took: Duration) {
        match self.mode {
            Mode::Plain => {
                let _ = writeln!(self.out, "#{n} DONE {:.1}s", took.as_secs_f64());
            }
            Mode::Tty => self.redraw(n, format!("{:.1}s", took.as_secs_f64())),
            Mode::Quiet => {}
        }
        self.steps.remove(&n);
        let _ = self.out.flush();
    }

    /// Step `n` failed.
    pub fn fail(&mut self, n: usize, message: &str) {
        let step = self.steps.remove(&n);
        match self.mode {
            Mode::Plain => {
                let _ = writeln!(self.out, "#{n} ERROR: {message}");
            }
            Mode::Tty => {
                let title = step.as_ref().map(|s| s.title.as_str()).unwrap_or("");
                let _ = writeln!(self.out, "\x1b[31m => ERROR {title}\x1b[0m");
            }
            Mode::Quiet => {}
        }
        self.failed = step.map(|s| s.tail).unwrap_or_default();
        let _ = self.out.flush();
    }

    /// The whole build's time.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn redraw(&mut self, n: usize, status: String) {
        let title = self.steps.get(&n).map(|s| s.title.clone()).unwrap_or_default();
        // Back over the step's title and output when they were the last thing printed.
        if self.last.0 == n {
            let _ = write!(self.out, "\x1b[{}A\x1b[J", self.last.1 + 1);
        }
        let _ = writeln!(self.out, " => {title:<60} {status}");
        self.last = (0, 0);
    }

    /// A writer for step `n`'s process output (split into lines).
    pub fn sink(p: &Mutex<Progress>, n: usize) -> Sink<'_> {
        Sink {
            p,
            n,
            partial: Vec::new(),
        }
    }
}

/// Turns a byte stream into progress lines.
pub struct Sink<'a> {
    p: &'a Mutex<Progress>,
    n: usize,
    partial: Vec<u8>,
}

impl std::fmt::Debug for Sink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").field("step", &self.n).finish()
    }
}

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.partial.extend_from_slice(buf);
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            lock(self.p).line(self.n, &text);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Sink<'_> {
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            let text = String::from_utf8_lossy(&self.partial).into_owned();
            lock(self.p).line(self.n, &text);
        }
    }
}
