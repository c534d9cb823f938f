#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| veltrix_fuzz::ndjson(data));
