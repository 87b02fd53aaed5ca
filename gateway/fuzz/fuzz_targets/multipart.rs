//! Feeds arbitrary bytes as a visitor's multipart upload body through the
//! upload handler's own reading of it (`api::files::read_upload`): multer's
//! parsing, the `batch_id` and `client_id` fields, the file part streamed
//! in chunks through an `Intake` (size limit, type sniffing, denylist,
//! `DisplayName::for_content`) into a store that keeps nothing. Nothing
//! may panic; a refusal is a 4xx; an accepted file is within the limit,
//! fully written, of an allowed type, and named without path, hidden or
//! reserved characters or a dangerous extension. See
//! `frontdesk::api::fuzzing`.
//!
//! Input: the first byte's low bit says whether the content type is the
//! input's first line (else `multipart/form-data; boundary=XyZ`); the
//! second byte sets the chunk size (1-256 bytes), the third the file limit
//! (1-4081 bytes, in steps of 16); the rest is the body.
//!
//! Run for a bounded time (stable toolchain, see `scripts/fuzz`):
//! `scripts/fuzz 60 multipart`

#![no_main]

use frontdesk::api::fuzzing::upload;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [flags, chunk, limit, rest @ ..] = data else {
        return;
    };
    let (content_type, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(end) if flags & 1 == 1 => (String::from_utf8_lossy(&rest[..end]), &rest[end + 1..]),
        _ => ("multipart/form-data; boundary=XyZ".into(), rest),
    };
    let chunks = body
        .chunks(usize::from(*chunk) + 1)
        .map(|c| c.to_vec().into())
        .collect();
    let limit = 1 + u64::from(*limit) * 16;
    if let Err(broken) = upload(&content_type, chunks, limit) {
        panic!("{broken}");
    }
});
