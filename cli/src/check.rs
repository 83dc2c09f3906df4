//! `check`: validate and normalise a file with no network; write the rejected rows.

use std::path::PathBuf;

use crate::args::InputArgs;
use crate::input::{self, Input};
use crate::report::Tally;
use crate::Failure;
use mfa_preload_core::results::SafeCsv;

/// Header of the rejects CSV.
pub const REJECTS_HEADER: [&str; 4] = ["row", "column", "reason", "detail"];

pub async fn run(args: &InputArgs, rejects: Option<PathBuf>) -> Result<u8, Failure> {
    let (settings, mapping) = input::options(args)?;
    let input = input::read(&args.file, &settings, &mapping).await?;
    let path = rejects.unwrap_or_else(|| input::default_output(&args.file, "rejects"));
    write_rejects(&input, &path)?;
    let mut tally = Tally::default();
    for r in &input.rows {
        tally.add(&crate::results::from_input(r, "valid"));
    }
    tally.print(&format!("{}", args.file.display()));
    let rejected = input.rejected().count();
    println!();
    println!(
        "{} valid, {} rejected; rejects written to {}",
        input.valid().count(),
        rejected,
        path.display()
    );
    for e in input.rejected().take(10) {
        println!("  {e}");
    }
    if rejected > 10 {
        println!("  ... {} more in {}", rejected - 10, path.display());
    }
    Ok(if rejected > 0 { 1 } else { 0 })
}

fn write_rejects(input: &Input, path: &std::path::Path) -> Result<(), Failure> {
    let file = std::fs::File::create(path).map_err(|e| Failure::io(path, e))?;
    let mut w = SafeCsv::new(std::io::BufWriter::new(file));
    let io = |e: csv::Error| Failure::Usage(format!("writing {}: {e}", path.display()));
    w.record(REJECTS_HEADER).map_err(io)?;
    for e in input.rejected() {
        w.record([
            e.row.to_string(),
            e.column.clone().unwrap_or_default(),
            e.reason.as_str().to_string(),
            e.detail.clone(),
        ])
        .map_err(io)?;
    }
    w.flush().map_err(|e| Failure::io(path, e))?;
    Ok(())
}
