//! `tasklog bench`: the figures tasklog is measured by, printed as
//! `name: value` lines, or one JSON object with `--json`.

mod api;
mod store;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Append events from concurrent appenders to a fresh store, then replay them.
    Store(store::StoreBench),
    /// Start a server on a fresh store and drive it over HTTP.
    Api(api::ApiBench),
}

/// Options every benchmark takes.
#[derive(Debug, Args)]
pub struct Output {
    /// Print one JSON object instead of `name: value` lines.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(command: BenchCommand) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (figures, json) = match command {
        BenchCommand::Store(bench) => {
            let json = bench.output.json;
            (store::run(bench).await.map_err(|e| e.to_string())?, json)
        }
        BenchCommand::Api(bench) => {
            let json = bench.output.json;
            (api::run(bench).await?, json)
        }
    };
    print_figures(&figures, json);
    Ok(())
}

/// A measured figure: its name and value.
pub type Figure = (&'static str, f64);

fn print_figures(figures: &[Figure], json: bool) {
    if json {
        let object: serde_json::Map<String, serde_json::Value> = figures
            .iter()
            .map(|(name, value)| (name.to_string(), rounded(*value).into()))
            .collect();
        println!("{}", serde_json::Value::Object(object));
    } else {
        for (name, value) in figures {
            println!("{name}: {}", rounded(*value));
        }
    }
}

/// Figures keep three decimals: enough for milliseconds, no noise beyond.
fn rounded(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// The `fraction` percentile of `samples` (sorted in place).
pub fn percentile(samples: &mut [f64], fraction: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    let index = ((samples.len() as f64 * fraction).ceil() as usize).clamp(1, samples.len()) - 1;
    samples[index]
}
