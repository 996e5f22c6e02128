//! The registry commands: `pull` and `push` with Docker's progress output, `login` and
//! `logout`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::sync::Mutex;

use anyhow::{bail, Context};
use berth_engine::images::{Credentials, PullEvent as Event, PullOptions, PushEvent};
use berth_oci::{Platform, Reference};
use clap::Args;

use crate::format::human_size;
use crate::images::{open, parse_ref, registry_opts};

/// `pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// NAME[:TAG|@DIGEST]
    pub name: String,
    /// Set platform if server is multi-platform capable (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
    /// Suppress verbose output.
    #[arg(short, long)]
    pub quiet: bool,
    /// Download all tagged images in the repository (not supported).
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
}

/// `push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// NAME[:TAG]
    pub name: String,
    /// Suppress verbose output.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// SERVER (default docker.io)
    pub server: Option<String>,
    /// Username.
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password.
    #[arg(short, long)]
    pub password: Option<String>,
    /// Take the password from stdin.
    #[arg(long)]
    pub password_stdin: bool,
}

/// `logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// SERVER (default docker.io)
    pub server: Option<String>,
}

/// `pull`.
pub fn pull(root: &Path, a: &PullArgs) -> anyhow::Result<()> {
    if a.all_tags {
        bail!("--all-tags is not supported");
    }
    let bare = Reference::parse_bare(&a.name).map_err(|e| anyhow::anyhow!("{e}"))?;
    let r = parse_ref(&a.name)?;
    let mut opts = PullOptions {
        registry: registry_opts(),
        ..PullOptions::default()
    };
    if let Some(p) = &a.platform {
        opts.platform =
            Platform::parse(p).ok_or_else(|| anyhow::anyhow!("invalid platform {p:?}: want os/arch[/variant]"))?;
    }
    let mut store = open(root)?;
    let quiet = a.quiet;
    if !quiet {
        if bare.tag().is_none() && bare.digest().is_none() {
            println!("Using default tag: latest");
        }
        match r.digest() {
            Some(d) => println!("{d}: Pulling from {}", r.path()),
            None => println!("{}: Pulling from {}", r.tag().unwrap_or("latest"), r.path()),
        }
    }
    let progress = Progress::new(quiet);
    let pulled = berth_engine::images::pull(&mut store, &r, &opts, &|e| progress.event(e))?;
    progress.finish();
    if !quiet {
        println!("Digest: {}", pulled.digest);
        if pulled.fetched {
            println!("Status: Downloaded newer image for {}", r.familiar());
        } else {
            println!("Status: Image is up to date for {}", r.familiar());
        }
    }
    println!("{r}");
    Ok(())
}

/// Layers in order with sizes, each layer's status text, lines drawn last time.
type Board = (Vec<(String, u64)>, BTreeMap<String, String>, usize);

/// Pulls an image for `run`/`create`, with the progress on stderr as Docker shows it there.
pub fn pull_quietly_to_stderr(root: &Path, name: &str) -> anyhow::Result<()> {
    let r = parse_ref(name)?;
    let mut store = open(root)?;
    let opts = PullOptions {
        registry: registry_opts(),
        ..PullOptions::default()
    };
    eprintln!("{}: Pulling from {}", r.tag().unwrap_or("latest"), r.path());
    let pulled = berth_engine::images::pull(&mut store, &r, &opts, &|e| {
        if let Event::Extracted(d) = e {
            eprintln!("{}: Pull complete", d.short());
        }
    })?;
    eprintln!("Digest: {}", pulled.digest);
    eprintln!("Status: Downloaded newer image for {}", r.familiar());
    Ok(())
}

