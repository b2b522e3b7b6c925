//! The OpenAPI document checked into the repository matches the API.

#[test]
fn checked_in_openapi_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let generated = stratus_api::openapi_json();
    if std::env::var_os("STRATUS_UPDATE_OPENAPI").is_some() {
        std::fs::write(path, format!("{generated}\n")).expect("write docs/openapi.json");
    }
    let checked_in = std::fs::read_to_string(path).expect("docs/openapi.json exists");
    assert_eq!(
        checked_in.trim_end(),
        generated.trim_end(),
        "docs/openapi.json is stale: run `STRATUS_UPDATE_OPENAPI=1 cargo test -p stratus-api --test openapi`"
    );
}
