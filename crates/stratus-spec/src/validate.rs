//! Validation of a [`WorkloadSpec`]: the rules serde cannot express, each
//! error naming its field.

use crate::*;

impl WorkloadSpec {
    /// Checks the rules serde cannot express.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errs = Vec::new();
        let mut err = |path: &str, message: String| {
            errs.push(FieldError {
                path: path.into(),
                message,
            })
        };
        if self.version != SPEC_VERSION {
            err(
                "version",
                format!(
                    "version {} is not supported; this build reads version {SPEC_VERSION}",
                    self.version
                ),
            );
        }
        if let Err(m) = stratus_types::validate_tenant_name(&self.name) {
            err("name", m.replace("tenant name", "workload name"));
        }
        if self.kind != WorkloadKind::Daemon && !(1..=10_000).contains(&self.count) {
            err(
                "count",
                format!("must be between 1 and 10000, got {}", self.count),
            );
        }
        match (&self.wasm, &self.image) {
            (Some(w), None) if w.module.trim().is_empty() => err(
                "wasm.module",
                "a path to a .wasm/.wat file or blake3:<hash> is required".into(),
            ),
            (None, None) => err(
                "wasm",
                "a workload runs either a `wasm` module or a container `image`; give one".into(),
            ),
            (Some(_), Some(_)) => err(
                "image",
                "a workload runs either a `wasm` module or a container `image`, not both".into(),
            ),
            _ => {}
        }
        if let Some(image) = &self.image {
            self.validate_image(image, &mut err);
        }
        self.validate_folders(&mut err);
        self.validate_resources(&mut err);
        for (i, a) in self.args.iter().enumerate() {
            if a.contains('\0') {
                err(&format!("args[{i}]"), "must not contain NUL".into());
            }
        }
        for (k, v) in &self.env {
            if v.contains('\0') {
                err(&format!("env.{k}"), "values must not contain NUL".into());
            }
        }
        for k in self.env.keys() {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                err(
                    &format!("env.{k}"),
                    "variable names are non-empty and contain neither '=' nor NUL".into(),
                );
            }
        }
        if self.update.max_parallel == 0 {
            err("update.max_parallel", "must be at least 1".into());
        }
        if self.restart.max_delay_ms < self.restart.delay_ms {
            err(
                "restart.max_delay_ms",
                "must not be smaller than restart.delay_ms".into(),
            );
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}

impl WorkloadSpec {
    /// Checks `input` and `output`: objects of the tenant, for WASM
    /// workloads only (containers keep data in `image.volumes`).
    fn validate_folders(&self, err: &mut impl FnMut(&str, String)) {
        let folders = [
            ("input", self.input.as_ref()),
            ("output", self.output.upload()),
        ];
        for (field, folder) in folders {
            let Some(f) = folder else { continue };
            if let Err(m) = validate_bucket(&f.bucket) {
                err(&format!("{field}.bucket"), m);
            }
            if let Err(m) = taskio::validate_prefix(&f.prefix) {
                err(&format!("{field}.prefix"), m);
            }
        }
        if self.image.is_some() {
            if self.input.is_some() {
                err("input", "`input` is for wasm workloads; a container reads objects through `image.volumes` with a `bucket`".into());
            }
            if self.output.enabled() {
                err("output", "`output` is for wasm workloads; a container keeps data in `image.volumes` with a `bucket`".into());
            }
        }
    }

