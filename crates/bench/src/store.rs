//! The store section (being written).

use crate::report::Figure;

/// Options of the store section.
#[derive(Debug, Default, clap::Args)]
pub struct Args {}

pub async fn run(_args: &Args) -> anyhow::Result<Vec<Figure>> {
    anyhow::bail!("the store benchmark is not written yet")
}
