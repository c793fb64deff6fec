//! SONiC's database_config.json: any text yields the database layout or an error, never a
//! panic; a layout found has the three databases the daemon needs.

#![no_main]

use libfuzzer_sys::fuzz_target;
use neighsyncd::sonic::dbconfig::DbLayout;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(layout) = DbLayout::from_sonic_json(text, "fuzz.json")
    {
        for db in [&layout.appl, &layout.config, &layout.state] {
            assert!(
                db.url.starts_with("redis://") || db.url.starts_with("unix://"),
                "{}",
                db.url
            );
        }
    }
});
