//! Tables and the goals summary.

use std::fmt::Write as _;

/// One measured figure that has a goal.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Figure {
    /// The section that measured it (`harvest`, `store`, `resolve`, `query`).
    pub section: String,
    /// What was measured, e.g. `C=16 wall / bound`.
    pub name: String,
    /// The measured value, formatted with its unit.
    pub value: String,
    /// The goal, in words, e.g. `<= 1.15`.
    pub goal: String,
    /// Whether the measured value meets the goal.
    pub met: bool,
}

impl Figure {
    pub fn new(
        section: &'static str,
        name: impl Into<String>,
        value: impl Into<String>,
        goal: impl Into<String>,
        met: bool,
    ) -> Self {
        Self {
            section: section.to_string(),
            name: name.into(),
            value: value.into(),
            goal: goal.into(),
            met,
        }
    }
}

/// A plain text table: a header row, then rows, columns padded to their widest cell.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    pub fn render(&self) -> String {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.header.len()])
            .max()
            .unwrap_or(0);
        let mut widths = vec![0usize; columns];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, row: &[String]| {
            let cells: Vec<String> = (0..columns)
                .map(|i| {
                    let cell = row.get(i).map(String::as_str).unwrap_or("");
                    format!("{cell:<width$}", width = widths[i])
                })
                .collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        };
        line(&mut out, &self.header);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        let _ = writeln!(out, "|-{}-|", rule.join("-|-"));
        for row in &self.rows {
            line(&mut out, row);
        }
        out
    }

    pub fn print(&self, title: &str) {
        println!("\n## {title}\n");
        print!("{}", self.render());
    }
}

/// The machine the figures come from: cores, memory and the processor's model and clock.
pub fn machine_banner() {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let cpu = match (field("model name"), field("cpu MHz")) {
        (Some(model), Some(mhz)) => format!(", {model} at {mhz} MHz"),
        (Some(model), None) => format!(", {model}"),
        _ => String::new(),
    };
    println!("# idgraph benchmarks\n\nmachine: {cores} cores, {mem_gib:.0} GiB{cpu}");
}

/// How a figure's goal begins when the target is the project's own, not the issue's.
pub const OWN_TARGET: &str = "(own)";

/// How a figure's goal begins when it is reported beside the goals, with nothing to meet.
pub const REPORTED: &str = "reported";

/// Every goal, met or missed; the summary counts the issue's goals apart from the project's
/// own targets and the figures only reported.
pub fn print_goals(figures: &[Figure]) {
    if figures.is_empty() {
        return;
    }
    let mut table = Table::new(["section", "figure", "measured", "goal", "met"]);
    for f in figures {
        table.row([
            f.section.clone(),
            f.name.clone(),
            f.value.clone(),
            f.goal.clone(),
            if f.met { "yes" } else { "NO" }.to_string(),
        ]);
    }
    table.print("Goals");
    println!("\n{}", summary(figures));
}

/// `N of M of the issue's goals met`, then the own targets and the reported figures.
fn summary(figures: &[Figure]) -> String {
    let count = |pick: &dyn Fn(&Figure) -> bool| {
        let of: Vec<&Figure> = figures.iter().filter(|f| pick(f)).collect();
        (of.iter().filter(|f| f.met).count(), of.len())
    };
    let own = |f: &Figure| f.goal.starts_with(OWN_TARGET);
    let reported = |f: &Figure| f.goal.starts_with(REPORTED);
    let (met, goals) = count(&|f| !own(f) && !reported(f));
    let mut out = format!("{met} of {goals} of the issue's goals met");
    let (own_met, owns) = count(&own);
    if owns > 0 {
        out.push_str(&format!("; own targets: {own_met} of {owns} met"));
    }
    let (_, shown) = count(&reported);
    if shown > 0 {
        out.push_str(&format!("; {shown} figures reported beside them"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_the_issues_goals_apart() {
        let figures = [
            Figure::new("harvest", "a", "1.1", "<= 1.15", true),
            Figure::new("harvest", "b", "1.2", "<= 1.15", false),
            Figure::new("store", "c", "0.3", "(own) <= 0.10", false),
            Figure::new("query", "d", "5", "reported (issue: 9)", true),
        ];
        assert_eq!(
            summary(&figures),
            "1 of 2 of the issue's goals met; own targets: 0 of 1 met; 1 figures reported beside them"
        );
    }

    #[test]
    fn table_pads_columns_to_the_widest_cell() {
        let mut t = Table::new(["a", "bb"]);
        t.row(["ccc", "d"]);
        assert_eq!(t.render(), "| a   | bb |\n|-----|----|\n| ccc | d  |\n");
    }
}
