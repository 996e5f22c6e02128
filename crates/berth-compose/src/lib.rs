//! `berth compose`: the Compose Specification, run on berth's engine without a daemon.
//!
//! Loading reads the files (`load`), checks every key against the specification (an
//! unknown one is named with its file and line), interpolates variables, resolves
//! `include` and `extends`, merges several files and normalizes the model. Planning
//! (`plan`) orders services by their dependencies and names what Docker Compose names:
//! containers, networks, volumes, labels and config hashes. Running (`up`) calls the
//! engine, as the CLI and the APIs do.

pub mod down;
pub mod interp;
mod load;
pub mod model;
mod normalize;
mod options;
pub mod plan;
mod schema;
pub mod up;

use std::path::{Path, PathBuf};

pub use model::Project;
pub use normalize::{project_name, shell_split, Selection};
pub use options::create_options;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// A file, or the model it makes, is not valid.
    #[error("{file}: {message}")]
    Invalid {
        /// The file (or the project's first file).
        file: String,
        /// What and where.
        message: String,
    },
    /// The project cannot be planned or run.
    #[error("{0}")]
    Project(String),
    /// The engine refused.
    #[error("{0}")]
    Engine(#[from] berth_engine::EngineError),
}

impl ComposeError {
    pub(crate) fn at(file: &str, message: impl std::fmt::Display) -> ComposeError {
        ComposeError::Invalid {
            file: file.to_string(),
            message: message.to_string(),
        }
    }
}

/// What to load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `-f` files (none: `COMPOSE_FILE`, else `compose.yaml` and friends here or above,
    /// with their override file).
    pub files: Vec<PathBuf>,
    /// `-p`.
    pub project_name: Option<String>,
    /// `--project-directory`.
    pub project_dir: Option<PathBuf>,
    /// `--env-file` (none: the project directory's `.env`).
    pub env_files: Vec<PathBuf>,
    /// Profiles and named services.
    pub selection: Selection,
}

const DEFAULT_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];
const OVERRIDE_FILES: [&str; 4] = [
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yaml",
    "docker-compose.override.yml",
];

/// The files to read when none are named.
fn default_files() -> Result<Vec<PathBuf>, ComposeError> {
    if let Ok(f) = std::env::var("COMPOSE_FILE") {
        if !f.is_empty() {
            return Ok(f.split(':').map(PathBuf::from).collect());
        }
    }
    let cwd = std::env::current_dir().map_err(|e| ComposeError::Project(format!("the current directory: {e}")))?;
    for dir in cwd.ancestors() {
        if let Some(f) = DEFAULT_FILES.iter().map(|f| dir.join(f)).find(|p| p.is_file()) {
            let mut files = vec![f];
            if let Some(o) = OVERRIDE_FILES.iter().map(|f| dir.join(f)).find(|p| p.is_file()) {
                files.push(o);
            }
            return Ok(files);
        }
    }
    Err(ComposeError::Project(
        "no configuration file provided: not found (compose.yaml, compose.yml, docker-compose.yaml or docker-compose.yml)".into(),
    ))
}

