//! The harvest section (being written).

use crate::report::Figure;

/// Options of the harvest section.
#[derive(Debug, Default, clap::Args)]
pub struct Args {}

pub async fn run(_args: &Args) -> anyhow::Result<Vec<Figure>> {
    anyhow::bail!("the harvest benchmark is not written yet")
}
