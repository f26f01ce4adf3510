//! `weir serve`'s arguments, made from `weir_broker::settings::BROKER_SETTINGS`: each setting
//! with a key is a flag (`--log-retention-ms`), a variable (`WEIR_LOG_RETENTION_MS`) and a key
//! of the `--config` TOML file (`log_retention_ms`). Each is resolved flag > variable > file >
//! built-in default: clap already prefers the flag to the variable, and the file's values are
//! overlaid with what clap found.
//!
//! Flags and variables are typed by clap (its messages, exit status 2); the file by serde (its
//! messages, with the line and column). The range checks run once the winner of each setting is
//! known, so an overridden file value is not checked, as before.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result};
use clap::builder::{PossibleValuesParser, ValueParser};
use clap::parser::ValueSource;
use clap::{value_parser, Arg, ArgAction, ArgMatches, Command};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use weir_broker::settings::{
    by_key, BrokerSetting, Given, Kind, ServeConfig, Source, BROKER_SETTINGS,
};

/// `weir serve`'s command line: the config file, and the settings given as flags or variables.
pub struct ServeArgs {
    config: Option<PathBuf>,
    given: BTreeMap<String, Given>,
}

impl ServeArgs {
    /// The configuration to serve with: every setting from its flag, else its variable, else
    /// the file, else its default.
    pub fn resolve(self) -> Result<ServeConfig> {
        let mut given = match &self.config {
            Some(path) => read_file(path)?,
            None => BTreeMap::new(),
        };
        // Flags and variables beat the file.
        given.extend(self.given);
        Ok(ServeConfig::resolve(&given)?)
    }
}

fn settable() -> impl Iterator<Item = (&'static str, &'static BrokerSetting)> {
    BROKER_SETTINGS.iter().filter_map(|s| Some((s.key?, s)))
}

impl clap::FromArgMatches for ServeArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut given = BTreeMap::new();
        for (key, s) in settable() {
            let source = match m.value_source(key) {
                Some(ValueSource::CommandLine) => Source::Flag,
                Some(ValueSource::EnvVariable) => Source::Env,
                _ => continue,
            };
            // clap has checked the value's type; the setting parses the same text again.
            let raw = m
                .get_raw(key)
                .and_then(|mut v| v.next())
                .unwrap_or_default();
            let text = raw.to_str().ok_or_else(|| {
                clap::Error::raw(
                    clap::error::ErrorKind::InvalidUtf8,
                    format!("--{} must be UTF-8\n", s.flag().unwrap_or_default()),
                )
            })?;
            given.insert(
                key.to_string(),
                Given {
                    text: text.to_string(),
                    source,
                },
            );
        }
        Ok(ServeArgs {
            config: m.get_one::<PathBuf>("config").cloned(),
            given,
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for ServeArgs {
    fn augment_args(cmd: Command) -> Command {
        let config = Arg::new("config")
            .long("config")
            .env("WEIR_CONFIG")
            .value_name("CONFIG")
            .value_parser(value_parser!(PathBuf))
            .action(ArgAction::Set)
            .help("TOML file with settings (keys are the flag names with underscores)");
        settable()
            .fold(cmd.arg(config), |cmd, (key, s)| cmd.arg(arg(key, s)))
            .after_help(
                "Every setting is also read from its WEIR_ variable and from the --config file, \
                 where its key is the flag name with underscores (log_segment_bytes = 1048576). \
                 A flag beats the variable, which beats the file.",
            )
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

fn arg(key: &'static str, s: &BrokerSetting) -> Arg {
    let mut help = s.doc.to_string();
    if let Some(name) = s.name {
        help.push_str(&format!(" (`{name}`)"));
    }
    if let Some(default) = s.default {
        help.push_str(&format!(" [default: {default}]"));
    }
    Arg::new(key)
        .long(s.flag().unwrap_or_default())
        .env(s.env().unwrap_or_default())
        .value_name(key.to_ascii_uppercase())
        .value_parser(parser(s.access.kind))
        .action(ArgAction::Set)
        .help(help)
}

fn parser(kind: Kind) -> ValueParser {
    match kind {
        Kind::Bool => value_parser!(bool),
        Kind::I32 => value_parser!(i32).into(),
        Kind::I64 => value_parser!(i64).into(),
        Kind::U64 => value_parser!(u64).into(),
        Kind::Usize => value_parser!(usize).into(),
        Kind::F64 => value_parser!(f64).into(),
        Kind::Text => value_parser!(String),
        Kind::Path => value_parser!(PathBuf),
        Kind::OneOf(values) => PossibleValuesParser::new(values.iter().copied()).into(),
    }
}

fn read_file(path: &Path) -> Result<BTreeMap<String, Given>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    let FileSettings(values) =
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))?;
    Ok(values
        .into_iter()
        .map(|(key, text)| {
            let source = Source::File(path.to_path_buf());
            (key, Given { text, source })
        })
        .collect())
}

/// The settings of a TOML file, as text by key. Each value must have its setting's TOML type;
/// an unknown key is refused, naming the known ones.
struct FileSettings(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for FileSettings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FileVisitor)
    }
}

struct FileVisitor;

impl<'de> Visitor<'de> for FileVisitor {
    type Value = FileSettings;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a table of weir settings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileSettings, A::Error> {
        let mut values = BTreeMap::new();
        while let Some(FileKey(s)) = map.next_key()? {
            let text = match s.access.kind {
                Kind::Bool => map.next_value::<bool>()?.to_string(),
                Kind::I32 => map.next_value::<i32>()?.to_string(),
                Kind::I64 => map.next_value::<i64>()?.to_string(),
                Kind::U64 => map.next_value::<u64>()?.to_string(),
                Kind::Usize => map.next_value::<usize>()?.to_string(),
                Kind::F64 => map.next_value::<f64>()?.to_string(),
                Kind::Text | Kind::Path | Kind::OneOf(_) => map.next_value::<String>()?,
            };
            values.insert(s.key.unwrap_or_default().to_string(), text);
        }
        Ok(FileSettings(values))
    }
}

