//! `slotd-tune`: inspect a host, plan a tuning profile, apply and revert
//! it, and print startup warnings. Run `slotd-tune help` for usage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tuning::apply::load_undo;
use tuning::checks::CheckParams;
use tuning::{PlanOptions, ProfileKind, TuneError};

const USAGE: &str = "\
usage:
  slotd-tune inspect [--root DIR] [--json]
  slotd-tune plan [--root DIR] [--nic IFACE] [--shards N]
                  [--profile throughput|latency|balanced] [--out FILE]
  slotd-tune apply PROFILE [--dry-run] [--root DIR] [--undo FILE]
  slotd-tune revert UNDOFILE [--root DIR]
  slotd-tune check [--root DIR] [--profile-file PROFILE] [--nic IFACE]
                   [--backlog N] [--maxclients N] [--nofile N]

--root DIR   read (and for apply/revert, write) /sys and /proc under DIR
             (default /; revert defaults to the root recorded in the undo file)
apply        refuses a profile made for another host; without --dry-run it
             saves the previous values to --undo (default PROFILE.undo) first
check        shard CPUs come from --profile-file, else every online CPU;
             --nofile defaults to this process's RLIMIT_NOFILE
";

/// Parsed command line: the command, positional arguments, flags.
struct Args {
    positional: Vec<String>,
    options: Vec<(String, Option<String>)>,
}

