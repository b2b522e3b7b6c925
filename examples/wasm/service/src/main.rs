//! A long-running service without HTTP. Forever: every interval (first
//! argument, in ms; default 1000) it appends "tick N" to /output/ticks.log and
//! prints the same line. It never exits. Without a writable /output it warns
//! on stderr and only prints.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::Duration;

fn main() {
    let interval_ms: u64 = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(1000);
    let mut log = match OpenOptions::new()
        .create(true)
        .append(true)
        .open("/output/ticks.log")
    {
        Ok(file) => Some(file),
        Err(e) => {
            eprintln!("service: cannot open /output/ticks.log ({e}), printing only");
            None
        }
    };
    let mut tick: u64 = 0;
    loop {
        tick += 1;
        let line = format!("tick {tick}\n");
        if let Some(file) = log.as_mut() {
            if let Err(e) = file.write_all(line.as_bytes()) {
                eprintln!("service: write failed ({e}), printing only");
                log = None;
            }
        }
        print!("{line}");
        let _ = std::io::stdout().flush();
        std::thread::sleep(Duration::from_millis(interval_ms));
    }
}
