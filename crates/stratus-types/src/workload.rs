//! Names of workloads and of what they run, as types.
//!
//! A [`WorkloadId`] is `tenant/name`; a [`Payload`] is either a WASM module
//! (`blake3:<64 hex>`) or a pinned container image
//! (`image:NAME:TAG@VERSION`). Each is parsed and printed here only: every
//! crate that used to build or split these strings now goes through these
//! types. Their serde form is exactly the string form, so the replicated
//! state, snapshots, node-to-node messages and the API's JSON are the same
//! bytes as when they were plain strings.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::validate_tenant_name;

/// Why a workload id, module reference or image reference was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// Not `tenant/name` with both parts valid names.
    #[error("invalid workload id {given:?}: {why}")]
    WorkloadId {
        /// What was given.
        given: String,
        /// Which part is wrong.
        why: String,
    },
    /// Not `blake3:<64 lowercase hex>`.
    #[error("invalid module reference {0:?}: want blake3:<64 lowercase hex>")]
    Module(String),
    /// Not `image:NAME:TAG@VERSION` with every part non-empty.
    #[error("invalid image reference {0:?}: want image:NAME:TAG@VERSION")]
    Image(String),
}

/// A workload's id: `tenant/name`, both valid names
/// ([`validate_tenant_name`]'s rule, which workload names share).
///
/// Kept as its string form (with the position of the `/`), so it orders,
/// hashes and compares exactly as the `tenant/name` string always did and
/// can be looked up in maps keyed by that string ([`Borrow<str>`]).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkloadId {
    full: String,
    slash: usize,
}

impl WorkloadId {
    /// The id of workload `name` of `tenant`, both checked.
    pub fn new(tenant: &str, name: &str) -> Result<WorkloadId, RefError> {
        let bad = |why: String| RefError::WorkloadId {
            given: format!("{tenant}/{name}"),
            why,
        };
        validate_tenant_name(tenant).map_err(bad)?;
        validate_tenant_name(name)
            .map_err(|_| bad(format!("invalid workload name {name:?}: use 1-63 characters of a-z, 0-9 and '-', starting with a letter")))?;
        Ok(WorkloadId {
            full: format!("{tenant}/{name}"),
            slash: tenant.len(),
        })
    }

    /// The owning tenant.
    pub fn tenant(&self) -> &str {
        &self.full[..self.slash]
    }

    /// The workload's name within its tenant.
    pub fn name(&self) -> &str {
        &self.full[self.slash + 1..]
    }

    /// `tenant/name`.
    pub fn as_str(&self) -> &str {
        &self.full
    }
}

impl FromStr for WorkloadId {
    type Err = RefError;
    fn from_str(s: &str) -> Result<WorkloadId, RefError> {
        match s.split_once('/') {
            Some((tenant, name)) => WorkloadId::new(tenant, name),
            None => Err(RefError::WorkloadId {
                given: s.to_string(),
                why: "want tenant/name".into(),
            }),
        }
    }
}

impl TryFrom<String> for WorkloadId {
    type Error = RefError;
    fn try_from(s: String) -> Result<WorkloadId, RefError> {
        s.parse()
    }
}

impl From<WorkloadId> for String {
    fn from(id: WorkloadId) -> String {
        id.full
    }
}

impl fmt::Display for WorkloadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for WorkloadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.full, f)
    }
}

impl Borrow<str> for WorkloadId {
    fn borrow(&self) -> &str {
        &self.full
    }
}

impl AsRef<str> for WorkloadId {
    fn as_ref(&self) -> &str {
        &self.full
    }
}

impl PartialEq<str> for WorkloadId {
    fn eq(&self, other: &str) -> bool {
        self.full == other
    }
}

impl PartialEq<&str> for WorkloadId {
    fn eq(&self, other: &&str) -> bool {
        self.full == *other
    }
}

impl PartialEq<String> for WorkloadId {
    fn eq(&self, other: &String) -> bool {
        &self.full == other
    }
}

impl PartialEq<WorkloadId> for String {
    fn eq(&self, other: &WorkloadId) -> bool {
        *self == other.full
    }
}

/// A WASM module's content address: `blake3:<64 lowercase hex>`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ModuleRef(String);

impl ModuleRef {
    /// Prefix of a module's content address.
    pub const PREFIX: &'static str = "blake3:";

    /// The module whose BLAKE3 is `hash`.
    pub fn from_blake3(hash: &[u8; 32]) -> ModuleRef {
        ModuleRef(format!("{}{}", Self::PREFIX, hex::encode(hash)))
    }

    /// `blake3:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex characters after `blake3:`.
    pub fn hex(&self) -> &str {
        &self.0[Self::PREFIX.len()..]
    }
}

