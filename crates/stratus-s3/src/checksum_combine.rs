//! The checksum of a multipart object from its parts' checksums, as S3
//! computes it at CompleteMultipartUpload ([`combine_checksums`]):
//!
//! * `COMPOSITE` (S3's default for CRC32, CRC32C, SHA-1 and SHA-256): the
//!   algorithm run over the concatenated binary checksums of the parts,
//!   base64, then `-N` (the number of parts).
//! * `FULL_OBJECT` (CRC64NVME's only type; CRC32/CRC32C when asked): the
//!   CRC of the whole object, obtained without reading it by combining the
//!   parts' CRCs ("crc combine": multiplying a CRC by `x^(8·len)` modulo the
//!   polynomial shifts it past `len` bytes; both CRC's pre- and
//!   post-inversion cancel out, as zlib's `crc32_combine` relies on).
//!
//! Shared by every backend so each stores the same value; the gateway runs
//! it too before completing, to refuse a wrong expected value
//! (`BadDigest`) before anything is committed.

use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};

use crate::backend::{BackendError, BackendResult, ObjectChecksum};

/// A reflected CRC: its width and reversed polynomial.
struct Crc {
    width: u32,
    poly: u64,
}

const CRC32: Crc = Crc {
    width: 32,
    poly: 0xEDB8_8320,
};
const CRC32C: Crc = Crc {
    width: 32,
    poly: 0x82F6_3B78,
};
const CRC64NVME: Crc = Crc {
    width: 64,
    poly: 0x9A6C_9329_AC4B_C9B5,
};

impl Crc {
    fn top(&self) -> u64 {
        1u64 << (self.width - 1)
    }

    /// `a·b mod p` in the reflected representation (x^0 is the top bit).
    fn mul(&self, a: u64, mut b: u64) -> u64 {
        let mut m = self.top();
        let mut p = 0u64;
        while m != 0 {
            if a & m != 0 {
                p ^= b;
                if a & (m - 1) == 0 {
                    break;
                }
            }
            m >>= 1;
            b = if b & 1 != 0 {
                (b >> 1) ^ self.poly
            } else {
                b >> 1
            };
        }
        p
    }

    /// `x^(8·len) mod p`.
    fn shift(&self, mut len: u64) -> u64 {
        let mut p = self.top();
        let mut base = self.top() >> 8;
        while len > 0 {
            if len & 1 == 1 {
                p = self.mul(base, p);
            }
            base = self.mul(base, base);
            len >>= 1;
        }
        p
    }

    /// The CRC of `A‖B` from `crc(A)`, `crc(B)` and `len(B)`.
    fn combine(&self, a: u64, b: u64, len_b: u64) -> u64 {
        self.mul(self.shift(len_b), a) ^ b
    }
}

/// The object checksum of `asked` (algorithm and type of the upload) from
/// the listed parts' `(checksum, size)` in order. `Ok(None)` when the
/// upload asked for no checksum; a part without one, or a value that is
/// not one of the algorithm, is `InvalidArgument`.
pub fn combine_checksums(
    asked: &ObjectChecksum,
    parts: &[(Option<&str>, u64)],
) -> BackendResult<Option<ObjectChecksum>> {
    let alg = asked.algorithm.as_str();
    let len = match alg {
        "CRC32" | "CRC32C" => 4,
        "CRC64NVME" => 8,
        "SHA1" => 20,
        "SHA256" => 32,
        _ => return Ok(None),
    };
    let mut digests = Vec::with_capacity(parts.len());
    for (i, (v, size)) in parts.iter().enumerate() {
        let d = v
            .and_then(base64_decode)
            .filter(|d| d.len() == len)
            .ok_or_else(|| {
                BackendError::InvalidArgument(format!(
                    "part {} of the list has no {alg} checksum",
                    i + 1
                ))
            })?;
        digests.push((d, *size));
    }
    let value = if asked.composite {
        let cat: Vec<u8> = digests.iter().flat_map(|(d, _)| d.clone()).collect();
        let sum: Vec<u8> = match alg {
            "CRC32" => bytes(Crc32::checksum(&cat)),
            "CRC32C" => bytes(Crc32c::checksum(&cat)),
            "CRC64NVME" => bytes(Crc64Nvme::checksum(&cat)),
            "SHA1" => bytes(Sha1::checksum(&cat)),
            _ => bytes(Sha256::checksum(&cat)),
        };
        format!("{}-{}", base64_encode(&sum), parts.len())
    } else {
        let crc = match alg {
            "CRC32" => CRC32,
            "CRC32C" => CRC32C,
            "CRC64NVME" => CRC64NVME,
            _ => {
                return Err(BackendError::InvalidArgument(format!(
                    "{alg} has no FULL_OBJECT checksum type"
                )))
            }
        };
        let mut acc: Option<u64> = None;
        for (d, size) in &digests {
            let v = d.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b));
            acc = Some(match acc {
                None => v,
                Some(a) => crc.combine(a, v, *size),
            });
        }
        let v = acc.unwrap_or(0).to_be_bytes();
        base64_encode(&v[8 - len..])
    };
    Ok(Some(ObjectChecksum {
        algorithm: asked.algorithm.clone(),
        value,
        composite: asked.composite,
    }))
}

