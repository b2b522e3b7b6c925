//! A tenant's workload spec, as YAML and as TOML: parsing and validation
//! must refuse, never panic (issue 13).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = stratus_spec::parse(s, stratus_spec::Format::Yaml);
        let _ = stratus_spec::parse(s, stratus_spec::Format::Toml);
    }
});
