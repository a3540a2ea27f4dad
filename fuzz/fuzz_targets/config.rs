//! rvsd's configuration reader: any text is a configuration or a list of
//! errors naming their keys, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = rvs::config::Config::from_toml_str(text);
    }
});
