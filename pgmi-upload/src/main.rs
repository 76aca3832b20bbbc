//! `pgmi-upload`: parse, run, exit. The same program is also built as `pgmi`
//! (`src/bin/pgmi.rs`), so scripts written for the original run unchanged.

#![forbid(unsafe_code)]

fn main() {
    pgmi_upload::main()
}