fn bytes<T: AsRef<[u8]>>(t: T) -> Vec<u8> {
    t.as_ref().to_vec()
}

/// Standard base64 with padding.
pub(crate) fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 (padding optional); `None` if it is not.
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim().trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(alg: &str, data: &[u8]) -> String {
        let b: Vec<u8> = match alg {
            "CRC32" => bytes(Crc32::checksum(data)),
            "CRC32C" => bytes(Crc32c::checksum(data)),
            "CRC64NVME" => bytes(Crc64Nvme::checksum(data)),
            "SHA1" => bytes(Sha1::checksum(data)),
            _ => bytes(Sha256::checksum(data)),
        };
        base64_encode(&b)
    }

    fn asked(alg: &str, composite: bool) -> ObjectChecksum {
        ObjectChecksum {
            algorithm: alg.into(),
            value: String::new(),
            composite,
        }
    }

    /// Full-object CRCs combined from parts equal the CRC of the whole,
    /// for every CRC and uneven part sizes (empty part included).
    #[test]
    fn full_object_crcs_combine_to_the_whole() {
        let whole: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let cuts = [0usize, 1, 4096, 4096, 9_999, 10_000];
        for alg in ["CRC32", "CRC32C", "CRC64NVME"] {
            let parts: Vec<(String, u64)> = cuts
                .windows(2)
                .map(|w| (sum(alg, &whole[w[0]..w[1]]), (w[1] - w[0]) as u64))
                .collect();
            let refs: Vec<(Option<&str>, u64)> =
                parts.iter().map(|(v, n)| (Some(v.as_str()), *n)).collect();
            let got = combine_checksums(&asked(alg, false), &refs)
                .expect("combined")
                .expect("some");
            assert_eq!(got.value, sum(alg, &whole), "{alg}");
            assert!(!got.composite);
        }
    }

    /// The values ceph/s3-tests expects from AWS for three 5 MiB parts of
    /// `A`, `B` and `C` (published expectations, recomputed here).
    #[test]
    fn matches_the_published_values() {
        let mib5 = 5 * 1024 * 1024;
        let bodies: Vec<Vec<u8>> = [b'A', b'B', b'C'].iter().map(|c| vec![*c; mib5]).collect();
        let case = |alg: &str, composite: bool| {
            let parts: Vec<String> = bodies.iter().map(|b| sum(alg, b)).collect();
            let refs: Vec<(Option<&str>, u64)> = parts
                .iter()
                .map(|v| (Some(v.as_str()), mib5 as u64))
                .collect();
            combine_checksums(&asked(alg, composite), &refs)
                .expect("ok")
                .expect("some")
                .value
        };
        assert_eq!(case("CRC32", false), "WgDhBQ==");
        assert_eq!(case("CRC32C", false), "xU+Krw==");
        assert_eq!(case("CRC64NVME", false), "i+6LR0y3eFo=");
        assert_eq!(
            case("SHA256", true),
            "uWBwpe1dxI4Vw8Gf0X9ynOdw/SS6VBzfWm9giiv1sf4=-3"
        );
        assert_eq!(case("SHA1", true), "sizjvY4eud3MrcHdZM3cQ/ol39o=-3");
    }

    #[test]
    fn a_missing_or_foreign_part_checksum_is_refused() {
        let crc = sum("CRC32", b"x");
        let sha = sum("SHA256", b"x");
        for parts in [
            vec![(Some(crc.as_str()), 1), (None, 1)],
            vec![(Some(sha.as_str()), 1)],
            vec![(Some("not base64!"), 1)],
        ] {
            assert!(combine_checksums(&asked("CRC32", true), &parts).is_err());
        }
        assert!(combine_checksums(&asked("SHA256", false), &[(Some(sha.as_str()), 1)]).is_err());
        assert_eq!(
            combine_checksums(&asked("MD5", false), &[]).expect("ok"),
            None
        );
    }

    #[test]
    fn base64_round_trips() {
        for n in 0..10 {
            let d: Vec<u8> = (0..n).map(|i: u8| i.wrapping_mul(37)).collect();
            assert_eq!(base64_decode(&base64_encode(&d)), Some(d));
        }
        assert_eq!(base64_encode(b"hello"), "aGVsbG8=");
    }
}