impl FromStr for ModuleRef {
    type Err = RefError;
    fn from_str(s: &str) -> Result<ModuleRef, RefError> {
        let ok = s.strip_prefix(Self::PREFIX).is_some_and(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if ok {
            Ok(ModuleRef(s.to_string()))
        } else {
            Err(RefError::Module(s.to_string()))
        }
    }
}

impl TryFrom<String> for ModuleRef {
    type Error = RefError;
    fn try_from(s: String) -> Result<ModuleRef, RefError> {
        s.parse()
    }
}

impl From<ModuleRef> for String {
    fn from(m: ModuleRef) -> String {
        m.0
    }
}

impl fmt::Display for ModuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ModuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A pinned container image of a tenant's images bucket:
/// `image:NAME:TAG@VERSION` (the flist object `flists/NAME:TAG` at version
/// `VERSION`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageRef {
    /// Image name (may hold `/`, never `:` or `@`).
    pub name: String,
    /// Tag.
    pub tag: String,
    /// Version of the flist object.
    pub version: String,
}

impl ImageRef {
    /// Prefix of an image reference where a workload names what it runs.
    pub const PREFIX: &'static str = "image:";

    /// `NAME:TAG`, as the images bucket names it.
    pub fn name_tag(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }

    /// The pinned version `version` of `NAME:TAG`.
    pub fn pinned(name_tag: &str, version: &str) -> Result<ImageRef, RefError> {
        format!("{}{name_tag}@{version}", Self::PREFIX).parse()
    }
}

impl FromStr for ImageRef {
    type Err = RefError;
    fn from_str(s: &str) -> Result<ImageRef, RefError> {
        let bad = || RefError::Image(s.to_string());
        let rest = s.strip_prefix(Self::PREFIX).ok_or_else(bad)?;
        let (name_tag, version) = rest.rsplit_once('@').ok_or_else(bad)?;
        let (name, tag) = name_tag.rsplit_once(':').ok_or_else(bad)?;
        let clean = |p: &str| !p.is_empty() && !p.contains(['@', ':', '\0']);
        if !(clean(name) && clean(tag) && clean(version)) {
            return Err(bad());
        }
        Ok(ImageRef {
            name: name.to_string(),
            tag: tag.to_string(),
            version: version.to_string(),
        })
    }
}

impl TryFrom<String> for ImageRef {
    type Error = RefError;
    fn try_from(s: String) -> Result<ImageRef, RefError> {
        s.parse()
    }
}

impl From<ImageRef> for String {
    fn from(i: ImageRef) -> String {
        i.to_string()
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}:{}@{}",
            Self::PREFIX,
            self.name,
            self.tag,
            self.version
        )
    }
}

impl fmt::Debug for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string(), f)
    }
}

/// What a workload runs: a WASM module or a pinned container image.
///
/// Its string (and serde) form is the module's `blake3:<hex>` or the
/// image's `image:NAME:TAG@VERSION`, as the `module` field always held.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Payload {
    /// A WASM module or component.
    Wasm(ModuleRef),
    /// A container image.
    Image(ImageRef),
}

impl Payload {
    /// The image, if it is one.
    pub fn image(&self) -> Option<&ImageRef> {
        match self {
            Payload::Image(i) => Some(i),
            Payload::Wasm(_) => None,
        }
    }

    /// The module, if it is one.
    pub fn module(&self) -> Option<&ModuleRef> {
        match self {
            Payload::Wasm(m) => Some(m),
            Payload::Image(_) => None,
        }
    }
}

impl FromStr for Payload {
    type Err = RefError;
    fn from_str(s: &str) -> Result<Payload, RefError> {
        if s.starts_with(ImageRef::PREFIX) {
            s.parse().map(Payload::Image)
        } else {
            s.parse().map(Payload::Wasm)
        }
    }
}

impl TryFrom<String> for Payload {
    type Error = RefError;
    fn try_from(s: String) -> Result<Payload, RefError> {
        s.parse()
    }
}

impl From<Payload> for String {
    fn from(p: Payload) -> String {
        p.to_string()
    }
}

impl From<ModuleRef> for Payload {
    fn from(m: ModuleRef) -> Payload {
        Payload::Wasm(m)
    }
}

impl From<ImageRef> for Payload {
    fn from(i: ImageRef) -> Payload {
        Payload::Image(i)
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Wasm(m) => m.fmt(f),
            Payload::Image(i) => i.fmt(f),
        }
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string(), f)
    }
}

/// The name of an output stream: an instance's own (`<instance>`), or that
/// of exec `n` in it (`<instance>#exec-<n>`, `n` in its canonical decimal
/// form, so one exec has exactly one stream).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogStream<'a> {
    /// The instance.
    pub instance: &'a str,
    /// The exec, for an exec's stream.
    pub exec: Option<u32>,
}

impl<'a> LogStream<'a> {
    /// Separates an exec's number from its instance id.
    pub const EXEC: &'static str = "#exec-";

