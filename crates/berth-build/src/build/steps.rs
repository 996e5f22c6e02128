//! The executor's RUN and COPY/ADD: a step run in a container over the stage's rootfs, and
//! files copied from the context, another stage, an image or a URL.

use super::*;

impl Builder<'_> {
    pub(super) fn run(
        &mut self,
        st: &mut State,
        ins: &Instruction,
        args: &BTreeMap<String, String>,
        g: &Graph<'_>,
        title: &str,
    ) -> Result<()> {
        let line = ins.line;
        let shell = self.shell(st);
        let argv = match &ins.args {
            Args::Exec(v) => v.clone(),
            Args::Shell(s) => {
                let mut script = s.clone();
                if let Some(h) = ins.heredocs.first() {
                    let marker_only = s
                        .trim()
                        .trim_start_matches("<<-")
                        .trim_start_matches("<<")
                        .trim_matches(['"', '\''])
                        == h.name;
                    if marker_only && ins.heredocs.len() == 1 {
                        script = h.content.clone();
                    } else {
                        // The shell reads the heredocs itself.
                        script.push('\n');
                        for h in &ins.heredocs {
                            script.push_str(&h.content);
                            script.push_str(&h.name);
                            script.push('\n');
                        }
                    }
                }
                let mut v = shell.clone();
                v.push(script);
                v
            }
        };
        let mut env = st.env();
        let mut declared: Vec<String> = Vec::new();
        for (k, v) in args {
            if !env
                .iter()
                .any(|e| e.split_once('=').map(|(n, _)| n) == Some(k.as_str()))
            {
                env.push(format!("{k}={v}"));
            }
            declared.push(format!("{k}={v}"));
        }
        for p in PROXY_ARGS {
            if let Some(v) = self.o.build_args.get(p) {
                if !args.contains_key(p) {
                    env.push(format!("{p}={v}"));
                }
            }
        }
        let network = ins
            .flag("network")
            .unwrap_or(if self.o.network.is_empty() {
                "default"
            } else {
                &self.o.network
            })
            .to_string();
        if !["default", "none", "host"].contains(&network.as_str()) {
            return Err(self.err(
                line,
                format!("unsupported network mode {network:?} (default, none or host)"),
            ));
        }
        // Mounts: what they are goes into the key; a secret's content never does.
        let mut mounts: Vec<(String, BTreeMap<String, String>)> = Vec::new();
        for (k, v) in &ins.flags {
            if k != "mount" {
                continue;
            }
            let mut m: BTreeMap<String, String> = BTreeMap::new();
            for kv in v.split(',') {
                let (a, b) = kv.split_once('=').unwrap_or((kv, "true"));
                m.insert(a.trim().to_ascii_lowercase(), b.trim().to_string());
            }
            let ty = m.get("type").cloned().unwrap_or_else(|| "bind".into());
            mounts.push((ty, m));
        }
        let user = st.get("User").as_str().unwrap_or("").to_string();
        let cwd = st
            .get("WorkingDir")
            .as_str()
            .filter(|w| !w.is_empty())
            .unwrap_or("/")
            .to_string();
        let mount_desc: Vec<String> = mounts
            .iter()
            .map(|(t, m)| {
                let keep: Vec<String> = m.iter().map(|(a, b)| format!("{a}={b}")).collect();
                format!("{t}:{}", keep.join(","))
            })
            .collect();
        let key = hash(&[
            &st.key,
            "RUN",
            &serde_json::to_string(&argv).unwrap_or_default(),
            &env.join("\n"),
            &user,
            &cwd,
            &network,
            &mount_desc.join(";"),
        ]);
        // BuildKit's history shape: `RUN |N A=1 B=2 /bin/sh -c ...` (declared build args only).
        let prefix = if declared.is_empty() {
            String::new()
        } else {
            format!("|{} {} ", declared.len(), declared.join(" "))
        };
        let created_by = format!("RUN {prefix}{} # buildkit", argv.join(" "));
        let secrets = self.o.secrets.clone();
        let cache_root = self.o.cache_mounts.clone();
        let context = self.o.context.clone();
        let mut sources: Vec<(usize, State)> = Vec::new();
        for (i, (_, m)) in mounts.iter().enumerate() {
            if let Some(f) = m.get("from") {
                let d = (g.index_of)(f, g.stage)
                    .ok_or_else(|| self.err(line, format!("--mount from={f}: no such stage")))?;
                let s = g.states[d]
                    .clone()
                    .ok_or_else(|| self.err(line, format!("stage {f} was not built")))?;
                sources.push((i, s));
            }
        }
        self.layer_step(st, key, created_by, title, line, |b, rootfs, n| {
            let scratch = b.scratch("run").map_err(|e| e.to_string())?;
            let mut guards: Vec<Mounted> = Vec::new();
            let mut out_mounts = Vec::new();
            for (i, (ty, m)) in mounts.iter().enumerate() {
                let target = m
                    .get("target")
                    .or_else(|| m.get("dst"))
                    .or_else(|| m.get("destination"))
                    .cloned();
                match ty.as_str() {
                    "secret" => {
                        let id = m
                            .get("id")
                            .cloned()
                            .or_else(|| target.as_ref().map(|t| t.rsplit('/').next().unwrap_or("").to_string()))
                            .unwrap_or_default();
                        let Some(data) = secrets.get(&id) else {
                            if m.get("required").is_some_and(|r| r == "true") {
                                return Err(
                                    format!("secret {id} not found (give it with --secret id={id},src=FILE)").into(),
                                );
                            }
                            continue;
                        };
                        let file = scratch.join(format!("secret-{i}"));
                        {
                            use std::os::unix::fs::OpenOptionsExt;
                            let mut f = std::fs::OpenOptions::new()
                                .write(true)
                                .create_new(true)
                                .mode(0o400)
                                .open(&file)
                                .map_err(|e| format!("secret {id}: {e}"))?;
                            f.write_all(data).map_err(|e| format!("secret {id}: {e}"))?;
                        }
                        out_mounts.push(Mount {
                            destination: target.unwrap_or_else(|| format!("/run/secrets/{id}")),
                            source: Some(file),
                            read_only: true,
                        });
                    }
                    "cache" => {
                        let target = target.ok_or("--mount=type=cache needs a target")?;
                        let id = m.get("id").cloned().unwrap_or_else(|| target.clone());
                        let dir = cache_root.join(hash(&[&id]));
                        std::fs::create_dir_all(&dir).map_err(|e| format!("cache mount {id}: {e}"))?;
                        out_mounts.push(Mount {
                            destination: target,
                            source: Some(dir),
                            read_only: false,
                        });
                    }
                    "tmpfs" => {
                        let target = target.ok_or("--mount=type=tmpfs needs a target")?;
                        out_mounts.push(Mount {
                            destination: target,
                            source: None,
                            read_only: false,
                        });
                    }
                    "bind" => {
                        let target = target.ok_or("--mount=type=bind needs a target")?;
                        let src = m.get("source").or_else(|| m.get("src")).cloned().unwrap_or_default();
                        let root = match sources.iter().find(|(j, _)| *j == i) {
                            Some((_, s)) => {
                                let dir = b.scratch("bind").map_err(|e| e.to_string())?;
                                let r = dir.join("rootfs");
                                std::fs::create_dir_all(&r).map_err(|e| e.to_string())?;
                                let lowers = b.lowers(s).map_err(|e| e.to_string())?;
                                let mut g = Mounted {
                                    dir,
                                    rootfs: r.clone(),
                                    mounted: false,
                                };
                                if !lowers.is_empty() {
                                    berth_image::snapshot::mount_overlay(&r, &lowers, None)
                                        .map_err(|e| e.to_string())?;
                                    g.mounted = true;
                                }
                                guards.push(g);
                                r
                            }
                            None => context.clone(),
                        };
                        // Resolved inside its root, then bound through the descriptor's path.
                        let rootfd = berth_safepath::open_root(&root).map_err(|e| e.to_string())?;
                        let fd = berth_safepath::resolve(std::os::fd::AsFd::as_fd(&rootfd), Path::new(&src), false)
                            .map_err(|e| format!("--mount source {src:?}: {e}"))?;
                        let real = std::fs::read_link(berth_safepath::proc_fd_path(std::os::fd::AsFd::as_fd(&fd)))
                            .map_err(|e| e.to_string())?;
                        let rw = m.get("rw").or_else(|| m.get("readwrite")).is_some_and(|v| v == "true");
                        out_mounts.push(Mount {
                            destination: target,
                            source: Some(real),
                            read_only: !rw,
                        });
                    }
                    other => return Err(format!("unsupported mount type {other:?}").into()),
                }
            }
            let step = RunStep {
                rootfs,
                args: argv.clone(),
                env: env.clone(),
                cwd: cwd.clone(),
                user: user.clone(),
                network: network.clone(),
                mounts: out_mounts.clone(),
                scratch: &scratch,
            };
            // Mount points the runtime makes for this step (and that were not there) are
            // taken out again, so they never reach the layer.
            let mut points: Vec<String> = vec![
                "/proc".into(),
                "/dev".into(),
                "/sys".into(),
                "/etc/hosts".into(),
                "/etc/resolv.conf".into(),
                "/etc/hostname".into(),
            ];
            points.extend(out_mounts.iter().map(|m| m.destination.clone()));
            let dest = Dest::open(rootfs)?;
            let missing: Vec<Vec<String>> = points.iter().map(|p| missing_chain(&dest, p)).collect();
            let code = {
                let mut sink = Progress::sink(b.progress, n);
                b.runner.run(&step, &mut sink)?
            };
            for chain in missing.iter().rev() {
                for p in chain.iter().rev() {
                    remove_point(rootfs, p);
                }
            }
            drop(guards);
            let _ = std::fs::remove_dir_all(&scratch);
            if code != 0 {
                return Err(format!(
                    "process \"{}\" did not complete successfully: exit code: {code}",
                    argv.join(" ")
                )
                .into());
            }
            Ok(())
        })
    }

    pub(super) fn copy(
        &mut self,
        st: &mut State,
        ins: &Instruction,
        args: &BTreeMap<String, String>,
        g: &Graph<'_>,
        title: &str,
    ) -> Result<()> {
        let line = ins.line;
        let kw = ins.keyword.as_str();
        let mut list = match &ins.args {
            Args::Exec(v) => v
                .iter()
                .map(|x| self.expand(st, args, x, line))
                .collect::<Result<Vec<_>>>()?,
            Args::Shell(s) => words(&self.expand(st, args, s, line)?),
        };
        if ins.flag("parents").is_some() {
            return Err(self.err(line, format!("{kw} --parents is not supported by berth's builder")));
        }
        let dest_raw = list
            .pop()
            .ok_or_else(|| self.err(line, format!("{kw} requires at least two arguments")))?;
        let dest = self.resolve_dest(st, &dest_raw);
        let chown = ins.flag("chown").map(|c| self.expand(st, args, c, line)).transpose()?;
        let chmod = ins
            .flag("chmod")
            .map(copy::parse_chmod)
            .transpose()
            .map_err(|e| self.err(line, e))?;
        let from = ins.flag("from").map(|f| self.expand(st, args, f, line)).transpose()?;
        // Heredocs become files named after their terminator.
        let mut inline: Vec<(String, Vec<u8>)> = Vec::new();
        let mut sources: Vec<String> = Vec::new();
        for s in list {
            if let Some(name) = s.strip_prefix("<<") {
                let name = name.trim_start_matches('-').trim_matches(['"', '\'']);
                let h = ins
                    .heredocs
                    .iter()
                    .find(|h| h.name == name)
                    .ok_or_else(|| self.err(line, format!("heredoc {name} has no body")))?;
                let body = if h.quoted {
                    h.content.clone()
                } else {
                    self.expand(st, args, &h.content, line)?
                };
                inline.push((h.name.clone(), body.into_bytes()));
            } else {
                sources.push(s);
            }
        }
        let mut urls: Vec<String> = Vec::new();
        if kw == "ADD" {
            sources.retain(|s| {
                let url = s.starts_with("http://") || s.starts_with("https://");
                if url {
                    urls.push(s.clone());
                }
                !url
            });
            if !urls.is_empty() && (urls.len() + sources.len() + inline.len()) > 1 && !dest.ends_with('/') {
                return Err(self.err(line, "When using ADD with more than one source file, the destination must be a directory and end with a /"));
            }
        } else if let Some(c) = ins.flag("checksum") {
            return Err(self.err(line, format!("--checksum={c} is only for ADD")));
        }
        let mut ignore = if from.is_some() {
            Ignore::default()
        } else {
            self.o.ignore.clone()
        };
        if let Some(ex) = ins.flag("exclude") {
            let mut text = String::new();
            for (k, v) in &ins.flags {
                if k == "exclude" {
                    text.push_str(v);
                    text.push('\n');
                }
            }
            let extra = Ignore::parse(&text).map_err(|e| self.err(line, format!("--exclude={ex}: {e}")))?;
            ignore = ignore.merged(&extra);
        }
        // Where sources come from: the context, or another stage's or an image's files.
        let from_state = match &from {
            None => None,
            Some(f) => match (g.index_of)(f, g.stage) {
                Some(d) => Some(
                    g.states[d]
                        .clone()
                        .ok_or_else(|| self.err(line, format!("stage {f} was not built")))?,
                ),
                None => Some(self.base(f).map_err(|e| self.err(line, format!("--from={f}: {e}")))?),
            },
        };
        let mut _src_guard: Option<Mounted> = None;
        let src_root: PathBuf = match &from_state {
            None => self.o.context.clone(),
            Some(s) => {
                let dir = self.scratch("from")?;
                let r = dir.join("rootfs");
                std::fs::create_dir_all(&r).map_err(super::io_err("creating", &r))?;
                let lowers = self.lowers(s)?;
                let mut g = Mounted {
                    dir,
                    rootfs: r.clone(),
                    mounted: false,
                };
                if !lowers.is_empty() {
                    berth_image::snapshot::mount_overlay(&r, &lowers, None)?;
                    g.mounted = true;
                }
                _src_guard = Some(g);
                r
            }
        };
        let collected =
            copy::collect(&src_root, &sources, &ignore).map_err(|e| self.err(line, format!("{kw} failed: {e}")))?;
        let sum = copy::checksum(&src_root, &collected).map_err(|e| self.err(line, e))?;
        // Remote sources are fetched first: their content is part of the key.
        let mut fetched: Vec<(String, PathBuf)> = Vec::new();
        for u in &urls {
            let dir = self.scratch("url")?;
            let file = dir.join("download");
            fetch(u, &file, ins.flag("checksum")).map_err(|e| self.err(line, e))?;
            let name = u
                .split(['?', '#'])
                .next()
                .unwrap_or(u)
                .rsplit('/')
                .next()
                .filter(|n| !n.is_empty())
                .unwrap_or("index.html")
                .to_string();
            fetched.push((name, file));
        }
        let mut fetched_sums = Vec::new();
        for (n, f) in &fetched {
            fetched_sums.push(format!("{n}:{}", file_sha(f).map_err(|e| self.err(line, e))?));
        }
        let inline_sums: Vec<String> = inline
            .iter()
            .map(|(n, b)| format!("{n}:{}", hash(&[&String::from_utf8_lossy(b)])))
            .collect();
        let flags: Vec<String> = ins.flags.iter().map(|(k, v)| format!("--{k}={v}")).collect();
        let key = hash(&[
            &st.key,
            kw,
            &flags.join(" "),
            &sources.join(" "),
            &dest,
            &sum,
            &fetched_sums.join(" "),
            &inline_sums.join(" "),
        ]);
        let created_by = format!(
            "{kw} {}{} {} # buildkit",
            flags.iter().map(|f| format!("{f} ")).collect::<String>(),
            inline
                .iter()
                .map(|(n, _)| format!("<<{n}"))
                .chain(sources.iter().cloned())
                .chain(urls.iter().cloned())
                .collect::<Vec<_>>()
                .join(" "),
            dest_raw
        );
        let is_add = kw == "ADD";
        let from_context = from.is_none();
        self.layer_step(st, key, created_by, title, line, |_, rootfs, _| {
            let out = Dest::open(rootfs)?;
            let owner = match &chown {
                Some(c) => Some(copy::resolve_owner(&out, c)?),
                None if from_context => Some((0, 0)),
                None => None,
            };
            let meta = Meta { owner, mode: chmod };
            let own = owner.unwrap_or((0, 0));
            let total = collected.len() + inline.len() + fetched.len();
            let dir_dest = dest.ends_with('/') || total > 1;
            if dir_dest {
                out.mkdir_all(&dest, owner)?;
            }
            let target_of = |name: &str| {
                if dir_dest || out.is_dir(&dest) {
                    format!("{}/{name}", dest.trim_end_matches('/'))
                } else {
                    dest.clone()
                }
            };
            for (name, body) in &inline {
                out.write_file(&target_of(name), &mut &body[..], chmod.unwrap_or(0o644), own, None)?;
            }
            for (name, file) in &fetched {
                let mut f = std::fs::File::open(file).map_err(|e| format!("reading {name}: {e}"))?;
                out.write_file(&target_of(name), &mut f, chmod.unwrap_or(0o600), own, None)?;
            }
            if is_add {
                // Local archives are unpacked into the destination; other files copied.
                let mut plain = Vec::new();
                for s in &collected {
                    if !s.is_dir {
                        if let Some(mut r) = archive_reader(&src_root, &s.rel)? {
                            out.mkdir_all(&dest, owner)?;
                            copy::extract(&mut r, &out, &dest, chown.as_ref().map(|_| own))?;
                            continue;
                        }
                    }
                    plain.push(s.clone());
                }
                if !plain.is_empty() {
                    copy::copy(&src_root, &plain, &out, &dest, meta)?;
                }
                Ok(())
            } else {
                Ok(copy::copy(&src_root, &collected, &out, &dest, meta)?)
            }
        })?;
        Ok(())
    }
}