    /// Checks a container image's ports, workdir, user and volumes.
    fn validate_image(&self, image: &ImageSource, err: &mut impl FnMut(&str, String)) {
        if image.name.trim().is_empty() {
            err("image.name", "the image's NAME[:TAG] is required".into());
        }
        check_ports(&image.ports, "", &mut *err);
        // Both are resolved inside the container's root, never the
        // node's: checked here so a bad one is refused at deploy.
        if let Some(w) = &image.workdir {
            if !w.starts_with('/') || w.contains('\0') || w.len() > 4096 {
                err(
                    "image.workdir",
                    format!("must be an absolute path in the container (at most 4096 bytes, no NUL), got {w:?}"),
                );
            }
        }
        if let Some(u) = &image.user {
            let ok = |c: char| c.is_ascii_alphanumeric() || "._-:".contains(c);
            if u.is_empty() || u.len() > 256 || !u.chars().all(ok) {
                err(
                    "image.user",
                    format!("must be `name`, `uid` or `uid:gid` (1-256 characters of a-z, A-Z, 0-9, '.', '_', '-', ':'), got {u:?}"),
                );
            }
        }
        for (i, v) in image.volumes.iter().enumerate() {
            if stratus_types::validate_tenant_name(&v.name).is_err() {
                err(
                    &format!("image.volumes[{i}].name"),
                    "use 1-63 characters of a-z, 0-9 and '-', starting with a letter".into(),
                );
            }
            if !v.path.starts_with('/') || v.path.split('/').any(|c| c == "..") || v.path == "/" {
                err(
                    &format!("image.volumes[{i}].path"),
                    format!(
                        "must be an absolute path below / without '..', got {:?}",
                        v.path
                    ),
                );
            }
            if let Some(b) = &v.bucket {
                if let Err(m) = validate_bucket(b) {
                    err(&format!("image.volumes[{i}].bucket"), m);
                }
            }
            if let Some(k) = &v.key {
                if v.bucket.is_none() {
                    err(
                        &format!("image.volumes[{i}].key"),
                        "a key needs a bucket".into(),
                    );
                }
                if k.is_empty()
                    || k.len() > MAX_VOLUME_KEY_LEN
                    || k.starts_with('/')
                    || k.contains('\0')
                {
                    err(
                        &format!("image.volumes[{i}].key"),
                        format!("must be 1-{MAX_VOLUME_KEY_LEN} bytes without NUL and not start with '/', got {k:?}"),
                    );
                }
            }
            if let Some(secs) = v.sync_secs {
                if secs == 0 || v.bucket.is_none() || v.read_only {
                    err(
                        &format!("image.volumes[{i}].sync_secs"),
                        "must be at least 1, on a volume with a bucket that is not read_only"
                            .into(),
                    );
                }
            }
        }
        let mut objects = std::collections::BTreeSet::new();
        for (i, v) in image.volumes.iter().enumerate() {
            if let Some(b) = &v.bucket {
                if !objects.insert((b.clone(), v.object_key(&self.name))) {
                    err(
                        &format!("image.volumes[{i}]"),
                        "two volumes are kept in the same object".into(),
                    );
                }
            }
        }
    }

    /// Checks `resources` and the `near` constraint.
    fn validate_resources(&self, err: &mut impl FnMut(&str, String)) {
        let r = &self.resources;
        if r.disk_mb > MAX_DISK_MB {
            err(
                "resources.disk_mb",
                format!("must be at most {MAX_DISK_MB} (1 TiB), got {}", r.disk_mb),
            );
        }
        if !(1..=256_000).contains(&r.cpu_millis) {
            err(
                "resources.cpu_millis",
                format!("must be between 1 and 256000, got {}", r.cpu_millis),
            );
        }
        if !(1..=65_536).contains(&r.memory_mb) {
            err("resources.memory_mb", format!("must be between 1 and 65536 (WASM memories are at most 4 GiB per instance), got {}", r.memory_mb));
        }
        if r.wall_time_secs == Some(0) {
            err("resources.wall_time_secs", "must be at least 1".into());
        }
        if r.cpu_secs == Some(0) {
            err("resources.cpu_secs", "must be at least 1".into());
        }
        if let Some(n) = &self.constraints.near {
            if !(-90.0..=90.0).contains(&n.latitude) {
                err(
                    "constraints.near.latitude",
                    format!("must be within [-90, 90], got {}", n.latitude),
                );
            }
            if !(-180.0..=180.0).contains(&n.longitude) {
                err(
                    "constraints.near.longitude",
                    format!("must be within [-180, 180], got {}", n.longitude),
                );
            }
            if !(n.within_km > 0.0 && n.within_km.is_finite()) {
                err(
                    "constraints.near.within_km",
                    format!("must be a positive distance, got {}", n.within_km),
                );
            }
        }
    }
}

/// Checks published ports of one protocol (`tag`: "" for TCP, "udp " for
/// UDP, as their paths say): container ports 1-65535, no host port twice.
pub(crate) fn check_ports(ports: &[PortSpec], tag: &str, err: &mut impl FnMut(&str, String)) {
    let mut seen = std::collections::BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        if p.container == 0 {
            err(
                &format!("image.ports[{tag}{i}].container"),
                "must be between 1 and 65535".into(),
            );
        }
        if p.host != 0 && !seen.insert(p.host) {
            err(
                &format!("image.ports[{tag}{i}].host"),
                format!("{tag}port {} is published twice", p.host),
            );
        }
    }
}
