//! Build progress, in BuildKit's shapes: `plain` prints numbered lines (`#3 [2/4] RUN ...`,
//! the step's output with its time, `#3 DONE 0.4s` or `#3 CACHED`); `tty` is a live view
//! where each step's line is rewritten in place when it finishes, its output shown under it
//! while it runs; `quiet` prints nothing (but a failed step's output is kept for the error).

use std::io::Write;
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

/// The progress writer.
pub struct Progress {
    mode: Mode,
    out: Box<dyn Write + Send>,
    n: usize,
    started: Instant,
    step_started: Instant,
    title: String,
    /// Output lines written under the current step in tty mode (to redraw over them).
    below: usize,
    /// The current step's output, kept for the error message.
    tail: Vec<String>,
}

impl Progress {
    /// A progress writer to `out`.
    pub fn new(mode: Mode, out: Box<dyn Write + Send>) -> Progress {
        Progress {
            mode,
            out,
            n: 0,
            started: Instant::now(),
            step_started: Instant::now(),
            title: String::new(),
            below: 0,
            tail: Vec::new(),
        }
    }

    /// The number of the step in progress.
    pub fn current(&self) -> usize {
        self.n
    }

    /// The last lines of the current step's output.
    pub fn tail(&self) -> &[String] {
        &self.tail
    }

    /// Starts a step; returns its number.
    pub fn start(&mut self, title: &str) -> usize {
        self.n += 1;
        self.title = title.to_string();
        self.step_started = Instant::now();
        self.below = 0;
        self.tail.clear();
        let n = self.n;
        match self.mode {
            Mode::Plain => {
                let _ = writeln!(self.out, "#{n} {title}");
            }
            Mode::Tty => {
                let _ = writeln!(self.out, "\x1b[36m => {title}\x1b[0m");
            }
            Mode::Quiet => {}
        }
        let _ = self.out.flush();
        n
    }

    /// One line of output of step `n`.
    pub fn line(&mut self, n: usize, text: &str) {
        if self.tail.len() >= 20 {
            self.tail.remove(0);
        }
        self.tail.push(text.to_string());
        let t = self.step_started.elapsed().as_secs_f64();
        match self.mode {
            Mode::Plain => {
                let _ = writeln!(self.out, "#{n} {t:.3} {text}");
            }
            Mode::Tty => {
                let _ = writeln!(self.out, "\x1b[2m => => # {text}\x1b[0m");
                self.below += 1;
            }
            Mode::Quiet => {}
        }
        let _ = self.out.flush();
    }

    /// Step `n` finished (from the cache or with nothing to time).
    pub fn done(&mut self, n: usize, cached: bool) {
        let word = if cached { "CACHED" } else { "DONE" };
        match self.mode {
            Mode::Plain => {
                if cached {
                    let _ = writeln!(self.out, "#{n} CACHED");
                } else {
                    let _ = writeln!(self.out, "#{n} DONE 0.0s");
                }
            }
            Mode::Tty => self.redraw(word, Duration::ZERO),
            Mode::Quiet => {}
        }
        let _ = self.out.flush();
    }

    /// Step `n` finished after `took`.
    pub fn done_in(&mut self, n: usize, took: Duration) {
        match self.mode {
            Mode::Plain => {
                let _ = writeln!(self.out, "#{n} DONE {:.1}s", took.as_secs_f64());
            }
            Mode::Tty => self.redraw("DONE", took),
            Mode::Quiet => {}
        }
        let _ = self.out.flush();
    }

    /// Step `n` failed.
    pub fn fail(&mut self, n: usize, message: &str) {
        match self.mode {
            Mode::Plain => {
                let _ = writeln!(self.out, "#{n} ERROR: {message}");
            }
            Mode::Tty => {
                let _ = writeln!(self.out, "\x1b[31m => ERROR {}\x1b[0m", self.title);
            }
            Mode::Quiet => {}
        }
        let _ = self.out.flush();
    }

    /// The whole build's time, for the final line.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn redraw(&mut self, word: &str, took: Duration) {
        // Back over the step's output and its title; the finished line replaces them.
        let up = self.below + 1;
        let _ = write!(self.out, "\x1b[{up}A\x1b[J");
        let status = if word == "CACHED" {
            "CACHED".to_string()
        } else {
            format!("{:.1}s", took.as_secs_f64())
        };
        let _ = writeln!(self.out, " => {:<60} {status}", self.title);
        self.below = 0;
    }

    /// A writer for step `n`'s process output (split into lines).
    pub fn sink(&mut self, n: usize) -> Sink<'_> {
        Sink {
            p: self,
            n,
            partial: Vec::new(),
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("mode", &self.mode)
            .field("step", &self.n)
            .finish()
    }
}

impl std::fmt::Debug for Sink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").field("step", &self.n).finish()
    }
}

/// Turns a byte stream into progress lines.
pub struct Sink<'a> {
    p: &'a mut Progress,
    n: usize,
    partial: Vec<u8>,
}

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.partial.extend_from_slice(buf);
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            self.p.line(self.n, &text);
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
            self.p.line(self.n, &text);
        }
    }
}