/// The components of `path` that do not exist yet (outermost first).
pub(super) fn missing_chain(dest: &Dest, path: &str) -> Vec<String> {
    let c = clean(path);
    let mut out = Vec::new();
    let mut sofar = String::new();
    for comp in c.split('/').filter(|s| !s.is_empty()) {
        sofar = if sofar.is_empty() {
            comp.to_string()
        } else {
            format!("{sofar}/{comp}")
        };
        if !out.is_empty() || !dest.exists(&sofar) {
            out.push(sofar.clone());
        }
    }
    out
}

/// Removes a mount point the runtime made (an empty file or an empty directory), confined to
/// the rootfs.
pub(super) fn remove_point(rootfs: &Path, rel: &str) {
    let Ok(root) = berth_safepath::open_root(rootfs) else {
        return;
    };
    let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let Ok(pfd) = berth_safepath::open(
        std::os::fd::AsFd::as_fd(&root),
        Path::new(dir),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
    ) else {
        return;
    };
    let is_dir = nix::sys::stat::fstatat(&pfd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .unwrap_or(false);
    if is_dir {
        // Only when empty: what the step itself wrote there stays.
        let _ = nix::unistd::unlinkat(&pfd, name, nix::unistd::UnlinkatFlags::RemoveDir);
    } else if let Ok(st) = nix::sys::stat::fstatat(&pfd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        if st.st_size == 0 {
            let _ = nix::unistd::unlinkat(&pfd, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
    }
}

pub(super) fn file_sha(p: &Path) -> std::result::Result<String, SourceError> {
    let io = |source| SourceError::Io {
        op: "reading",
        path: p.display().to_string(),
        source,
    };
    let mut f = std::fs::File::open(p).map_err(io)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(io)?;
    Ok(format!("sha256:{:x}", h.finalize()))
}

/// Downloads `url` to `file`, checking `--checksum` when given.
pub(super) fn fetch(url: &str, file: &Path, checksum: Option<&str>) -> std::result::Result<(), SourceError> {
    let failed = |message: String| SourceError::Fetch {
        url: url.to_string(),
        message,
    };
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(300))
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let mut resp = client.get(url).send().map_err(|e| failed(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(failed(format!("invalid response status {}", resp.status())));
    }
    let mut f = std::fs::File::create(file).map_err(|e| failed(e.to_string()))?;
    resp.copy_to(&mut f).map_err(|e| failed(e.to_string()))?;
    if let Some(want) = checksum {
        let got = file_sha(file)?;
        if got != want {
            return Err(SourceError::Checksum {
                url: url.to_string(),
                got,
                want: want.to_string(),
            });
        }
    }
    Ok(())
}

/// A decompressed reader over a context file when it is a tar archive (plain, gzip, bzip2,
/// xz or zstd), else `None`.
pub(super) fn archive_reader(root: &Path, rel: &str) -> std::result::Result<Option<Box<dyn Read>>, SourceError> {
    let io = |op: &'static str| {
        move |source| SourceError::Io {
            op,
            path: rel.to_string(),
            source,
        }
    };
    let open = || -> std::result::Result<std::fs::File, SourceError> {
        let rootfd = berth_safepath::open_root(root).map_err(|e| SourceError::Io {
            op: "opening the context",
            path: root.display().to_string(),
            source: e,
        })?;
        let fd = berth_safepath::open(
            std::os::fd::AsFd::as_fd(&rootfd),
            Path::new(rel),
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NOFOLLOW,
        )
        .map_err(io("opening"))?;
        Ok(std::fs::File::from(fd))
    };
    let mut head = [0u8; 6];
    let n = open()?.read(&mut head).map_err(io("reading"))?;
    let head = &head[..n];
    let f = open()?;
    let mut r: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(f)))
    } else if head.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(std::io::BufReader::new(f)))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(xz_reader(f).map_err(io("decompressing"))?)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::new(f).map_err(io("reading"))?)
    } else {
        Box::new(f)
    };
    // A tar has "ustar" at offset 257 of its first header.
    let mut block = vec![0u8; 512];
    let mut got = 0;
    while got < 512 {
        match r.read(&mut block[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(_) => return Ok(None),
        }
    }
    if got < 512 || &block[257..262] != b"ustar" {
        return Ok(None);
    }
    Ok(Some(Box::new(std::io::Cursor::new(block).chain(r))))
}

pub(super) fn xz_reader(f: std::fs::File) -> std::io::Result<std::io::Cursor<Vec<u8>>> {
    let mut out = Vec::new();
    lzma_rs::xz_decompress(&mut std::io::BufReader::new(f), &mut out)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("xz: {e}")))?;
    Ok(std::io::Cursor::new(out))
}
