//! The two UTC time forms S3 speaks: SigV4's basic ISO 8601
//! (`20130524T000000Z`, and its `20130524` date) and the extended form of
//! listings (`2013-05-24T00:00:00.000Z`).
//!
//! Civil dates from day counts after Howard Hinnant's `days_from_civil`
//! algorithm, so the crate needs no calendar dependency for two formats.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A UTC instant split into calendar fields (seconds precision).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Civil {
    /// The calendar fields of `time` (times before 1970 count as 1970).
    pub(crate) fn from_system_time(time: SystemTime) -> Civil {
        let secs = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
        let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: (rest / 3600) as u32,
            minute: (rest / 60 % 60) as u32,
            second: (rest % 60) as u32,
        }
    }

    /// `YYYYMMDDTHHMMSSZ`, SigV4's `X-Amz-Date`.
    pub(crate) fn amz_date_time(&self) -> String {
        format!("{}T{:02}{:02}{:02}Z", self.amz_date(), self.hour, self.minute, self.second)
    }

    /// `YYYYMMDD`, the date in a SigV4 credential scope.
    pub(crate) fn amz_date(&self) -> String {
        format!("{:04}{:02}{:02}", self.year, self.month, self.day)
    }
}

/// Parse S3's `2013-05-24T00:00:00.000Z` (fraction optional, ignored).
pub(crate) fn parse_iso8601(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    let (date, time) = text.split_once('T')?;
    let time = time.strip_suffix('Z')?;
    let time = time.split_once('.').map_or(time, |(whole, _fraction)| whole);
    let mut date_fields = date.splitn(3, '-').map(|f| f.parse::<u32>().ok());
    let (year, month, day) = (date_fields.next()??, date_fields.next()??, date_fields.next()??);
    let mut time_fields = time.splitn(3, ':').map(|f| f.parse::<u32>().ok());
    let (hour, minute, second) = (time_fields.next()??, time_fields.next()??, time_fields.next()??);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn formats_sigv4_dates() {
        // 2013-05-24T00:00:00Z, the date of AWS's signing examples.
        let civil = Civil::from_system_time(at(1_369_353_600));
        assert_eq!(civil.amz_date_time(), "20130524T000000Z");
        assert_eq!(civil.amz_date(), "20130524");
        assert_eq!(Civil::from_system_time(at(1_440_938_160)).amz_date_time(), "20150830T123600Z");
        // A leap day and the last second of a century year.
        assert_eq!(Civil::from_system_time(at(951_782_400)).amz_date_time(), "20000229T000000Z");
        assert_eq!(Civil::from_system_time(at(4_102_444_799)).amz_date_time(), "20991231T235959Z");
    }

    #[test]
    fn parses_listing_times_and_round_trips_day_counts() {
        assert_eq!(parse_iso8601("2013-05-24T00:00:00.000Z"), Some(at(1_369_353_600)));
        assert_eq!(parse_iso8601("2015-08-30T12:36:00Z"), Some(at(1_440_938_160)));
        for bad in ["", "2013-05-24", "2013-13-01T00:00:00Z", "2013-05-24T00:00:00", "x-05-24T00:00:00Z"] {
            assert_eq!(parse_iso8601(bad), None, "{bad:?}");
        }
        for days in (-1000..200_000).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
