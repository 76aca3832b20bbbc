//! `pgmi`: the same program as `pgmi-upload`, under the original's name.

#![forbid(unsafe_code)]

fn main() {
    pgmi_upload::main()
}
