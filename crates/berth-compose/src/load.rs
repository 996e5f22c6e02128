//! Reading Compose files into one tree: YAML parsed and checked (errors name file, line
//! and key), variables interpolated, relative paths made absolute, `include` and `extends`
//! resolved, and several `-f` files merged by the specification's rules.

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use crate::interp::{interpolate, Vars};
use crate::schema;
use crate::ComposeError;

/// A string key.
pub(crate) fn key(k: &str) -> Value {
    Value::String(k.to_string())
}

/// Reads, checks and interpolates one file; its relative paths are made absolute against
/// `base`. `include` is resolved here (each included file against its own directory).
pub(crate) fn read_file(path: &Path, base: &Path, vars: &Vars, depth: usize) -> Result<Value, ComposeError> {
    let file = path.display().to_string();
    if depth > 16 {
        return Err(ComposeError::at(&file, "include or extends nested too deep (a cycle?)"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| ComposeError::at(&file, format!("reading it: {e}")))?;
    let mut v: Value = serde_yaml::from_str(&text).map_err(|e| ComposeError::at(&file, e.to_string()))?;
    if v.is_null() {
        v = Value::Mapping(Mapping::new());
    }
    // YAML merge keys (`<<: *anchor`), as Compose files use them for shared settings.
    v.apply_merge().map_err(|e| ComposeError::at(&file, e.to_string()))?;
    if !v.is_mapping() {
        return Err(ComposeError::at(&file, "the top level is not a mapping"));
    }
    schema::check(&text, schema::FILE).map_err(|e| ComposeError::at(&file, e.to_string()))?;
    interpolate_tree(&mut v, vars, "").map_err(|e| ComposeError::at(&file, e))?;
    if let Some(services) = v.get_mut("services").and_then(Value::as_mapping_mut) {
        for (name, s) in services.iter_mut() {
            let name = name.as_str().unwrap_or_default().to_string();
            if !s.is_mapping() {
                if s.is_null() {
                    *s = Value::Mapping(Mapping::new());
                } else {
                    return Err(ComposeError::at(&file, format!("services.{name} must be a mapping")));
                }
            }
            absolute_paths(s, base);
        }
    }
    for top in ["secrets", "configs"] {
        if let Some(m) = v.get_mut(top).and_then(Value::as_mapping_mut) {
            for (_, d) in m.iter_mut() {
                if let Some(Value::String(f)) = d.get_mut("file") {
                    *f = absolute(f, base);
                }
            }
        }
    }
    resolve_extends(&mut v, path, base, vars, depth)?;
    resolve_include(&mut v, path, base, vars, depth)?;
    Ok(v)
}

/// Interpolates every string value (not keys) of the tree; errors name the key's path.
fn interpolate_tree(v: &mut Value, vars: &Vars, path: &str) -> Result<(), String> {
    match v {
        Value::String(s) => {
            *s = interpolate(s, vars).map_err(|e| format!("error while interpolating {path}: {e}"))?;
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_tree(item, vars, &format!("{path}[{i}]"))?;
            }
        }
        Value::Mapping(m) => {
            for (k, item) in m.iter_mut() {
                let k = k.as_str().unwrap_or("?");
                let p = if path.is_empty() {
                    k.to_string()
                } else {
                    format!("{path}.{k}")
                };
                interpolate_tree(item, vars, &p)?;
            }
        }
        Value::Tagged(t) => interpolate_tree(&mut t.value, vars, path)?,
        _ => {}
    }
    Ok(())
}

/// `p` made absolute against `base` (`~` is the home directory).
pub(crate) fn absolute(p: &str, base: &Path) -> String {
    if let Some(rest) = p.strip_prefix("~/").or(if p == "~" { Some("") } else { None }) {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        return Path::new(&home).join(rest).display().to_string();
    }
    if p.starts_with('/') || p.contains("://") || p.starts_with("git@") {
        return p.to_string();
    }
    let joined = base.join(p);
    clean(&joined).display().to_string()
}

/// A path with `.` and `..` components folded (lexically).
fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// A service's relative paths (build context, env files, bind sources) made absolute.
fn absolute_paths(s: &mut Value, base: &Path) {
    match s.get_mut("build") {
        Some(Value::String(c)) => *c = absolute(c, base),
        Some(Value::Mapping(b)) => {
            if let Some(Value::String(c)) = b.get_mut("context") {
                *c = absolute(c, base);
            } else if !b.contains_key("context") {
                b.insert(key("context"), Value::String(base.display().to_string()));
            }
        }
        _ => {}
    }
    match s.get_mut("env_file") {
        Some(Value::String(f)) => *f = absolute(f, base),
        Some(Value::Sequence(items)) => {
            for it in items {
                match it {
                    Value::String(f) => *f = absolute(f, base),
                    Value::Mapping(m) => {
                        if let Some(Value::String(f)) = m.get_mut("path") {
                            *f = absolute(f, base);
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    if let Some(Value::Sequence(vols)) = s.get_mut("volumes") {
        for v in vols {
            match v {
                Value::String(spec) => {
                    let (src, rest) = match spec.split_once(':') {
                        Some((a, b)) => (a.to_string(), Some(b.to_string())),
                        None => (spec.clone(), None),
                    };
                    if let Some(rest) = rest {
                        if src.starts_with('.') || src.starts_with('~') {
                            *spec = format!("{}:{rest}", absolute(&src, base));
                        }
                    }
                }
                Value::Mapping(m) => {
                    let bind = m.get("type").and_then(Value::as_str) == Some("bind");
                    if let (true, Some(Value::String(src))) = (bind, m.get_mut("source")) {
                        *src = absolute(src, base);
                    }
                }
                _ => {}
            }
        }
    }
}

/// `extends`: each service that names another (in this file or another) starts from that
/// one's configuration, merged with its own.
fn resolve_extends(v: &mut Value, path: &Path, base: &Path, vars: &Vars, depth: usize) -> Result<(), ComposeError> {
    let file = path.display().to_string();
    let Some(services) = v.get("services").and_then(Value::as_mapping).cloned() else {
        return Ok(());
    };
    let mut done = Mapping::new();
    for (name, _) in &services {
        let name = name.as_str().unwrap_or_default();
        let s = extended(&services, name, path, base, vars, depth, &mut Vec::new()).map_err(|e| match e {
            ComposeError::Invalid { .. } => e,
            other => ComposeError::at(&file, other.to_string()),
        })?;
        done.insert(key(name), s);
    }
    if let Some(m) = v.as_mapping_mut() {
        m.insert(key("services"), Value::Mapping(done));
    }
    Ok(())
}

/// Service `name` of `services` with its `extends` chain applied.
fn extended(
    services: &Mapping,
    name: &str,
    path: &Path,
    base: &Path,
    vars: &Vars,
    depth: usize,
    seen: &mut Vec<String>,
) -> Result<Value, ComposeError> {
    let file = path.display().to_string();
    let mark = format!("{file}:{name}");
    if seen.contains(&mark) {
        seen.push(mark);
        return Err(ComposeError::at(&file, format!("extends cycle: {}", seen.join(" -> "))));
    }
    seen.push(mark);
    let mut s = services
        .get(name)
        .cloned()
        .ok_or_else(|| ComposeError::at(&file, format!("extends: no service {name:?}")))?;
    let Some(ext) = s.as_mapping_mut().and_then(|m| m.remove("extends")) else {
        return Ok(s);
    };
    let (target, other) = match &ext {
        Value::String(t) => (t.clone(), None),
        Value::Mapping(m) => (
            m.get("service")
                .and_then(Value::as_str)
                .ok_or_else(|| ComposeError::at(&file, format!("services.{name}.extends: no service named")))?
                .to_string(),
            m.get("file").and_then(Value::as_str).map(str::to_string),
        ),
        _ => {
            return Err(ComposeError::at(
                &file,
                format!("services.{name}.extends must be a name or a mapping"),
            ))
        }
    };
    let parent = match other {
        None => extended(services, &target, path, base, vars, depth, seen)?,
        Some(f) => {
            let fpath = PathBuf::from(absolute(&f, path.parent().unwrap_or(base)));
            let dir = fpath.parent().unwrap_or(base).to_path_buf();
            let v = read_file(&fpath, &dir, vars, depth + 1)?;
            let theirs = v
                .get("services")
                .and_then(Value::as_mapping)
                .cloned()
                .unwrap_or_default();
            extended(&theirs, &target, &fpath, &dir, vars, depth + 1, seen)?
        }
    };
    Ok(merge_service(parent, s))
}

/// `include`: the services, networks, volumes, secrets and configs of other projects
/// (each read against its own directory) join this one; a name both define is an error.
fn resolve_include(v: &mut Value, path: &Path, base: &Path, vars: &Vars, depth: usize) -> Result<(), ComposeError> {
    let file = path.display().to_string();
    let Some(includes) = v.as_mapping_mut().and_then(|m| m.remove("include")) else {
        return Ok(());
    };
    let Value::Sequence(items) = includes else {
        return Err(ComposeError::at(&file, "include must be a list"));
    };
    for item in items {
        let (paths, dir, env_file) = match &item {
            Value::String(p) => (vec![p.clone()], None, None),
            Value::Mapping(m) => {
                let paths = match m.get("path") {
                    Some(Value::String(p)) => vec![p.clone()],
                    Some(Value::Sequence(ps)) => ps.iter().filter_map(Value::as_str).map(str::to_string).collect(),
                    _ => return Err(ComposeError::at(&file, "include: an entry without a path")),
                };
                let dir = m.get("project_directory").and_then(Value::as_str).map(str::to_string);
                let env = m.get("env_file").and_then(Value::as_str).map(str::to_string);
                (paths, dir, env)
            }
            _ => return Err(ComposeError::at(&file, "include: an entry must be a path or a mapping")),
        };
        let first = PathBuf::from(absolute(&paths[0], base));
        let dir = match dir {
            Some(d) => PathBuf::from(absolute(&d, base)),
            None => first.parent().unwrap_or(base).to_path_buf(),
        };
        let mut scope = vars.clone();
        let env_path = env_file.map_or_else(|| dir.join(".env"), |e| PathBuf::from(absolute(&e, base)));
        if let Ok(text) = std::fs::read_to_string(&env_path) {
            let own = crate::interp::parse_env_file(&text, vars)
                .map_err(|e| ComposeError::at(&env_path.display().to_string(), e))?;
            for (k, val) in own {
                scope.map.entry(k).or_insert(val);
            }
        }
        let mut merged = Value::Mapping(Mapping::new());
        for p in &paths {
            let one = read_file(&PathBuf::from(absolute(p, base)), &dir, &scope, depth + 1)?;
            merged = merge_top(merged, one);
        }
        for section in ["services", "networks", "volumes", "secrets", "configs"] {
            let Some(theirs) = merged.get(section).and_then(Value::as_mapping).cloned() else {
                continue;
            };
            let Some(top) = v.as_mapping_mut() else { continue };
            let ours = top
                .entry(key(section))
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            if ours.is_null() {
                *ours = Value::Mapping(Mapping::new());
            }
            let Some(ours) = ours.as_mapping_mut() else { continue };
            for (name, def) in theirs {
                if ours.contains_key(&name) && section == "services" {
                    return Err(ComposeError::at(
                        &file,
                        format!(
                            "services.{} conflicts with the one included from {}",
                            name.as_str().unwrap_or_default(),
                            first.display()
                        ),
                    ));
                }
                ours.entry(name).or_insert(def);
            }
        }
    }
    Ok(())
}

/// Two whole files merged: `over`'s services merged into `base`'s by the service rules,
/// other sections key by key.
pub(crate) fn merge_top(base: Value, over: Value) -> Value {
    let (Value::Mapping(mut b), Value::Mapping(o)) = (base, over.clone()) else {
        return over;
    };
    for (k, v) in o {
        let merged = match (k.as_str(), b.remove(&k)) {
            (Some("services"), Some(Value::Mapping(mut bs))) => {
                if let Value::Mapping(os) = v {
                    for (name, s) in os {
                        let m = match bs.remove(&name) {
                            Some(old) => merge_service(old, s),
                            None => s,
                        };
                        bs.insert(name, m);
                    }
                }
                Value::Mapping(bs)
            }
            (_, Some(old)) => deep_merge(old, v),
            (_, None) => v,
        };
        b.insert(k, merged);
    }
    Value::Mapping(b)
}

/// Mappings merged key by key, anything else replaced.
fn deep_merge(base: Value, over: Value) -> Value {
    match (base, over) {
        (Value::Mapping(mut b), Value::Mapping(o)) => {
            for (k, v) in o {
                let m = match b.remove(&k) {
                    Some(old) => deep_merge(old, v),
                    None => v,
                };
                b.insert(k, m);
            }
            Value::Mapping(b)
        }
        (_, o) => o,
    }
}

/// A `KEY=VALUE` list or a mapping, as a mapping.
pub(crate) fn as_map(v: Value, sep: char) -> Mapping {
    match v {
        Value::Mapping(m) => m,
        Value::Sequence(items) => items
            .into_iter()
            .filter_map(|i| {
                let s = match i {
                    Value::String(s) => s,
                    other => serde_yaml::to_string(&other).ok()?.trim().to_string(),
                };
                Some(match s.split_once(sep) {
                    Some((k, v)) => (key(k.trim()), Value::String(v.to_string())),
                    None => (key(s.trim()), Value::Null),
                })
            })
            .collect(),
        _ => Mapping::new(),
    }
}

/// A list of names or a mapping of names, as a mapping.
fn names_map(v: Value) -> Mapping {
    match v {
        Value::Sequence(items) => items.into_iter().map(|i| (i, Value::Null)).collect(),
        Value::Mapping(m) => m,
        _ => Mapping::new(),
    }
}

/// Where a volume, device, secret or config entry lands: what two files' entries are
/// matched by.
fn target_of(v: &Value, field: &str) -> String {
    match v {
        Value::String(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            match field {
                "volumes" | "devices" if parts.len() >= 2 => parts[1].to_string(),
                _ => parts[0].to_string(),
            }
        }
        Value::Mapping(m) => {
            let f = if matches!(field, "secrets" | "configs") {
                "source"
            } else {
                "target"
            };
            m.get(f).and_then(Value::as_str).unwrap_or_default().to_string()
        }
        _ => String::new(),
    }
}

/// Two definitions of one service merged by the specification's rules: commands replaced,
/// maps merged by key, volumes and devices by target, other lists appended without
/// repeats, mappings merged deeply.
pub(crate) fn merge_service(base: Value, over: Value) -> Value {
    let (Value::Mapping(mut b), Value::Mapping(o)) = (base, over.clone()) else {
        return over;
    };
    for (k, v) in o {
        let name = k.as_str().unwrap_or_default().to_string();
        let Some(old) = b.remove(&k) else {
            b.insert(k, v);
            continue;
        };
        let merged = match name.as_str() {
            "command" | "entrypoint" | "image" => v,
            "environment" | "labels" | "annotations" | "sysctls" => {
                let mut m = as_map(old, '=');
                m.extend(as_map(v, '='));
                Value::Mapping(m)
            }
            "extra_hosts" if old.is_mapping() || v.is_mapping() => {
                let mut m = as_map(old, ':');
                m.extend(as_map(v, ':'));
                Value::Mapping(m)
            }
            "networks" | "depends_on" => deep_merge(Value::Mapping(names_map(old)), Value::Mapping(names_map(v))),
            "volumes" | "devices" | "secrets" | "configs" => {
                let mut items = match old {
                    Value::Sequence(s) => s,
                    _ => Vec::new(),
                };
                for it in match v {
                    Value::Sequence(s) => s,
                    _ => Vec::new(),
                } {
                    let t = target_of(&it, &name);
                    match items.iter().position(|x| target_of(x, &name) == t) {
                        Some(i) => items[i] = it,
                        None => items.push(it),
                    }
                }
                Value::Sequence(items)
            }
            _ => match (old, v) {
                (Value::Sequence(mut a), Value::Sequence(more)) => {
                    for it in more {
                        if !a.contains(&it) {
                            a.push(it);
                        }
                    }
                    Value::Sequence(a)
                }
                (old @ Value::Mapping(_), v @ Value::Mapping(_)) => deep_merge(old, v),
                (Value::Mapping(mut m), Value::String(ctx)) if name == "build" => {
                    m.insert(key("context"), Value::String(ctx));
                    Value::Mapping(m)
                }
                (_, v) => v,
            },
        };
        b.insert(k, merged);
    }
    Value::Mapping(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn services_merge_by_the_specifications_rules() {
        let base = y("image: a\ncommand: [x, y]\nenvironment: [A=1, B=2]\nports: ['80:80']\nvolumes: ['/h:/data', 'v:/other']\nnetworks: [front]\nhealthcheck: {test: [CMD, a], interval: 1s}\n");
        let over = y("command: [z]\nenvironment: {B: '3', C: '4'}\nports: ['81:81', '80:80']\nvolumes: ['/h2:/data']\nnetworks: {back: {aliases: [b]}}\nhealthcheck: {test: [CMD, b]}\n");
        let m = merge_service(base, over);
        assert_eq!(m["command"], y("[z]"));
        assert_eq!(m["environment"], y("{A: '1', B: '3', C: '4'}"));
        assert_eq!(m["ports"], y("['80:80', '81:81']"));
        assert_eq!(m["volumes"], y("['/h2:/data', 'v:/other']"));
        assert_eq!(m["networks"], y("{front: null, back: {aliases: [b]}}"));
        assert_eq!(m["healthcheck"], y("{test: [CMD, b], interval: 1s}"));
    }

    #[test]
    fn relative_paths_are_made_absolute() {
        let base = Path::new("/p/roj");
        assert_eq!(absolute("./a/../b", base), "/p/roj/b");
        assert_eq!(absolute("/abs", base), "/abs");
        let mut s = y("build: ./web\nvolumes: ['./data:/d:ro', 'named:/n', {type: bind, source: ../x, target: /x}]\nenv_file: [a.env]\n");
        absolute_paths(&mut s, base);
        assert_eq!(s["build"], y("/p/roj/web"));
        assert_eq!(s["volumes"][0], y("/p/roj/data:/d:ro"));
        assert_eq!(s["volumes"][1], y("named:/n"));
        assert_eq!(s["volumes"][2]["source"], y("/p/x"));
        assert_eq!(s["env_file"][0], y("/p/roj/a.env"));
    }
}
