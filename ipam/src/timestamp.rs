//! Allocation timestamps as Calico and Tabby write them, to seconds since
//! the Unix epoch: RFC 3339 (`2026-11-25T12:00:00Z`, what Tabby writes) and
//! Go's `time.Time.String()` (`2026-11-25 12:00:00.123456789 +0000 UTC`,
//! what Calico's CNI plugin writes).

/// Seconds since the epoch, or None if `s` is neither form.
pub fn parse(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = (s.get(..10)?, s.get(10..)?);
    let mut d = date.split('-');
    let (y, m, day): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (hh, mm, ss) = (
        num(rest.get(0..2)?)?,
        num(rest.get(3..5)?)?,
        num(rest.get(6..8)?)?,
    );
    if rest.get(2..3)? != ":" || rest.get(5..6)? != ":" || m == 0 || m > 12 || day == 0 || day > 31
    {
        return None;
    }
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut zone = &rest[8..];
    if let Some(f) = zone.strip_prefix('.') {
        let digits = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
        zone = &f[digits..];
    }
    let zone = zone.trim_start();
    let offset = if zone.starts_with(['Z', 'z']) {
        0
    } else {
        let sign = match zone.get(..1)? {
            "+" => 1,
            "-" => -1,
            _ => return None,
        };
        let z = zone.get(1..)?;
        // "+00:00" (RFC 3339) or "+0000" (Go).
        let (h, mi) = if z.get(2..3) == Some(":") {
            (num(z.get(0..2)?)?, num(z.get(3..5)?)?)
        } else {
            (num(z.get(0..2)?)?, num(z.get(2..4)?)?)
        };
        sign * (h * 3600 + mi * 60)
    };
    Some(days_from_civil(y, m, day) * 86_400 + hh * 3600 + mm * 60 + ss - offset)
}

fn num(s: &str) -> Option<i64> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// well-known algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn both_forms_and_garbage() {
        assert_eq!(parse("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(
            parse("2026-11-25T12:00:00+01:00"),
            parse("2026-11-25T11:00:00Z")
        );
        assert_eq!(
            parse("2026-11-25 12:00:00.123456789 +0000 UTC"),
            parse("2026-11-25T12:00:00Z")
        );
        assert_eq!(
            parse("2026-11-25 12:00:00 -0700 MST m=+0.001"),
            parse("2026-11-25T19:00:00Z")
        );
        for bad in [
            "",
            "yesterday",
            "2026-11-25",
            "2026-13-01T00:00:00Z",
            "2026-11-25T1:00:00Z",
            "2026-11-25T10:00:00",
            "２０２６-11-25T10:00:00Z",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
