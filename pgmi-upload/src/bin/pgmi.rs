//! `pgmi`: the same program as `pgmi-upload`, under the original's name.

fn main() {
    pgmi_upload::main()
}