impl Args {
    /// Splits `args`; `valued` flags take the next argument, `switches` none.
    fn parse(args: &[String], valued: &[&str], switches: &[&str]) -> Result<Args, TuneError> {
        let mut positional = Vec::new();
        let mut options = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if let Some((k, v)) = a.split_once('=').filter(|(k, _)| k.starts_with("--")) {
                if !valued.contains(&k) {
                    return Err(TuneError::Usage(format!("unknown option {k}\n\n{USAGE}")));
                }
                options.push((k.to_string(), Some(v.to_string())));
            } else if valued.contains(&a.as_str()) {
                let v = it
                    .next()
                    .ok_or_else(|| TuneError::Usage(format!("{a} needs a value\n\n{USAGE}")))?;
                options.push((a.clone(), Some(v.clone())));
            } else if switches.contains(&a.as_str()) {
                options.push((a.clone(), None));
            } else if a.starts_with('-') && a.len() > 1 {
                return Err(TuneError::Usage(format!("unknown option {a}\n\n{USAGE}")));
            } else {
                positional.push(a.clone());
            }
        }
        Ok(Args {
            positional,
            options,
        })
    }

    fn value(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    fn has(&self, key: &str) -> bool {
        self.options.iter().any(|(k, _)| k == key)
    }

    fn number(&self, key: &str) -> Result<Option<u64>, TuneError> {
        match self.value(key) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| TuneError::Usage(format!("{key} takes a number, not {v:?}"))),
        }
    }

    fn root(&self) -> PathBuf {
        PathBuf::from(self.value("--root").unwrap_or("/"))
    }

    fn positionals(&self, want: usize, what: &str) -> Result<&[String], TuneError> {
        if self.positional.len() != want {
            return Err(TuneError::Usage(format!("expected {what}\n\n{USAGE}")));
        }
        Ok(&self.positional)
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match run(&argv) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(TuneError::Usage(m)) => {
            eprintln!("slotd-tune: {m}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("slotd-tune: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a command line, returning what to print on stdout.
fn run(argv: &[String]) -> Result<String, TuneError> {
    let Some((cmd, rest)) = argv.split_first() else {
        return Err(TuneError::Usage(USAGE.to_string()));
    };
    match cmd.as_str() {
        "inspect" => inspect(&Args::parse(rest, &["--root"], &["--json"])?),
        "plan" => plan(&Args::parse(
            rest,
            &["--root", "--nic", "--shards", "--profile", "--out"],
            &[],
        )?),
        "apply" => apply(&Args::parse(rest, &["--root", "--undo"], &["--dry-run"])?),
        "revert" => revert(&Args::parse(rest, &["--root"], &[])?),
        "check" => check(&Args::parse(
            rest,
            &[
                "--root",
                "--profile-file",
                "--nic",
                "--backlog",
                "--maxclients",
                "--nofile",
            ],
            &[],
        )?),
        "help" | "--help" | "-h" => Ok(USAGE.to_string()),
        other => Err(TuneError::Usage(format!(
            "unknown command {other:?}\n\n{USAGE}"
        ))),
    }
}

fn inspect(a: &Args) -> Result<String, TuneError> {
    a.positionals(0, "no arguments to inspect")?;
    let host = tuning::read_host(&a.root())?;
    if a.has("--json") {
        let mut s = serde_json::to_string_pretty(&host)
            .map_err(|e| TuneError::Plan(format!("cannot encode JSON: {e}")))?;
        s.push('\n');
        Ok(s)
    } else {
        Ok(host.summary())
    }
}

fn plan(a: &Args) -> Result<String, TuneError> {
    a.positionals(0, "no positional arguments to plan")?;
    let host = tuning::read_host(&a.root())?;
    let opts = PlanOptions {
        nic: a.value("--nic").map(str::to_string),
        shards: a
            .number("--shards")?
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        kind: ProfileKind::parse(a.value("--profile").unwrap_or("throughput"))?,
    };
    let text = tuning::plan(&host, &opts)?.to_toml()?;
    match a.value("--out") {
        Some(out) => {
            let p = Path::new(out);
            std::fs::write(p, &text).map_err(|e| TuneError::Io {
                path: p.to_path_buf(),
                source: e,
            })?;
            Ok(format!("wrote {out}\n"))
        }
        None => Ok(text),
    }
}

fn is_root_user() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn apply(a: &Args) -> Result<String, TuneError> {
    let file = &a.positionals(1, "one PROFILE file")?[0];
    let root = a.root();
    let profile = tuning::load_profile(Path::new(file))?;
    let host = tuning::read_host(&root)?;
    profile.check_matches(&host)?;
    let mut out = String::new();
    if a.has("--dry-run") {
        for w in tuning::planned_writes(&profile) {
            out.push_str(&format!("{w}\n"));
        }
        return Ok(out);
    }
    if root == Path::new("/") && !is_root_user() {
        return Err(TuneError::Usage(
            "apply writes to /proc and /sys: run it as root, or use --dry-run".to_string(),
        ));
    }
    let undo = a
        .value("--undo")
        .map_or_else(|| PathBuf::from(format!("{file}.undo")), PathBuf::from);
    for w in tuning::apply(&profile, &root, &undo)? {
        out.push_str(&format!("{w}\n"));
    }
    out.push_str(&format!(
        "previous values saved to {0}; undo with: slotd-tune revert {0}\n",
        undo.display()
    ));
    Ok(out)
}

fn revert(a: &Args) -> Result<String, TuneError> {
    let file = Path::new(&a.positionals(1, "one UNDOFILE")?[0]);
    let root = match a.value("--root") {
        Some(r) => PathBuf::from(r),
        None => PathBuf::from(load_undo(file)?.root),
    };
    if root == Path::new("/") && !is_root_user() {
        return Err(TuneError::Usage(
            "revert writes to /proc and /sys: run it as root".to_string(),
        ));
    }
    let mut out = String::new();
    for w in tuning::revert(file, &root)? {
        out.push_str(&format!("{w}\n"));
    }
    Ok(out)
}

fn check(a: &Args) -> Result<String, TuneError> {
    a.positionals(0, "no positional arguments to check")?;
    let host = tuning::read_host(&a.root())?;
    let shard_cpus = match a.value("--profile-file") {
        Some(f) => {
            let p = tuning::load_profile(Path::new(f))?;
            p.check_matches(&host)?;
            p.shard_cpus().to_vec()
        }
        None => host.online.clone(),
    };
    let mut params = CheckParams::for_this_process();
    if let Some(b) = a.number("--backlog")? {
        params.tcp_backlog = b;
    }
    if let Some(m) = a.number("--maxclients")? {
        params.maxclients = m;
    }
    if let Some(n) = a.number("--nofile")? {
        params.open_files_limit = Some(n);
    }
    params.nic = a.value("--nic").map(str::to_string);
    let warnings = tuning::startup_checks_with(&host, &shard_cpus, &params);
    if warnings.is_empty() {
        Ok("no warnings\n".to_string())
    } else {
        Ok(warnings.join("\n") + "\n")
    }
}