/// Loads a project.
pub fn load(o: &LoadOptions) -> Result<Project, ComposeError> {
    let cwd = std::env::current_dir().map_err(|e| ComposeError::Project(format!("the current directory: {e}")))?;
    let files: Vec<PathBuf> = if o.files.is_empty() {
        default_files()?
    } else {
        o.files.clone()
    };
    let files: Vec<PathBuf> = files.iter().map(|f| cwd.join(f)).collect();
    let first = files[0].display().to_string();
    let dir = match &o.project_dir {
        Some(d) => cwd.join(d),
        None => files[0].parent().unwrap_or(Path::new("/")).to_path_buf(),
    };
    let mut dotenv = std::collections::BTreeMap::new();
    let env_files = if o.env_files.is_empty() {
        let d = dir.join(".env");
        if d.is_file() {
            vec![d]
        } else {
            Vec::new()
        }
    } else {
        o.env_files.iter().map(|f| cwd.join(f)).collect()
    };
    for f in &env_files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| ComposeError::at(&f.display().to_string(), format!("reading it: {e}")))?;
        let scope = interp::Vars::with_process_env(dotenv.clone());
        let m = interp::parse_env_file(&text, &scope).map_err(|e| ComposeError::at(&f.display().to_string(), e))?;
        dotenv.extend(m);
    }
    let vars = interp::Vars::with_process_env(dotenv);
    let mut merged = serde_yaml::Value::Mapping(serde_yaml::Mapping::new());
    for f in &files {
        let v = load::read_file(f, &dir, &vars, 0)?;
        merged = load::merge_top(merged, v);
    }
    let raw_name = o
        .project_name
        .clone()
        .or_else(|| {
            vars.get("COMPOSE_PROJECT_NAME")
                .filter(|n| !n.is_empty())
                .map(str::to_string)
        })
        .or_else(|| merged.get("name").and_then(normalize::scalar))
        .unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    let name = project_name(&raw_name);
    if name.is_empty() {
        return Err(ComposeError::at(
            &first,
            format!("project name {raw_name:?} must contain a lower-case letter or a digit"),
        ));
    }
    let mut sel = o.selection.clone();
    if let Some(p) = vars.get("COMPOSE_PROFILES") {
        sel.profiles
            .extend(p.split(',').filter(|p| !p.is_empty()).map(str::to_string));
    }
    let mut p = normalize::project(&merged, &name, &vars, &sel, &first)?;
    p.working_dir = dir;
    p.config_files = files;
    plan::order(&p, &p.services.keys().cloned().collect::<Vec<_>>())?;
    Ok(p)
}

/// The normalized model as YAML, as `docker compose config` prints it.
pub fn config_yaml(p: &Project) -> Result<String, ComposeError> {
    serde_yaml::to_string(&p.normalized).map_err(|e| ComposeError::Project(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of its own under the system's temporary directory, removed on drop.
    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn dir(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("berth-compose-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("sub")).unwrap();
        Dir(d)
    }

    #[test]
    fn anchors_include_env_files_and_profiles_load() {
        let d = dir("load");
        let main = d.0.join("compose.yaml");
        std::fs::write(
            &main,
            "name: My_App\ninclude:\n  - sub/compose.yaml\nx-common: &common\n  image: bb:${TAG}\n  restart: always\nservices:\n  web:\n    <<: *common\n    env_file: web.env\n    environment: [B=2]\n    depends_on:\n      cache: {condition: service_started, required: false}\n  tools:\n    <<: *common\n    profiles: [debug]\n",
        )
        .unwrap();
        std::fs::write(d.0.join(".env"), "TAG=7\n").unwrap();
        std::fs::write(d.0.join("web.env"), "A=1\nB=1\n").unwrap();
        std::fs::write(
            d.0.join("sub/compose.yaml"),
            "services:\n  db:\n    image: db:1\n    volumes: ['./data:/d']\n",
        )
        .unwrap();
        let o = LoadOptions {
            files: vec![main.clone()],
            ..LoadOptions::default()
        };
        let p = load(&o).unwrap();
        assert_eq!(p.name, "my_app");
        assert_eq!(p.services.keys().collect::<Vec<_>>(), ["db", "web"]);
        let web = &p.services["web"];
        assert_eq!(web.image.as_deref(), Some("bb:7"));
        assert_eq!(web.restart.as_deref(), Some("always"));
        assert_eq!(web.environment["A"].as_deref(), Some("1"));
        assert_eq!(web.environment["B"].as_deref(), Some("2"));
        assert!(
            p.warnings.iter().any(|w| w.contains("optional dependency cache")),
            "{:?}",
            p.warnings
        );
        // The included file's paths are its own directory's.
        let db = &p.services["db"];
        assert_eq!(
            db.volumes[0].source.as_deref(),
            Some(d.0.join("sub/data").to_str().unwrap())
        );
        let o = LoadOptions {
            files: vec![main],
            project_name: Some("x".into()),
            selection: Selection {
                profiles: vec!["debug".into()],
                services: Vec::new(),
            },
            ..LoadOptions::default()
        };
        let p = load(&o).unwrap();
        assert!(p.services.contains_key("tools"));
        assert_eq!(p.networks["default"].name, "x_default");
    }
}
