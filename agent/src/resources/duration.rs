//! Go duration strings ("120s", "2m0s", "1h30m") as Calico's API uses them.

use std::time::Duration;

/// What [`parse_go_duration`] accepts, as a pattern for the CRD schema
/// (without the surrounding whitespace it trims and its upper bound).
pub const GO_DURATION_PATTERN: &str = r"^(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h))+)$";

pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("{s:?} is not a duration (expected e.g. \"120s\", \"2m0s\")");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(err());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        if num_end == 0 {
            return Err(err());
        }
        let n: f64 = rest[..num_end].parse().map_err(|_| err())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    if !total.is_finite() || total > 1e12 {
        return Err(err());
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("120s"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_go_duration("2m0s"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_go_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_go_duration("ten seconds").is_err());
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("").is_err());
    }

    #[test]
    fn schema_pattern_accepts_what_the_parser_accepts() {
        let re = regex::Regex::new(GO_DURATION_PATTERN).unwrap();
        for s in [
            "0",
            "120s",
            "2m0s",
            "1h30m",
            "1.5s",
            ".5s",
            "5.s",
            "300ms",
            "10us",
            "10µs",
            "1ns",
            "10",
            "",
            "s",
            "1.2.3s",
            "1d",
            "ten seconds",
            "-5s",
            "1h 30m",
            ".s",
        ] {
            assert_eq!(
                re.is_match(s),
                parse_go_duration(s).is_ok(),
                "pattern and parser disagree on {s:?}"
            );
        }
    }
}
