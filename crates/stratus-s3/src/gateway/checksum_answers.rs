//! Stored additional checksums in S3's answers and requests that use them:
//! the algorithm and type asked by CreateMultipartUpload, the check of a
//! CompleteMultipartUpload's expected values before anything is committed,
//! the checksums GetObject/HeadObject send with `x-amz-checksum-mode:
//! ENABLED`, and GetObjectAttributes.
//!
//! As in S3: a simple upload's checksum is `FULL_OBJECT`; an upload asks
//! for `COMPOSITE` (the default for CRC32, CRC32C, SHA-1, SHA-256) or
//! `FULL_OBJECT` (CRC64NVME's only type, allowed for CRC32/CRC32C); a read
//! of part `N` answers that part's checksum with the object's type; a
//! ranged read answers none.

use s3s::dto::{
    self, Checksum, ChecksumAlgorithm, ChecksumType, GetObjectAttributesInput,
    GetObjectAttributesOutput, GetObjectAttributesParts, ObjectPart,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::checksums::Algorithm;
use super::convert::{timestamp, version_header};
use super::errors::to_s3_error;
use super::Gateway;
use crate::backend::{combine_checksums, Backend, KeyStore, ObjectChecksum, ObjectInfo};

/// Most parts GetObjectAttributes lists in one answer (S3's default and
/// limit).
const MAX_ATTRIBUTE_PARTS: usize = 1000;

/// The s3s [`Checksum`] holding `value` under `c`'s algorithm, with `c`'s
/// type.
pub(super) fn checksum_dto(c: &ObjectChecksum, value: &str) -> Checksum {
    let mut out = Checksum {
        checksum_type: Some(type_of(c)),
        ..Checksum::default()
    };
    if let Some(a) = Algorithm::from_name(&c.algorithm) {
        *a.field(&mut out) = Some(value.to_owned());
    }
    out
}

fn type_of(c: &ObjectChecksum) -> ChecksumType {
    ChecksumType::from_static(if c.composite {
        ChecksumType::COMPOSITE
    } else {
        ChecksumType::FULL_OBJECT
    })
}

/// Copies a [`Checksum`]'s fields onto an output with the same names.
macro_rules! checksum_out {
    ($out:expr, $c:expr) => {
        if let Some(c) = $c {
            $out.checksum_crc32 = c.checksum_crc32;
            $out.checksum_crc32c = c.checksum_crc32c;
            $out.checksum_crc64nvme = c.checksum_crc64nvme;
            $out.checksum_sha1 = c.checksum_sha1;
            $out.checksum_sha256 = c.checksum_sha256;
            $out.checksum_type = c.checksum_type;
        }
    };
}
pub(super) use checksum_out;

/// The checksum a read answers with `x-amz-checksum-mode: ENABLED`: the
/// object's, or part `part`'s; none for a ranged read or without the mode.
pub(super) fn read_checksum(
    info: &ObjectInfo,
    mode: Option<&dto::ChecksumMode>,
    part: Option<i32>,
    ranged: bool,
) -> Option<Checksum> {
    if mode.is_none_or(|m| m.as_str() != dto::ChecksumMode::ENABLED) || ranged {
        return None;
    }
    let c = info.checksum.as_ref()?;
    match part {
        // A multipart object's part: that part's checksum.
        Some(n) if !info.part_sizes.is_empty() => {
            let v = u32::try_from(n)
                .ok()
                .and_then(|n| info.part_checksums.get(&n))?;
            Some(checksum_dto(c, v))
        }
        _ => Some(checksum_dto(c, &c.value)),
    }
}

/// The algorithm and type a CreateMultipartUpload asks for (`None`: no
/// checksum), refusing the combinations S3 refuses.
pub(super) fn asked_for_upload(
    algorithm: Option<&ChecksumAlgorithm>,
    kind: Option<&ChecksumType>,
) -> S3Result<Option<ObjectChecksum>> {
    let Some(algorithm) = algorithm else {
        if kind.is_some() {
            return Err(s3_error!(
                InvalidRequest,
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header."
            ));
        }
        return Ok(None);
    };
    let a = Algorithm::from_name(algorithm.as_str()).ok_or_else(|| {
        s3_error!(
            InvalidRequest,
            "Value for x-amz-checksum-algorithm header is invalid."
        )
    })?;
    let composite = match kind.map(ChecksumType::as_str) {
        None => a != Algorithm::Crc64Nvme,
        Some(ChecksumType::COMPOSITE) if a == Algorithm::Crc64Nvme => {
            return Err(s3_error!(
                InvalidRequest,
                "The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm."
            ))
        }
        Some(ChecksumType::COMPOSITE) => true,
        Some(ChecksumType::FULL_OBJECT) if matches!(a, Algorithm::Sha1 | Algorithm::Sha256) => {
            return Err(s3_error!(
                InvalidRequest,
                "The FULL_OBJECT checksum type cannot be used with the {} checksum algorithm.",
                a.name().to_ascii_lowercase()
            ))
        }
        Some(ChecksumType::FULL_OBJECT) => false,
        Some(other) => {
            return Err(s3_error!(
                InvalidRequest,
                "Value for x-amz-checksum-type header is invalid: {}",
                other
            ))
        }
    };
    Ok(Some(ObjectChecksum {
        algorithm: a.name().to_owned(),
        value: String::new(),
        composite,
    }))
}

/// What a CompleteMultipartUpload says about checksums: per listed part,
/// the values sent (by algorithm order of [`Algorithm`]), and the whole
/// object's expected value and type.
pub(super) struct CompleteSums {
    /// `(part number, the part's checksum fields)` in the order listed.
    pub(super) parts: Vec<(u32, Checksum)>,
    /// The object checksum the client expects.
    pub(super) whole: Checksum,
    /// `x-amz-checksum-type`, if sent.
    pub(super) kind: Option<ChecksumType>,
}

fn has_any(c: &Checksum) -> bool {
    c.checksum_crc32.is_some()
        || c.checksum_crc32c.is_some()
        || c.checksum_crc64nvme.is_some()
        || c.checksum_sha1.is_some()
        || c.checksum_sha256.is_some()
}

/// The value of `c` under `a`'s field.
fn value_of(a: Algorithm, c: &Checksum) -> Option<String> {
    let mut c = c.clone();
    a.field(&mut c).take()
}

/// Checks a completion's checksums against the parts stored, before
/// anything is committed: a listed part's checksum must be the one it was
/// uploaded with (`InvalidPart`); the expected object checksum must be the
/// one the parts combine to (`BadDigest`); checksums on an upload created
/// without an algorithm, or of another algorithm or type, are refused
/// (`InvalidRequest`). Returns the object's checksum (to answer with).
pub(super) async fn check_completion<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    tenant: &str,
    (bucket, key, upload_id): (&str, &str, &str),
    sums: &CompleteSums,
) -> S3Result<Option<ObjectChecksum>> {
    let asked = gw
        .backend
        .upload_checksum(tenant, bucket, key, upload_id)
        .await;
    let asked = match asked {
        Ok(a) => a,
        // A completed or unknown upload: the completion answers for itself.
        Err(_) => return Ok(None),
    };
    let Some(asked) = asked else {
        if has_any(&sums.whole) || sums.kind.is_some() {
            return Err(s3_error!(
                InvalidRequest,
                "The upload was created without a checksum algorithm; the complete request cannot carry a checksum."
            ));
        }
        return Ok(None);
    };
    let a = Algorithm::from_name(&asked.algorithm)
        .ok_or_else(|| s3_error!(InternalError, "unknown stored checksum algorithm"))?;
    if let Some(k) = &sums.kind {
        if k.as_str() != type_of(&asked).as_str() {
            return Err(s3_error!(
                InvalidRequest,
                "The upload was created using the {} checksum mode. The complete request must use the same checksum mode.",
                type_of(&asked).as_str()
            ));
        }
    }
    let stored = gw
        .backend
        .list_parts(tenant, bucket, key, upload_id)
        .await
        .map_err(to_s3_error)?;
    let mut chosen = Vec::with_capacity(sums.parts.len());
    for (n, sent) in &sums.parts {
        let Some(p) = stored.iter().find(|p| p.part_number == *n) else {
            // The backend answers InvalidPart with the completion.
            return Ok(None);
        };
        if let Some(v) = value_of(a, sent) {
            if p.checksum.as_deref() != Some(v.as_str()) {
                return Err(s3_error!(
                    InvalidPart,
                    "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified checksum may not have matched the part's checksum."
                ));
            }
        } else if has_any(sent) {
            return Err(s3_error!(
                InvalidRequest,
                "Part {} carries a checksum of another algorithm than the upload's {}.",
                n,
                a.name()
            ));
        }
        chosen.push((p.checksum.clone(), p.size));
    }
    let refs: Vec<(Option<&str>, u64)> = chosen.iter().map(|(v, n)| (v.as_deref(), *n)).collect();
    let whole = combine_checksums(&asked, &refs).map_err(to_s3_error)?;
    if has_any(&sums.whole) {
        let sent = value_of(a, &sums.whole).ok_or_else(|| {
            s3_error!(
                BadDigest,
                "The {} you specified did not match the calculated checksum.",
                a.name()
            )
        })?;
        let strip = |v: &str| v.split('-').next().unwrap_or_default().to_owned();
        if whole.as_ref().map(|w| strip(&w.value)) != Some(strip(&sent)) {
            return Err(s3_error!(
                BadDigest,
                "The {} you specified did not match the calculated checksum.",
                a.name()
            ));
        }
    }
    Ok(whole)
}

