//! A loopback link to the test server that delays each direction (`pgmi_tests::latency`),
//! for trying a deploy by hand as if the server were far away:
//! `latency-link [DELAY_MS]` prints the port, then forwards until killed.

fn main() {
    let delay: u64 = std::env::args()
        .nth(1)
        .map_or(5, |a| a.parse().expect("DELAY_MS"));
    let link = pgmi_tests::latency::Link::start(std::time::Duration::from_millis(delay));
    println!("{}", link.port);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
