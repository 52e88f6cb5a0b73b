//! Where the settings are read from and how the layers stack: the file, then the environment
//! (passed in, never read here), then flags.

use super::*;

/// What the settings are read from: the environment is passed in, never read here, so tests
/// can give their own.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// The settings file (`--config`); unset: `PROCURE_CONFIG` from `env`, if any.
    pub file: Option<PathBuf>,
    /// Environment variables (name, value).
    pub env: Vec<(String, String)>,
    /// Command-line flags: (key path, value).
    pub flags: Vec<(&'static str, Value)>,
}

impl Sources {
    /// This process's environment.
    pub fn from_process_env() -> Self {
        Sources {
            env: std::env::vars().collect(),
            ..Default::default()
        }
    }

    /// Set `key` to `value` from a flag that was given.
    pub fn flag(&mut self, key: &'static str, value: impl Into<Value>) {
        self.flags.push((key, value.into()));
    }
}

/// The settings file, refused when it is missing, names a key the tree does not have, or
/// holds a secret.
pub(super) fn settings_file(path: &Path, known: &BTreeSet<String>) -> anyhow::Result<Figment> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the settings file {}", path.display()))?;
    let toml = Toml::string(&text);
    let dict = data_of(&toml).with_context(|| format!("parsing {}", path.display()))?;
    let keys = key_paths(&dict);
    let unknown: Vec<_> = keys
        .iter()
        .filter(|k| !known.contains(*k))
        .cloned()
        .collect();
    anyhow::ensure!(
        unknown.is_empty(),
        "{}: no such settings: {}",
        path.display(),
        unknown.join(", ")
    );
    if let Some(s) = keys.iter().find_map(|k| secret_key(k)) {
        bail!(
            "{}: {} is a secret; set {}, not the settings file",
            path.display(),
            s.path,
            how_to_set(s)
        );
    }
    Ok(Figment::from(toml))
}

/// The environment's settings as (key path, value), in merge order: the older names first,
/// then the nested names and the secrets' `_FILE` variables. Values stay strings; the
/// extraction reads numbers and booleans out of them.
pub(super) fn env_layer(
    env: &[(String, String)],
    known: &BTreeSet<String>,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut aliased = Vec::new();
    let mut nested = Vec::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("PROCURE_") else {
            continue;
        };
        if let Some((_, key)) = ALIASES.iter().find(|(alias, _)| alias == name) {
            aliased.push((key.to_string(), value.clone()));
            continue;
        }
        if let Some(s) = SECRETS.iter().find(|s| s.aliases.contains(&name.as_str())) {
            aliased.push((s.path.to_owned(), value.clone()));
            continue;
        }
        if let Some(base) = name.strip_suffix("_FILE")
            && let Some(s) = SECRETS
                .iter()
                .find(|s| env_name(s.path) == base || s.aliases.contains(&base))
        {
            let text = std::fs::read_to_string(value.trim())
                .with_context(|| format!("{name}: reading {}", value.trim()))?;
            let set_directly = env.iter().any(|(n, _)| n == base);
            anyhow::ensure!(!set_directly, "both {base} and {name} are set: choose one");
            let entry = (s.path.to_owned(), text.trim().to_owned());
            if s.aliases.contains(&base) {
                aliased.push(entry);
            } else {
                nested.push(entry);
            }
            continue;
        }
        let key = rest.to_ascii_lowercase().replace("__", ".");
        if known.contains(&key) {
            nested.push((key, value.clone()));
        } else if rest.contains("__") {
            bail!("{name}: no such setting ({key})");
        }
        // Anything else under PROCURE_ (PROCURE_CONFIG, the test harness's own) is not ours.
    }
    aliased.extend(nested);
    Ok(aliased)
}
