//! ipvsadm's grammar and rvsd's engine: any command line (words split on
//! NUL) is executed against a table, and any text is read as `-R` input.
//! Every line gets ipvsadm's answer or error; nothing panics.
#![no_main]

use std::sync::Arc;

use arc_swap::ArcSwap;
use libfuzzer_sys::fuzz_target;
use rvs::ctl::engine::Engine;
use rvs::ipvs::proto::Timeouts;
use rvs::ipvs::ServiceSet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut e = Engine::new(
        1,
        Arc::new(ArcSwap::from_pointee(ServiceSet::default())),
        Arc::new(ArcSwap::from_pointee(Timeouts::default())),
    );
    // A table to act on.
    for l in [
        "-A -t 10.0.0.1:80 -s rr",
        "-a -t 10.0.0.1:80 -r 10.1.1.1:80 -m",
    ] {
        let args: Vec<String> = l.split(' ').map(String::from).collect();
        e.execute("ipvsadm", &args, None);
    }
    let (line, input) = text.split_once('\n').unwrap_or((text, ""));
    let args: Vec<String> = line.split('\0').map(String::from).collect();
    e.execute("ipvsadm", &args, Some(input));
    e.execute("ipvsadm", &["-R".to_string()], Some(text));
    e.execute("ipvsadm", &["-Sn".to_string()], None);
});
