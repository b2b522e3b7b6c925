//! Large, valid WebAssembly modules for tests: a small real program with a
//! custom section of pseudo-random bytes appended (custom sections may come
//! anywhere and do not change what the program does). Pseudo-random, so the
//! bytes neither compress nor dedupe: the whole size goes through the data
//! path. Also included by the CLI's tests (`#[path]`).

/// `module` with a custom section of `len` pseudo-random bytes appended.
pub fn padded_module(module: &[u8], len: usize) -> Vec<u8> {
    let name = b"stratus-test-padding";
    let mut payload = Vec::with_capacity(len + name.len() + 9);
    payload.push(name.len() as u8);
    payload.extend_from_slice(name);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    while payload.len() < len + name.len() + 1 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        payload.extend_from_slice(&x.to_le_bytes());
    }
    let mut out = Vec::with_capacity(module.len() + payload.len() + 6);
    out.extend_from_slice(module);
    out.push(0);
    let mut n = payload.len() as u64;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out.extend_from_slice(&payload);
    out
}