/// A key of the file, refused while it is read if it names no setting, so the error points at
/// the key.
struct FileKey(&'static BrokerSetting);

impl<'de> Deserialize<'de> for FileKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let key = String::deserialize(d)?;
        by_key(&key)
            .map(FileKey)
            .ok_or_else(|| de::Error::unknown_field(&key, file_keys()))
    }
}

/// Every key a config file may have.
fn file_keys() -> &'static [&'static str] {
    static KEYS: OnceLock<Vec<&'static str>> = OnceLock::new();
    KEYS.get_or_init(|| settable().map(|(key, _)| key).collect())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::{Cli, Command as WeirCommand};

    fn serve_args(args: &[&str]) -> ServeArgs {
        let argv = ["weir", "serve"].iter().chain(args);
        match Cli::try_parse_from(argv).unwrap().command {
            WeirCommand::Serve(a) => a,
            _ => unreachable!(),
        }
    }

    fn config_file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    /// Only this test sets these variables, and no other test reads the settings they name.
    #[test]
    fn a_flag_beats_the_variable_which_beats_the_file_which_beats_the_default() {
        let file = config_file("log_retention_ms = 1\nlog_roll_ms = 2\nlog_segment_bytes = 3\n");
        std::env::set_var("WEIR_LOG_RETENTION_MS", "10");
        std::env::set_var("WEIR_LOG_ROLL_MS", "20");
        let path = file.path().to_str().unwrap();
        let args = serve_args(&["--config", path, "--log-retention-ms", "100"]);
        std::env::remove_var("WEIR_LOG_RETENTION_MS");
        std::env::remove_var("WEIR_LOG_ROLL_MS");
        let c = args.resolve().unwrap().broker;
        let d = &c.topic_defaults;
        assert_eq!(d.retention_ms, 100, "flag");
        assert_eq!(d.segment_ms, 20, "variable");
        assert_eq!(d.segment_bytes, 3, "file");
        assert_eq!(d.retention_bytes, -1, "default");
        assert!(c.explicit.contains("log.segment.bytes"));
        assert!(!c.explicit.contains("log.retention.bytes"));
    }

    #[test]
    fn every_flag_is_also_a_file_key_of_the_same_type() {
        let file = config_file(
            "node_id = 4\nauto_create_topics_enable = false\nlog_cleaner_min_cleanable_ratio = 0.25\n\
             data_dir = \"/srv/weir\"\nlog_format = \"json\"\nmax_connections_per_ip = 3\n",
        );
        let c = serve_args(&["--config", file.path().to_str().unwrap()])
            .resolve()
            .unwrap();
        assert_eq!(c.broker.node_id, 4);
        assert!(!c.broker.auto_create_topics_enable);
        assert_eq!(c.broker.topic_defaults.min_cleanable_dirty_ratio, 0.25);
        assert_eq!(c.broker.data_dir, PathBuf::from("/srv/weir"));
        assert_eq!(c.process.log_format, "json");
        assert_eq!(c.process.limits.max_connections_per_ip, 3);
        assert_eq!(file_keys().len(), settable().count());
    }

    #[test]
    fn unknown_and_mistyped_file_keys_are_errors_that_say_where() {
        let parse = |text: &str| {
            let file = config_file(text);
            let args = serve_args(&["--config", file.path().to_str().unwrap()]);
            format!("{:#}", args.resolve().unwrap_err())
        };
        let e = parse("node_id = 1\nbogus = 1\n");
        assert!(
            e.contains("line 2") && e.contains("unknown field `bogus`"),
            "{e}"
        );
        assert!(
            e.contains("`log_segment_bytes`"),
            "the known keys are listed: {e}"
        );
        let e = parse("config = \"other.toml\"\n");
        assert!(e.contains("unknown field `config`"), "{e}");
        let e = parse("log_segment_bytes = \"x\"\n");
        assert!(
            e.contains("invalid type: string \"x\", expected u64"),
            "{e}"
        );
        let e = parse("group_max_size = 0\n");
        assert!(
            e.contains("group_max_size = 0 in") && e.contains("group.max.size must be at least 1"),
            "{e}"
        );
    }

    #[test]
    fn serve_help_lists_every_setting_with_its_variable_and_default() {
        let mut cli = Cli::command();
        let help = cli
            .find_subcommand_mut("serve")
            .unwrap()
            .render_long_help()
            .to_string();
        for (_, s) in settable() {
            let (flag, env) = (s.flag().unwrap(), s.env().unwrap());
            assert!(help.contains(&format!("--{flag} <")), "--{flag}");
            assert!(help.contains(&format!("[env: {env}=")), "{env}");
            assert!(help.contains(s.doc), "{flag}: {}", s.doc);
            if let Some(d) = s.default {
                assert!(help.contains(&format!("[default: {d}]")), "{flag}");
            }
        }
    }

    /// The README's settings table is written by hand: it must name every flag.
    #[test]
    fn the_readme_lists_every_setting() {
        let readme = include_str!("../../../README.md");
        for (_, s) in settable() {
            let flag = s.flag().unwrap();
            assert!(
                readme.contains(&format!("| `--{flag}` |")),
                "README lacks --{flag}"
            );
        }
    }
}
