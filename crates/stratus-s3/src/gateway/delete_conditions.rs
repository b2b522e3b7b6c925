//! The size and modification-time conditions of DeleteObject
//! (`x-amz-if-match-size`, `x-amz-if-match-last-modified-time`, which s3s
//! 0.14 does not parse) and of DeleteObjects' entries (`Size`,
//! `LastModifiedTime`), read into a [`DeleteCondition`] the backend checks
//! atomically with the delete. A malformed value is refused
//! (`InvalidArgument`), never ignored: an ignored condition would delete
//! what the client meant to keep.

use s3s::dto::{ObjectIdentifier, Timestamp, TimestampFormat};
use s3s::{s3_error, S3Result};

use crate::backend::DeleteCondition;

/// The longest header value read (an HTTP date is 29 characters).
const MAX_VALUE: usize = 64;

/// `(size, modified_secs)` from DeleteObject's headers.
pub(super) fn from_headers(h: &http::HeaderMap) -> S3Result<(Option<u64>, Option<u64>)> {
    let text = |name: &str| -> S3Result<Option<String>> {
        let Some(v) = h.get(name) else {
            return Ok(None);
        };
        let v = v
            .to_str()
            .ok()
            .filter(|v| v.len() <= MAX_VALUE)
            .ok_or_else(|| s3_error!(InvalidArgument, "{} is not a valid value", name))?;
        Ok(Some(v.trim().to_owned()))
    };
    let size = match text("x-amz-if-match-size")? {
        None => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            s3_error!(
                InvalidArgument,
                "x-amz-if-match-size must be a number of bytes"
            )
        })?),
    };
    let modified = match text("x-amz-if-match-last-modified-time")? {
        None => None,
        Some(v) => {
            let t = Timestamp::parse(TimestampFormat::HttpDate, &v)
                .or_else(|_| Timestamp::parse(TimestampFormat::DateTime, &v))
                .map_err(|_| {
                    s3_error!(
                        InvalidArgument,
                        "x-amz-if-match-last-modified-time must be an HTTP date"
                    )
                })?;
            Some(secs(&t))
        }
    };
    Ok((size, modified))
}

/// The conditions of one DeleteObjects entry.
pub(super) fn of_entry(obj: &ObjectIdentifier) -> S3Result<DeleteCondition> {
    let size = match obj.size {
        None => None,
        Some(n) => Some(
            u64::try_from(n)
                .map_err(|_| s3_error!(InvalidArgument, "Size must not be negative"))?,
        ),
    };
    Ok(DeleteCondition {
        etag: obj.e_tag.as_ref().map(|t| t.value().to_owned()),
        size,
        modified_secs: obj.last_modified_time.as_ref().map(secs),
    })
}

/// Whole seconds since the epoch; a time before it matches no version.
fn secs(t: &Timestamp) -> u64 {
    let t = time::OffsetDateTime::from(t.clone());
    u64::try_from(t.unix_timestamp()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, http::HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn reads_size_and_http_date() {
        let h = headers(&[
            ("x-amz-if-match-size", "42"),
            (
                "x-amz-if-match-last-modified-time",
                "Thu, 01 Jan 2015 00:00:00 GMT",
            ),
        ]);
        assert_eq!(
            from_headers(&h).expect("ok"),
            (Some(42), Some(1_420_070_400))
        );
        assert_eq!(
            from_headers(&http::HeaderMap::new()).expect("ok"),
            (None, None)
        );
    }

    #[test]
    fn malformed_or_oversized_values_are_refused() {
        let long = "9".repeat(MAX_VALUE + 1);
        for (k, v) in [
            ("x-amz-if-match-size", "-1"),
            ("x-amz-if-match-size", "12abc"),
            ("x-amz-if-match-size", "99999999999999999999999"),
            ("x-amz-if-match-size", long.as_str()),
            ("x-amz-if-match-last-modified-time", "yesterday"),
        ] {
            let e = from_headers(&headers(&[(k, v)])).expect_err(v);
            assert_eq!(e.code().as_str(), "InvalidArgument");
        }
    }
}
