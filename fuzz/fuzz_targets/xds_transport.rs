//! The ADS stream's decoder on any bytes, cut into frames anywhere (the
//! first byte picks the frame size): whole messages or an error, never a
//! panic, and never more read than was received.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use weft_proxy::xds::transport::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let mut d = Decoder::new(1 << 16);
    for frame in rest.chunks(cut.max(1) as usize) {
        d.push(Bytes::copy_from_slice(frame));
        loop {
            match d.next_message() {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(d.unread() <= rest.len());
    }
});
