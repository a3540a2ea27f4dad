//! The management socket's frame decoder, as rvsd reads a client's
//! request: any bytes are a request or an error, never a panic or an
//! allocation past the frame limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs::ctl::frame::{read_frame, Request};

fuzz_target!(|data: &[u8]| {
    let mut r = data;
    let _ = read_frame::<Request>(&mut r);
});