/// GetObjectAttributes: ETag, Checksum, ObjectParts (paged by `max-parts`
/// and `part-number-marker`), StorageClass, ObjectSize of a version, with
/// the read rules of HeadObject.
pub(super) async fn get_object_attributes<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<GetObjectAttributesInput>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    let input = &req.input;
    let (tenant, checked) =
        super::readers::object_reader(gw, &req, &input.bucket, &input.key, &input.version_id)
            .await?;
    crate::sse::refuse_on_read(&req.headers)?;
    let sent = crate::sse::customer_key(crate::sse::customer_of!(input))?;
    // Clients send the list as one comma-separated header.
    let asked: Vec<&str> = input
        .object_attributes
        .iter()
        .flat_map(|a| a.as_str().split(','))
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    if asked.is_empty() || asked.len() > 5 {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-object-attributes names 1 to 5 of ETag, Checksum, ObjectParts, StorageClass, ObjectSize"
        ));
    }
    const KNOWN: [&str; 5] = [
        "ETag",
        "Checksum",
        "ObjectParts",
        "StorageClass",
        "ObjectSize",
    ];
    if let Some(bad) = asked.iter().find(|a| !KNOWN.contains(a)) {
        return Err(s3_error!(
            InvalidArgument,
            "Invalid attribute name specified: {}",
            bad
        ));
    }
    let max = match input.max_parts {
        None => MAX_ATTRIBUTE_PARTS,
        Some(n) => usize::try_from(n)
            .map_err(|_| s3_error!(InvalidArgument, "max-parts must be between 0 and 1000"))?
            .min(MAX_ATTRIBUTE_PARTS),
    };
    let marker = match input.part_number_marker {
        None => 0,
        Some(n) => u32::try_from(n)
            .map_err(|_| s3_error!(InvalidArgument, "part-number-marker must not be negative"))?,
    };
    let info = match gw
        .backend
        .head_object(&tenant, &input.bucket, &input.key, checked.as_deref())
        .await
    {
        Ok(i) => i,
        Err(e) => {
            return Err(super::objects::read_error(gw, &tenant, &input.bucket, &input.key, e).await)
        }
    };
    // An object under a client's key: its attributes need the key too.
    crate::sse::check_read(info.customer_seal.as_ref(), sent.as_ref())?;
    let want = |a: &str| asked.contains(&a);
    let mut out = GetObjectAttributesOutput {
        last_modified: Some(timestamp(info.last_modified_ms)),
        version_id: version_header(&info.version_id),
        ..Default::default()
    };
    if want("ETag") {
        out.e_tag = Some(dto::ETag::Strong(info.etag.clone()));
    }
    if want("StorageClass") {
        out.storage_class = Some(dto::StorageClass::from_static(dto::StorageClass::STANDARD));
    }
    if want("ObjectSize") {
        out.object_size = i64::try_from(info.size).ok();
    }
    if want("Checksum") {
        out.checksum = info.checksum.as_ref().map(|c| checksum_dto(c, &c.value));
    }
    if want("ObjectParts") && !info.part_sizes.is_empty() {
        let all: Vec<(u32, u64)> = info
            .part_sizes
            .iter()
            .copied()
            .zip(1u32..)
            .map(|(s, n)| (n, s))
            .collect();
        let mut rest = all.into_iter().filter(|(n, _)| *n > marker).peekable();
        let mut parts = Vec::new();
        while parts.len() < max {
            let Some((n, size)) = rest.next() else { break };
            let mut p = ObjectPart {
                part_number: i32::try_from(n).ok(),
                size: i64::try_from(size).ok(),
                ..Default::default()
            };
            if let (Some(c), Some(v)) = (&info.checksum, info.part_checksums.get(&n)) {
                let d = checksum_dto(c, v);
                p.checksum_crc32 = d.checksum_crc32;
                p.checksum_crc32c = d.checksum_crc32c;
                p.checksum_crc64nvme = d.checksum_crc64nvme;
                p.checksum_sha1 = d.checksum_sha1;
                p.checksum_sha256 = d.checksum_sha256;
            }
            parts.push(p);
        }
        let truncated = rest.peek().is_some();
        out.object_parts = Some(GetObjectAttributesParts {
            is_truncated: Some(truncated),
            max_parts: i32::try_from(max).ok(),
            next_part_number_marker: parts.last().and_then(|p| p.part_number),
            part_number_marker: i32::try_from(marker).ok(),
            parts: Some(parts),
            total_parts_count: i32::try_from(info.part_sizes.len()).ok(),
        });
    }
    Ok(S3Response::new(out))
}
