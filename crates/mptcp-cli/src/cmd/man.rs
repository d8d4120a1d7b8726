//! `mptcp man --out DIR` (hidden): writes the man pages, made from this command
//! line's clap definitions with `clap_mangen`: `mptcp.1` and one page per
//! subcommand (`mptcp-endpoint-add.1`, ...), for the Debian package
//! (`scripts/package`). Prints the files it wrote, one per line (`--json`: a list).

use std::path::PathBuf;

use clap::{Args, CommandFactory};

use crate::cli::Cli;
use crate::error::{Error, EXIT_OK};
use crate::output::Output;

/// `mptcp man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The directory to write the pages to (made if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Writes every page into `args.out`.
pub fn run(args: &ManArgs, out: &Output) -> Result<u8, Error> {
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Error::msg(format!("cannot make {}: {e}", args.out.display())))?;
    clap_mangen::generate_to(Cli::command(), &args.out).map_err(|e| {
        Error::msg(format!(
            "cannot write man pages in {}: {e}",
            args.out.display()
        ))
    })?;
    let mut written: Vec<String> = pages(&args.out)
        .into_iter()
        .map(|p| p.display().to_string())
        .collect();
    written.sort();
    if out.json {
        out.json(&written)?;
    } else {
        out.print(&written.iter().map(|w| format!("{w}\n")).collect::<String>())?;
    }
    Ok(EXIT_OK)
}

/// The `mptcp*.1` files in `dir`.
fn pages(dir: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("mptcp") && n.ends_with(".1"))
                })
                .collect()
        })
        .unwrap_or_default()
}
