//! The executor's instructions: one Dockerfile instruction applied to a stage's state
//! (`step`), and the layer steps that change a rootfs, cached by key.

use super::*;

impl Builder<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn step(
        &mut self,
        st: &mut State,
        ins: &Instruction,
        args: &mut BTreeMap<String, String>,
        meta: &BTreeMap<String, String>,
        g: &Graph<'_>,
        title: &str,
    ) -> Result<()> {
        let line = ins.line;
        let kw = ins.keyword.as_str();
        let text = ins.text();
        match kw {
            "RUN" | "COPY" | "ADD" => {}
            "WORKDIR" => {}
            _ => {
                let n = prog::lock(self.progress).start(title);
                prog::lock(self.progress).done(n, false);
            }
        }
        match kw {
            "ENV" => {
                let expanded = self.expand(st, args, &text, line)?;
                let kvs = parse::key_values(&expanded, self.escape).map_err(|(_, m)| self.err(line, m))?;
                let mut env = st.env();
                for (k, v) in &kvs {
                    set_env(&mut env, k, v);
                }
                st.c().insert("Env".into(), json!(env));
                let shown: Vec<String> = kvs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                st.chain(&format!("ENV {}", shown.join(" ")));
                self.history(st, format!("ENV {}", shown.join(" ")), true);
            }
            "ARG" => {
                for w in words(&text) {
                    let (name, default) = w.split_once('=').map_or((w.as_str(), None), |(n, d)| (n, Some(d)));
                    self.used_args.insert(name.to_string());
                    let value = match self.o.build_args.get(name) {
                        Some(v) => Some(v.clone()),
                        None => match default {
                            Some(d) => Some(self.expand(st, args, d, line)?),
                            None => meta.get(name).cloned(),
                        },
                    };
                    match value {
                        Some(v) => {
                            st.chain(&format!("ARG {name}={v}"));
                            args.insert(name.to_string(), v);
                        }
                        None => {
                            args.remove(name);
                            st.chain(&format!("ARG {name}"));
                        }
                    }
                }
                self.history(st, format!("ARG {text}"), true);
            }
            "LABEL" => {
                let expanded = self.expand(st, args, &text, line)?;
                let kvs = parse::key_values(&expanded, self.escape).map_err(|(_, m)| self.err(line, m))?;
                let mut labels = st.get("Labels").as_object().cloned().unwrap_or_default();
                for (k, v) in &kvs {
                    labels.insert(k.clone(), json!(v));
                }
                st.c().insert("Labels".into(), Value::Object(labels));
                let shown: Vec<String> = kvs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                self.history(st, format!("LABEL {}", shown.join(" ")), true);
            }
            "MAINTAINER" => {
                st.config["author"] = json!(text);
                self.history(st, format!("MAINTAINER {text}"), true);
            }
            "EXPOSE" => {
                let expanded = self.expand(st, args, &text, line)?;
                let mut ports = st.get("ExposedPorts").as_object().cloned().unwrap_or_default();
                for p in words(&expanded) {
                    let (num, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                    let proto = proto.to_ascii_lowercase();
                    let ok = |x: &str| x.parse::<u16>().is_ok_and(|v| v > 0);
                    let range_ok = match num.split_once('-') {
                        Some((a, b)) => ok(a) && ok(b),
                        None => ok(num),
                    };
                    if !range_ok || !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
                        return Err(self.err(line, format!("invalid containerPort: {p}")));
                    }
                    ports.insert(format!("{num}/{proto}"), json!({}));
                }
                st.c().insert("ExposedPorts".into(), Value::Object(ports));
                self.history(st, format!("EXPOSE map[{}]", expanded), true);
            }
            "VOLUME" => {
                let list = match &ins.args {
                    Args::Exec(v) => v
                        .iter()
                        .map(|x| self.expand(st, args, x, line))
                        .collect::<Result<Vec<_>>>()?,
                    Args::Shell(s) => words(&self.expand(st, args, s, line)?),
                };
                let mut vols = st.get("Volumes").as_object().cloned().unwrap_or_default();
                for v in list {
                    if v.trim().is_empty() {
                        return Err(self.err(line, "VOLUME specified can not be an empty string"));
                    }
                    vols.insert(v, json!({}));
                }
                st.c().insert("Volumes".into(), Value::Object(vols));
                self.history(st, format!("VOLUME [{text}]"), true);
            }
            "USER" => {
                let u = self.expand(st, args, &text, line)?;
                st.c().insert("User".into(), json!(u));
                st.chain(&format!("USER {u}"));
                self.history(st, format!("USER {u}"), true);
            }
            "STOPSIGNAL" => {
                let s = self.expand(st, args, &text, line)?;
                st.c().insert("StopSignal".into(), json!(s));
                self.history(st, format!("STOPSIGNAL {s}"), true);
            }
            "SHELL" => {
                if let Args::Exec(v) = &ins.args {
                    st.c().insert("Shell".into(), json!(v));
                    st.chain(&format!("SHELL {v:?}"));
                }
                self.history(st, format!("SHELL {text}"), true);
            }
            "CMD" | "ENTRYPOINT" => {
                let v = match &ins.args {
                    Args::Exec(v) => v.clone(),
                    Args::Shell(s) => {
                        let mut sh = self.shell(st);
                        sh.push(s.clone());
                        sh
                    }
                };
                if kw == "ENTRYPOINT" {
                    st.c().insert("Entrypoint".into(), json!(v));
                    // An ENTRYPOINT resets a CMD that came from the base image.
                    if !st.config["config"].get("__cmd_set").is_some_and(|x| x == &json!(true)) {
                        st.c().insert("Cmd".into(), Value::Null);
                    }
                } else {
                    st.c().insert("Cmd".into(), json!(v));
                    st.c().insert("__cmd_set".into(), json!(true));
                }
                self.history(
                    st,
                    format!("{kw} {}", serde_json::to_string(&v).unwrap_or_default()),
                    true,
                );
            }
            "HEALTHCHECK" => {
                let first = text.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                let hc = if first == "NONE" {
                    json!({"Test": ["NONE"]})
                } else {
                    let test = match &ins.args {
                        Args::Exec(v) => {
                            let mut t = vec!["CMD".to_string()];
                            t.extend(v.iter().cloned());
                            t
                        }
                        Args::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
                    };
                    let mut hc = json!({"Test": test});
                    for (flag, field) in [
                        ("interval", "Interval"),
                        ("timeout", "Timeout"),
                        ("start-period", "StartPeriod"),
                        ("start-interval", "StartInterval"),
                    ] {
                        if let Some(v) = ins.flag(flag) {
                            let d = berth_oci::time::parse_go_duration(v)
                                .ok_or_else(|| self.err(line, format!("--{flag}: invalid duration {v:?}")))?;
                            hc[field] = json!(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
                        }
                    }
                    if let Some(r) = ins.flag("retries") {
                        let n: i64 = r
                            .parse()
                            .map_err(|_| self.err(line, format!("--retries: invalid number {r:?}")))?;
                        hc["Retries"] = json!(n);
                    }
                    hc
                };
                st.c().insert("Healthcheck".into(), hc);
                self.history(st, format!("HEALTHCHECK {text}"), true);
            }
            "ONBUILD" => {
                let mut list = str_list(st.get("OnBuild"));
                let expanded = self.expand(st, args, &text, line)?;
                list.push(expanded);
                st.c().insert("OnBuild".into(), json!(list));
                self.history(st, format!("ONBUILD {text}"), true);
            }
            "WORKDIR" => {
                let w = self.expand(st, args, &text, line)?;
                let wd = if w.starts_with('/') {
                    w.clone()
                } else {
                    let cur = st.get("WorkingDir").as_str().unwrap_or("/").to_string();
                    format!("{}/{}", cur.trim_end_matches('/'), w)
                };
                let wd = format!("/{}", clean(&wd));
                st.c().insert("WorkingDir".into(), json!(wd));
                st.chain(&format!("WORKDIR {wd}"));
                // The directory is made in a layer only when it is missing.
                let exists =
                    self.with_rootfs_ro(st, |root| Ok(Dest::open(root).map(|d| d.is_dir(&wd)).unwrap_or(false)))?;
                if exists {
                    let n = prog::lock(self.progress).start(title);
                    prog::lock(self.progress).done(n, false);
                    self.history(st, format!("WORKDIR {wd}"), true);
                } else {
                    let key = hash(&[&st.key, "mkdir"]);
                    let user = st.get("User").as_str().unwrap_or("").to_string();
                    self.layer_step(st, key, format!("WORKDIR {wd}"), title, line, |_, root, _| {
                        let d = Dest::open(root)?;
                        let owner = if user.is_empty() {
                            None
                        } else {
                            copy::resolve_owner(&d, &user).ok()
                        };
                        Ok(d.mkdir_all(&wd, owner)?)
                    })?;
                }
            }
            "RUN" => self.run(st, ins, args, g, title)?,
            "COPY" | "ADD" => self.copy(st, ins, args, g, title)?,
            other => return Err(self.err(line, format!("unknown instruction: {other}"))),
        }
        Ok(())
    }

    /// Mounts a state's layers read-only somewhere and calls `f` with the path.
    pub(super) fn with_rootfs_ro<T>(&mut self, st: &State, f: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
        let dir = self.scratch("ro")?;
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs).map_err(super::io_err("creating", &rootfs))?;
        let mut m = Mounted {
            dir,
            rootfs: rootfs.clone(),
            mounted: false,
        };
        let lowers = self.lowers(st)?;
        if !lowers.is_empty() {
            berth_image::snapshot::mount_overlay(&rootfs, &lowers, None)?;
            m.mounted = true;
        }
        let r = f(&rootfs);
        drop(m);
        r
    }

    pub(super) fn lowers(&self, st: &State) -> Result<Vec<PathBuf>> {
        let chains = model::chain_ids(&st.diff_ids);
        Ok(chains.iter().rev().map(|c| self.store.snapshots.path(c)).collect())
    }

    /// A filesystem step: reuse the cached layer for `key`, or mount the state writable, run
    /// `apply`, and record the upper directory as a new layer.
    pub(super) fn layer_step(
        &mut self,
        st: &mut State,
        key: String,
        created_by: String,
        title: &str,
        line: usize,
        apply: impl FnOnce(&mut Self, &Path, usize) -> std::result::Result<(), StepError>,
    ) -> Result<()> {
        let n = prog::lock(self.progress).start(title);
        let started = Instant::now();
        if !self.o.no_cache {
            if let Some((layer, diff_id, created)) = self.cached(&key)? {
                prog::lock(self.progress).done(n, true);
                self.steps.1 += 1;
                st.created = created;
                st.layers.push(layer);
                st.diff_ids.push(diff_id);
                st.key = key;
                self.history(st, created_by, false);
                return Ok(());
            }
        }
        self.steps.0 += 1;
        let dir = self.scratch("step")?;
        let (upper, work, rootfs) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
        for d in [&upper, &work, &rootfs] {
            std::fs::create_dir_all(d).map_err(super::io_err("creating", d))?;
        }
        let mut lowers = self.lowers(st)?;
        if lowers.is_empty() {
            let empty = dir.join("empty");
            std::fs::create_dir_all(&empty).map_err(super::io_err("creating", &empty))?;
            lowers.push(empty);
        }
        let mut m = Mounted {
            dir: dir.clone(),
            rootfs: rootfs.clone(),
            mounted: false,
        };
        berth_image::snapshot::mount_overlay(&rootfs, &lowers, Some((&upper, &work)))?;
        m.mounted = true;
        let applied = apply(self, &rootfs, n);
        let _ = nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH);
        m.mounted = false;
        if let Err(e) = applied {
            prog::lock(self.progress).fail(n, &e.to_string());
            return Err(self.err(line, e));
        }
        let tmp = dir.join("layer.tar");
        let (diff_id, size) = {
            let mut f = std::fs::File::create(&tmp).map_err(super::io_err("creating", &tmp))?;
            berth_image::diff::diff(&upper, &mut f)?
        };
        let mut f = std::fs::File::open(&tmp).map_err(super::io_err("opening", &tmp))?;
        let (digest, _) = self.store.content.put_stream(&mut f)?;
        drop(m);
        let layer = Descriptor::new(
            if st.docker_types {
                model::DOCKER_LAYER
            } else {
                model::OCI_LAYER
            },
            digest.clone(),
            size,
        );
        let mut ids = st.diff_ids.clone();
        ids.push(diff_id.clone());
        let chains = model::chain_ids(&ids);
        let chain = chains
            .last()
            .cloned()
            .ok_or_else(|| BuildError::Invalid("the image has no chain id".into()))?;
        let parent = chains.len().checked_sub(2).map(|p| chains[p].clone());
        self.store.unpack_layer(&layer, &diff_id, &chain, parent.as_ref())?;
        st.created = berth_image::store::now();
        let result = json!({"layer": layer, "diff_id": diff_id.to_string(), "created": st.created});
        self.store
            .cache_put(&key, &result.to_string(), &[digest.to_string(), chain.to_string()])?;
        st.layers.push(layer);
        st.diff_ids.push(diff_id);
        st.key = key;
        self.history(st, created_by, false);
        prog::lock(self.progress).done_in(n, started.elapsed());
        Ok(())
    }

    pub(super) fn cached(&self, key: &str) -> Result<Option<(Descriptor, Digest, String)>> {
        let Some(r) = self.store.db.cache_get(key)? else {
            return Ok(None);
        };
        let v: Value = serde_json::from_str(&r).map_err(|e| BuildError::Cache(e.to_string()))?;
        let layer: Descriptor =
            serde_json::from_value(v["layer"].clone()).map_err(|e| BuildError::Cache(e.to_string()))?;
        let diff_id: Digest = v["diff_id"]
            .as_str()
            .unwrap_or("")
            .parse()
            .map_err(|e: berth_oci::DigestError| BuildError::Cache(e.to_string()))?;
        let created = v["created"].as_str().unwrap_or("1970-01-01T00:00:00Z").to_string();
        Ok(self
            .store
            .content
            .has(&layer.digest)
            .then_some((layer, diff_id, created)))
    }
}
