//! CPU-bound work: counts the primes up to N (first argument, default
//! 100000) by trial division and prints "primes up to N: COUNT".

fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d <= n / d {
        if n % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

fn main() {
    let limit: u32 = match std::env::args().nth(1) {
        Some(arg) => match arg.parse() {
            Ok(limit) => limit,
            Err(e) => {
                eprintln!("cpu: bad limit {arg:?}: {e}");
                std::process::exit(2);
            }
        },
        None => 100_000,
    };
    let count = (2..=limit).filter(|&n| is_prime(n)).count();
    println!("primes up to {limit}: {count}");
}
