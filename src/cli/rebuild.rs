//! `tasklog rebuild`: the stored read models folded again from the whole log,
//! or, with `--check`, compared with a fresh fold of it.

use std::io::Write;
use std::time::Instant;

use clap::Args;
use tasklog_projections::rebuild::{check, rebuild as refold};

use super::args::StoreArgs;
use super::progress::Progress;
use crate::Failure;

#[derive(Debug, Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Compare the stored read models with a fresh fold of the log instead of
    /// rebuilding them; exits 1 naming each difference.
    #[arg(long)]
    pub check: bool,
}

pub async fn rebuild(args: RebuildArgs) -> Result<(), Failure> {
    let store = args.store.open_existing().await?;
    let url = args.store.store_url();
    if !url.keeps_views() {
        return Err(format!(
            "the read models of {url} live in each server's memory and are folded at its start: nothing to rebuild"
        )
        .into());
    }
    let views = url.open_views().await.map_err(|error| {
        let beside = url.view_generations().is_some();
        let hint = if beside {
            "; to rebuild beside a running server, ask it: POST /v1/admin/rebuild with an admin token"
        } else {
            ""
        };
        format!("{error}{hint}")
    })?;
    let mut out = std::io::stdout().lock();
    if args.check {
        let differences = check(&*store, views).await?;
        for difference in &differences {
            writeln!(out, "{difference}")?;
        }
        if !differences.is_empty() {
            return Err(format!(
                "the read models differ from a fold of the log in {} ways",
                differences.len()
            )
            .into());
        }
        writeln!(out, "the read models equal a fold of the log")?;
        return Ok(());
    }
    let started = Instant::now();
    let progress = Progress::new("rebuilding the read models", "events", 0);
    let events = refold(store, views, |at, head| progress.set(at.0, head.0)).await?;
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    writeln!(out, "events: {events}")?;
    writeln!(out, "seconds: {seconds:.3}")?;
    writeln!(
        out,
        "rebuild_events_per_s: {:.0}",
        events as f64 / seconds.max(1e-9)
    )?;
    Ok(())
}
