//! The resolve section (being written).

use crate::report::Figure;

/// Options of the resolve section.
#[derive(Debug, Default, clap::Args)]
pub struct Args {}

pub async fn run(_args: &Args) -> anyhow::Result<Vec<Figure>> {
    anyhow::bail!("the resolve benchmark is not written yet")
}
