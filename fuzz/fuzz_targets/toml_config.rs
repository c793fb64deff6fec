//! The TOML config file: any text yields a configuration or an error naming the problem,
//! never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match neighsyncd::config::Config::from_toml_str(text) {
            Ok(c) => assert!(c.batch_max >= 1),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
});
