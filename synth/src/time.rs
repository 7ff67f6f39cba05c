//! Calendar conversions for the generator's timestamps (RFC 3339, HTTP dates, X.509 UTCTime).
//!
//! Owns: converting microseconds since the Unix epoch to and from civil dates in UTC. Must not:
//! read the system clock — every time in the output comes from the options.

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

struct Civil {
    y: i64,
    mo: u32,
    d: u32,
    h: u64,
    mi: u64,
    s: u64,
    us: u64,
    weekday: usize,
}

fn civil(unix_us: u64) -> Civil {
    let secs = unix_us / 1_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, mo, d) = civil_from_days(days);
    Civil {
        y,
        mo,
        d,
        h: rem / 3600,
        mi: rem % 3600 / 60,
        s: rem % 60,
        us: unix_us % 1_000_000,
        // 1970-01-01 was a Thursday (index 4 with Sunday = 0).
        weekday: ((days + 4).rem_euclid(7)) as usize,
    }
}

/// `2024-03-12T09:00:00Z` (seconds precision).
pub fn rfc3339(unix_us: u64) -> String {
    let c = civil(unix_us);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.y, c.mo, c.d, c.h, c.mi, c.s
    )
}

/// `2024-03-12T09:00:00.123Z` (milliseconds precision).
pub fn rfc3339_millis(unix_us: u64) -> String {
    let c = civil(unix_us);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.y,
        c.mo,
        c.d,
        c.h,
        c.mi,
        c.s,
        c.us / 1000
    )
}

/// An HTTP date: `Tue, 12 Mar 2024 09:00:00 GMT`.
pub fn http_date(unix_us: u64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let c = civil(unix_us);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[c.weekday % 7],
        c.d,
        MONTHS[(c.mo as usize + 11) % 12],
        c.y,
        c.h,
        c.mi,
        c.s
    )
}

/// X.509 UTCTime `YYMMDDHHMMSSZ`.
pub fn utctime(unix_us: u64) -> String {
    let c = civil(unix_us);
    format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}Z",
        c.y.rem_euclid(100),
        c.mo,
        c.d,
        c.h,
        c.mi,
        c.s
    )
}

/// Parses an RFC 3339 timestamp (`Z` or `±HH:MM` offset, optional fraction) to microseconds
/// since the Unix epoch; `None` if malformed or before 1970.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 20
        || b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || h > 23
        || mi > 59
        || sec > 60
    {
        return None;
    }
    let mut i = 19;
    let mut frac_us = 0u64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(|c| c.is_ascii_digit()) {
            i += 1;
        }
        let digits = s.get(start..i)?;
        if digits.is_empty() {
            return None;
        }
        let mut padded = digits.chars().take(6).collect::<String>();
        while padded.len() < 6 {
            padded.push('0');
        }
        frac_us = padded.parse().ok()?;
    }
    let offset_s: i64 = match s.get(i..)? {
        "Z" | "z" => 0,
        rest if rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && &rest[3..4] == ":" =>
        {
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(y as i64, mo as u32, d as u32);
    let secs = days * 86_400 + (h * 3600 + mi * 60 + sec) as i64 - offset_s;
    (secs >= 0).then(|| secs as u64 * 1_000_000 + frac_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_formats() {
        let t = parse_rfc3339("2024-03-12T09:00:00Z").expect("valid");
        assert_eq!(t, 1_710_234_000_000_000);
        assert_eq!(rfc3339(t), "2024-03-12T09:00:00Z");
        assert_eq!(http_date(t), "Tue, 12 Mar 2024 09:00:00 GMT");
        assert_eq!(utctime(t), "240312090000Z");
        assert_eq!(
            parse_rfc3339("2024-03-12T10:00:00.5+01:00"),
            Some(t + 500_000)
        );
        assert_eq!(rfc3339_millis(t + 1_234_567), "2024-03-12T09:00:01.234Z");
        assert_eq!(parse_rfc3339("2024-13-12T09:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(
            rfc3339(parse_rfc3339("2000-02-29T23:59:59Z").expect("leap day")),
            "2000-02-29T23:59:59Z"
        );
    }
}
