//! Prints "Hello, <first argument>!" ("Hello, world!" without one) and exits 0.

fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "world".to_string());
    println!("Hello, {name}!");
}