    /// Parses `<instance>` or `<instance>#exec-<n>`; `None` for anything
    /// else (a `#` not followed by a canonical exec number).
    pub fn parse(s: &'a str) -> Option<LogStream<'a>> {
        match s.split_once('#') {
            None => Some(LogStream {
                instance: s,
                exec: None,
            }),
            Some((instance, rest)) => {
                let n = rest.strip_prefix(&Self::EXEC[1..])?;
                // Digits only (no sign, no spaces), and the canonical form.
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.starts_with('0') {
                    return None;
                }
                Some(LogStream {
                    instance,
                    exec: Some(n.parse().ok()?),
                })
            }
        }
    }
}

impl fmt::Display for LogStream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.exec {
            None => f.write_str(self.instance),
            Some(n) => write!(f, "{}{}{n}", self.instance, Self::EXEC),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HASH: &str = "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

    #[test]
    fn workload_ids_round_trip_and_bad_ones_are_refused() {
        let id: WorkloadId = "acme/web-1".parse().unwrap();
        assert_eq!((id.tenant(), id.name()), ("acme", "web-1"));
        assert_eq!(id.to_string(), "acme/web-1");
        assert_eq!(WorkloadId::new("acme", "web-1").unwrap(), id);
        for bad in [
            "",
            "acme",
            "/web",
            "acme/",
            "acme/web/x",
            "Acme/web",
            "acme/Web",
            "acme/1web",
            "a b/web",
        ] {
            assert!(bad.parse::<WorkloadId>().is_err(), "{bad:?} was accepted");
        }
        assert!(WorkloadId::new("acme", &"w".repeat(64)).is_err());
    }

    #[test]
    fn workload_ids_order_as_their_strings() {
        // '-' sorts before '/': the string order, not (tenant, name).
        let a: WorkloadId = "a-x/c".parse().unwrap();
        let b: WorkloadId = "a/b".parse().unwrap();
        assert_eq!(a.cmp(&b), "a-x/c".cmp("a/b"));
    }

    #[test]
    fn serde_form_is_the_old_string() {
        // Encoded the old way: a plain string in JSON and in bincode.
        let old = serde_json::to_string("acme/web").unwrap();
        let id: WorkloadId = serde_json::from_str(&old).unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), old);
        let old_bin = bincode::serialize(&"acme/web".to_string()).unwrap();
        assert_eq!(bincode::serialize(&id).unwrap(), old_bin);
        assert_eq!(bincode::deserialize::<WorkloadId>(&old_bin).unwrap(), id);

        for s in [
            HASH,
            "image:web:1@000000000000002a",
            "image:ghcr.io/o/app:v1.2@7",
        ] {
            let old = bincode::serialize(&s.to_string()).unwrap();
            let p: Payload = bincode::deserialize(&old).unwrap();
            assert_eq!(bincode::serialize(&p).unwrap(), old);
            assert_eq!(
                serde_json::to_string(&p).unwrap(),
                serde_json::to_string(s).unwrap()
            );
            assert_eq!(p.to_string(), s);
        }
        assert!(serde_json::from_str::<WorkloadId>("\"nope\"").is_err());
        assert!(serde_json::from_str::<Payload>("\"image:web\"").is_err());
    }

    #[test]
    fn payloads_parse_and_bad_ones_are_refused() {
        let p: Payload = "image:ghcr.io/o/app:v1@0000002a".parse().unwrap();
        let i = p.image().unwrap();
        assert_eq!(
            (i.name.as_str(), i.tag.as_str(), i.version.as_str()),
            ("ghcr.io/o/app", "v1", "0000002a")
        );
        assert_eq!(i.name_tag(), "ghcr.io/o/app:v1");
        assert_eq!(
            ImageRef::pinned("ghcr.io/o/app:v1", "0000002a").unwrap(),
            *i
        );
        let m: Payload = HASH.parse().unwrap();
        assert_eq!(m.module().unwrap().hex(), &HASH[7..]);
        assert_eq!(
            ModuleRef::from_blake3(&[0xab; 32]).to_string(),
            format!("blake3:{}", "ab".repeat(32))
        );
        for bad in [
            "",
            "image:",
            "image:web",
            "image:web:1",
            "image:web:1@",
            "image:web@7",
            "image::1@7",
            "image:web:@7",
            "image:web:1@7@8",
            "blake3:abc",
            "blake3:",
            &HASH.to_uppercase(),
            &HASH.replace("blake3", "sha256"),
            &format!("{HASH}0"),
        ] {
            assert!(bad.parse::<Payload>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn log_streams_round_trip_and_only_canonical_exec_numbers_parse() {
        let exec = LogStream {
            instance: "0123456789ab",
            exec: Some(3),
        };
        assert_eq!(exec.to_string(), "0123456789ab#exec-3");
        assert_eq!(LogStream::parse("0123456789ab#exec-3"), Some(exec));
        assert_eq!(
            LogStream::parse("i").map(|l| (l.instance, l.exec)),
            Some(("i", None))
        );
        for bad in [
            "i#exec-",
            "i#exec-03",
            "i#exec-+3",
            "i#exec-3#exec-4",
            "i#x",
            "i#exec-99999999999",
        ] {
            assert_eq!(LogStream::parse(bad), None, "{bad}");
        }
    }
}
