//! `weir_protocol::read_frame` over an in-memory stream that hands out the bytes in small
//! reads, then the request header parser on every frame read.
//!
//! Input: byte 0 = read size (1..=64 bytes per read), byte 1 = max frame size selector,
//! the rest = the byte stream a client sends (size-prefixed frames back to back).
//! Checks: never panics; a frame is returned only if its size prefix is within the cap, it
//! holds exactly the announced bytes, and no more is reserved than was sent plus one chunk.

#![no_main]

use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, ReadBuf};
use weir_protocol::{parse_request_header, read_frame, FrameError};

/// Hands out at most `step` bytes per read, like a slow socket.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.step.min(buf.remaining()).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        buf.put_slice(head);
        self.data = rest;
        Poll::Ready(Ok(()))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let step = (data[0] % 64) as usize + 1;
    let max = match data[1] % 4 {
        0 => 0,
        1 => 64,
        2 => 4096,
        _ => 100 * 1024 * 1024,
    };
    let stream = &data[2..];
    let mut reader = Trickle { data: stream, step };
    runtime().block_on(async {
        let mut consumed = 0usize;
        for _ in 0..1000 {
            match read_frame(&mut reader, max).await {
                Ok(Some(frame)) => {
                    let size =
                        i32::from_be_bytes(stream[consumed..consumed + 4].try_into().unwrap());
                    assert!(
                        size >= 0 && size as usize <= max,
                        "size {size} passed cap {max}"
                    );
                    assert_eq!(frame.len(), size as usize);
                    assert_eq!(
                        &frame[..],
                        &stream[consumed + 4..consumed + 4 + frame.len()]
                    );
                    assert!(
                        frame.capacity() <= frame.len() + 64 * 1024,
                        "reserved {} for a {}-byte frame",
                        frame.capacity(),
                        frame.len()
                    );
                    consumed += 4 + frame.len();
                    let mut body: Bytes = frame.freeze();
                    let _ = parse_request_header(&mut body, weir_broker::api::SUPPORTED_APIS);
                }
                Ok(None) => {
                    assert_eq!(
                        consumed,
                        stream.len(),
                        "clean end in the middle of the stream"
                    );
                    break;
                }
                Err(FrameError::Size { size, max: m }) => {
                    assert!(size < 0 || size as usize > m);
                    break;
                }
                Err(FrameError::Truncated) => break,
                Err(FrameError::Io(e)) => panic!("in-memory stream cannot fail: {e}"),
            }
        }
    });
});
