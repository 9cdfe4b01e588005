//! The benches' results file: JSON Lines, one figure or one distribution a
//! line, as every bench of issue 16 appends them when `BENCH_RESULTS` names
//! a file (`tests/bench.sh` sets it). A line that does not fit is skipped
//! with a warning naming its number, so one bench's bad output cannot hide
//! the others' figures.

use serde_json::{Map, Value};

/// One printed figure, next to its same-run reference where it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub section: String,
    pub bench: String,
    pub case: String,
    pub metric: String,
    pub unit: String,
    /// None when the bench printed "-" (a run that timed out).
    pub value: Option<f64>,
    pub reference: Option<String>,
    pub reference_value: Option<f64>,
    pub ratio: Option<f64>,
    pub goal: Option<String>,
    pub met: Option<bool>,
}

/// A whole distribution (the convergence CDF's input).
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    pub section: String,
    pub bench: String,
    pub case: String,
    /// Sorted ascending.
    pub samples_ms: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Warning {
    /// 1-based, as an editor shows it.
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

#[derive(Debug, Default)]
pub struct Results {
    pub figures: Vec<Figure>,
    pub distributions: Vec<Distribution>,
    pub warnings: Vec<Warning>,
}

impl Results {
    /// Whether any line of `section` arrived.
    pub fn has_section(&self, section: &str) -> bool {
        self.figures.iter().any(|f| f.section == section)
            || self.distributions.iter().any(|d| d.section == section)
    }

    pub fn has_bench(&self, section: &str, bench: &str) -> bool {
        self.figures
            .iter()
            .any(|f| f.section == section && f.bench == bench)
            || self
                .distributions
                .iter()
                .any(|d| d.section == section && d.bench == bench)
    }
}

pub fn parse(text: &str) -> Results {
    let mut r = Results::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let warn = |message: String| Warning {
            line: i + 1,
            message,
        };
        let obj = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(o)) => o,
            Ok(_) => {
                r.warnings.push(warn("not a JSON object".into()));
                continue;
            }
            Err(e) => {
                r.warnings.push(warn(format!("not JSON ({e})")));
                continue;
            }
        };
        match parse_object(&obj) {
            Ok(Item::Figure(f)) => r.figures.push(f),
            Ok(Item::Distribution(d)) => r.distributions.push(d),
            Err(e) => r.warnings.push(warn(e)),
        }
    }
    r
}

enum Item {
    Figure(Figure),
    Distribution(Distribution),
}

fn parse_object(o: &Map<String, Value>) -> Result<Item, String> {
    let section = match o.get("section") {
        Some(Value::String(s)) => s.clone(),
        // A bench that wrote `"section": 3` still means section "3".
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err("no \"section\" string".into()),
    };
    let bench = string(o, "bench")?.ok_or("no \"bench\" string")?;
    let case = string(o, "case")?.ok_or("no \"case\" string")?;
    if let Some(samples) = o.get("samples_ms") {
        let Value::Array(a) = samples else {
            return Err("\"samples_ms\" is not an array".into());
        };
        let mut samples_ms = a
            .iter()
            .map(|v| v.as_f64().filter(|x| x.is_finite()))
            .collect::<Option<Vec<f64>>>()
            .ok_or("\"samples_ms\" holds something that is not a number")?;
        samples_ms.sort_by(f64::total_cmp);
        return Ok(Item::Distribution(Distribution {
            section,
            bench,
            case,
            samples_ms,
        }));
    }
    let metric = string(o, "metric")?.ok_or("no \"metric\" string (nor \"samples_ms\")")?;
    let unit = string(o, "unit")?.ok_or("no \"unit\" string")?;
    if !o.contains_key("value") {
        return Err("no \"value\"".into());
    }
    let value = number(o, "value")?;
    let reference_value = number(o, "reference_value")?;
    let ratio = match number(o, "ratio")? {
        Some(r) => Some(r),
        // The convention's ratio is always value / reference_value.
        None => value
            .zip(reference_value)
            .filter(|(_, b)| *b != 0.0)
            .map(|(a, b)| a / b),
    };
    let met = match o.get("met") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err("\"met\" is not true, false or null".into()),
    };
    Ok(Item::Figure(Figure {
        section,
        bench,
        case,
        metric,
        unit,
        value,
        reference: string(o, "reference")?,
        reference_value,
        ratio,
        goal: string(o, "goal")?,
        met,
    }))
}

/// Absent or null is None; anything but a string is an error.
fn string(o: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("\"{key}\" is not a string")),
    }
}

fn number(o: &Map<String, Value>, key: &str) -> Result<Option<f64>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(format!("\"{key}\" is not a number")),
        },
    }
}

/// The ratio a goal sets, when the goal is a ratio ("<= 0.7x BIRD",
/// ">= 0.80x", "≤ 0.2× GoBGP"): a number directly followed by `x` or `×`
/// that ends a word. A goal in the figure's own unit ("<= 50 ms") is None.
pub fn goal_ratio(goal: &str) -> Option<f64> {
    let chars: Vec<char> = goal.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() || (i > 0 && chars[i - 1].is_alphanumeric()) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
            i += 1;
        }
        let number: String = chars[start..i].iter().collect();
        let mut j = i;
        while j < chars.len() && chars[j] == ' ' {
            j += 1;
        }
        let times = matches!(chars.get(j), Some('x' | '×'));
        let word_ends = chars.get(j + 1).is_none_or(|c| !c.is_alphanumeric());
        if times && word_ends {
            if let Ok(x) = number.parse::<f64>() {
                return Some(x);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goal_ratios() {
        assert_eq!(goal_ratio("<= 0.7x BIRD"), Some(0.7));
        assert_eq!(goal_ratio(">= 0.80x"), Some(0.8));
        assert_eq!(goal_ratio("≤ 0.2× GoBGP"), Some(0.2));
        assert_eq!(goal_ratio("first pass >= 3 x ip -batch"), Some(3.0));
        assert_eq!(goal_ratio("<= 50 ms"), None);
        assert_eq!(goal_ratio("< 30 MB"), None);
        assert_eq!(goal_ratio("p99 <= 50 ms at 50 nodes"), None);
        assert_eq!(goal_ratio("10 xyz"), None);
    }

    #[test]
    fn ratio_is_computed_when_left_out() {
        let r = parse(
            r#"{"section":"5","bench":"ipam","case":"c","metric":"rate","unit":"ops/s","value":50,"reference":"raw","reference_value":100}"#,
        );
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert_eq!(r.figures[0].ratio, Some(0.5));
    }

    #[test]
    fn bad_lines_name_their_number() {
        let r = parse(concat!(
            "{\"section\":\"1\",\"bench\":\"converge\",\"case\":\"a\",\"samples_ms\":[3,1,2]}\n",
            "\n",
            "not json\n",
            "[1,2]\n",
            "{\"section\":\"1\",\"bench\":\"watch\",\"case\":\"a\",\"metric\":\"latency_p50\",\"unit\":\"ms\"}\n",
            "{\"section\":\"1\",\"bench\":\"converge\",\"case\":\"b\",\"samples_ms\":[1,\"x\"]}\n",
            "{\"section\":\"1\",\"bench\":\"watch\",\"case\":\"a\",\"metric\":\"time\",\"unit\":\"ms\",\"value\":1,\"met\":\"yes\"}\n",
        ));
        let lines: Vec<usize> = r.warnings.iter().map(|w| w.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7]);
        assert_eq!(r.distributions.len(), 1);
        assert_eq!(r.distributions[0].samples_ms, [1.0, 2.0, 3.0]);
    }
}