/// Pull progress: a line per layer; on a terminal the lines are redrawn in place with a bar.
struct Progress {
    quiet: bool,
    tty: bool,
    state: Mutex<Board>,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        Progress {
            quiet,
            tty: std::io::stdout().is_terminal(),
            state: Mutex::new((Vec::new(), BTreeMap::new(), 0)),
        }
    }

    fn event(&self, e: Event) {
        if self.quiet {
            return;
        }
        let Ok(mut st) = self.state.lock() else { return };
        let short = |d: &berth_oci::Digest| d.short().to_string();
        let (id, text, plain) = match e {
            Event::Layers(ls) => {
                st.0 = ls.iter().map(|(d, s)| (short(d), *s)).collect();
                if self.tty {
                    let ids: Vec<String> = st.0.iter().map(|(i, _)| i.clone()).collect();
                    for i in ids {
                        st.1.insert(i.clone(), "Waiting".into());
                    }
                    self.draw(&mut st);
                }
                return;
            }
            Event::Exists(d) => (short(&d), "Already exists".to_string(), true),
            Event::Progress(d, n, total) => {
                if !self.tty {
                    return;
                }
                let width = 50u64;
                let filled = usize::try_from((n.min(total) * width).checked_div(total).unwrap_or(0)).unwrap_or(0);
                let bar = format!(
                    "Downloading [{}>{}] {}/{}",
                    "=".repeat(filled.saturating_sub(1)),
                    " ".repeat(50usize.saturating_sub(filled)),
                    human_size(n),
                    human_size(total)
                );
                (short(&d), bar, false)
            }
            Event::Downloaded(d) => (short(&d), "Download complete".to_string(), false),
            Event::Extracted(d) => (short(&d), "Pull complete".to_string(), true),
        };
        if self.tty {
            if st.1.get(&id).map(String::as_str) == Some("Already exists") {
                return;
            }
            st.1.insert(id, text);
            self.draw(&mut st);
        } else if plain {
            println!("{id}: {text}");
        }
    }

    fn draw(&self, st: &mut Board) {
        let mut out = std::io::stdout().lock();
        if st.2 > 0 {
            let _ = write!(out, "\x1b[{}A", st.2);
        }
        for (id, _) in &st.0 {
            let text = st.1.get(id).cloned().unwrap_or_default();
            let _ = writeln!(out, "\x1b[2K{id}: {text}");
        }
        st.2 = st.0.len();
        let _ = out.flush();
    }

    fn finish(&self) {}
}

/// `push`.
pub fn push(root: &Path, a: &PushArgs) -> anyhow::Result<()> {
    let r = parse_ref(&a.name)?;
    let mut store = open(root)?;
    if !a.quiet {
        println!("The push refers to repository [{}]", r.repository());
    }
    let quiet = a.quiet;
    let (digest, size) = berth_engine::images::push(&store, &a.name, &registry_opts(), &|e| {
        if quiet {
            return;
        }
        match e {
            PushEvent::Exists(d) => println!("{}: Layer already exists", d.short()),
            PushEvent::Mounted(d, from) => println!("{}: Mounted from {from}", d.short()),
            PushEvent::Pushed(d) => println!("{}: Pushed", d.short()),
        }
    })?;
    // The pushed repository now knows the image by digest.
    let img = store.resolve(&a.name)?;
    store.add_repo_digest(&img.row.id, &r.with_digest(digest.clone()))?;
    if a.quiet {
        println!("{r}");
    } else {
        println!("{}: digest: {digest} size: {size}", r.tag().unwrap_or("latest"));
    }
    Ok(())
}

fn server_of(s: Option<&str>) -> String {
    berth_engine::images::registry_host(s.unwrap_or(""))
}

/// `login`.
pub fn login(a: &LoginArgs) -> anyhow::Result<()> {
    let server = server_of(a.server.as_deref());
    let username = match &a.username {
        Some(u) => u.clone(),
        None => bail!("login: --username is required (no interactive prompt)"),
    };
    let password = if a.password_stdin {
        if a.password.is_some() {
            bail!("--password and --password-stdin are mutually exclusive");
        }
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else {
        match &a.password {
            Some(p) => {
                eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
                p.clone()
            }
            None => bail!("login: give --password-stdin (no interactive prompt)"),
        }
    };
    let creds = Credentials { username, password };
    // Check the credentials against the registry before storing them.
    berth_engine::images::check_login(&server, creds.clone()).with_context(|| format!("login to {server} failed"))?;
    berth_engine::images::remember_login(&server, Some(&creds))?;
    println!("Login Succeeded");
    Ok(())
}

/// `logout`.
pub fn logout(a: &LogoutArgs) -> anyhow::Result<()> {
    let server = server_of(a.server.as_deref());
    let key = berth_engine::images::remember_login(&server, None)?;
    println!("Removing login credentials for {key}");
    Ok(())
}
