//! Length-prefixed frames: a 4-byte big-endian size, then that many bytes.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a frame could not be read; every one of them ends the connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The size prefix is out of bounds: refused before anything is allocated.
    #[error("frame size {size} is negative or larger than socket.request.max.bytes {max}")]
    Size {
        /// The size the peer announced.
        size: i64,
        /// The limit in force (`socket.request.max.bytes`).
        max: usize,
    },
    /// End of stream after a size prefix or part of a body.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// The socket failed (reset, timeout from the OS, ...).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Read one frame body. `Ok(None)` on a clean end of stream between frames. The size
/// prefix is checked against `max_bytes` before anything is allocated, and the body is read
/// in chunks so a peer that announces a large frame and sends little never gets us to
/// reserve more than it actually sent (plus one chunk).
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_bytes: usize,
) -> Result<Option<BytesMut>, FrameError> {
    let Some(size) = read_frame_size(reader, max_bytes).await? else {
        return Ok(None);
    };
    let mut body = BytesMut::with_capacity(size.min(FRAME_CHUNK_BYTES));
    while body.len() < size {
        read_frame_chunk(reader, &mut body, size).await?;
    }
    Ok(Some(body))
}

/// Body bytes are read (and buffer space reserved) at most this many at a time.
pub const FRAME_CHUNK_BYTES: usize = 64 * 1024;

/// Read a frame's 4-byte size prefix and check it: `Ok(None)` on a clean end of stream.
pub async fn read_frame_size<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_bytes: usize,
) -> Result<Option<usize>, FrameError> {
    let mut size_buf = [0u8; 4];
    match reader.read(&mut size_buf[..1]).await? {
        0 => return Ok(None),
        _ => {
            if let Err(e) = reader.read_exact(&mut size_buf[1..]).await {
                return Err(eof_as_truncated(e));
            }
        }
    }
    let size = i32::from_be_bytes(size_buf);
    if size < 0 || size as usize > max_bytes {
        return Err(FrameError::Size {
            size: size as i64,
            max: max_bytes,
        });
    }
    Ok(Some(size as usize))
}

/// Read the next piece of a frame body of `size` bytes into `body` (at most
/// `FRAME_CHUNK_BYTES`, reserving only that); returns how many bytes arrived.
pub async fn read_frame_chunk<R: AsyncRead + Unpin>(
    reader: &mut R,
    body: &mut BytesMut,
    size: usize,
) -> Result<usize, FrameError> {
    let want = (size - body.len()).min(FRAME_CHUNK_BYTES);
    body.reserve(want);
    let n = (&mut *reader).take(want as u64).read_buf(body).await?;
    if n == 0 && want > 0 {
        return Err(FrameError::Truncated);
    }
    Ok(n)
}

fn eof_as_truncated(e: std::io::Error) -> FrameError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        FrameError::Truncated
    } else {
        FrameError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_frames_back_to_back() {
        let mut input: &[u8] = &[0, 0, 0, 2, 7, 8, 0, 0, 0, 0];
        let a = read_frame(&mut input, 100).await.unwrap().unwrap();
        assert_eq!(&a[..], &[7, 8]);
        let b = read_frame(&mut input, 100).await.unwrap().unwrap();
        assert!(b.is_empty());
        assert!(read_frame(&mut input, 100).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn rejects_oversized_and_negative_sizes_without_reading_the_body() {
        let mut input: &[u8] = &[0x7f, 0xff, 0xff, 0xff, 1, 2, 3];
        assert!(matches!(
            read_frame(&mut input, 100 * 1024 * 1024).await,
            Err(FrameError::Size { .. })
        ));
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xfe];
        assert!(matches!(
            read_frame(&mut input, 100).await,
            Err(FrameError::Size { .. })
        ));
    }

    #[tokio::test]
    async fn truncated_frames_are_errors() {
        let mut input: &[u8] = &[0, 0, 0, 100, 1, 2, 3];
        assert!(matches!(
            read_frame(&mut input, 1000).await,
            Err(FrameError::Truncated)
        ));
        let mut input: &[u8] = &[0, 0];
        assert!(matches!(
            read_frame(&mut input, 1000).await,
            Err(FrameError::Truncated)
        ));
    }
}
