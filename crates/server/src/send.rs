//! Writing a response frame to the client: in-memory parts with `write_all`, segment-file
//! ranges with sendfile(2), so fetched records go from the page cache to the socket without
//! a copy through the broker (Kafka's `FileRecords.writeTo`, `transferTo`). A range whose
//! file has no descriptor (the simulated filesystem) is read and written instead.

use std::io;
use std::sync::atomic::Ordering;

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use weir_broker::api::{Frame, FramePart};
use weir_storage::FileSlice;

use crate::metrics::{COPIED_FILE_BYTES, SENDFILE_BYTES};

/// At most this much per sendfile call, so one large range does not hold the socket's
/// writer in the kernel for long and progress is counted as it goes.
const SENDFILE_CHUNK: u64 = 1 << 20;

/// Write `frame` whole, in order.
pub(crate) async fn write_frame(writer: &mut OwnedWriteHalf, frame: Frame) -> io::Result<()> {
    match frame {
        Frame::Whole(bytes) => writer.write_all(&bytes).await,
        Frame::Parts(parts) => {
            for part in parts {
                match part {
                    FramePart::Mem(bytes) => writer.write_all(&bytes).await?,
                    FramePart::File(slice) => send_file(writer, &slice).await?,
                }
            }
            Ok(())
        }
    }
}

async fn send_file(writer: &mut OwnedWriteHalf, slice: &FileSlice) -> io::Result<()> {
    let Some(fd) = slice.file.fd() else {
        let mut buf = Vec::with_capacity(slice.len);
        slice.read_into(&mut buf).map_err(io::Error::other)?;
        writer.write_all(&buf).await?;
        COPIED_FILE_BYTES.fetch_add(slice.len as u64, Ordering::Relaxed);
        return Ok(());
    };
    let stream: &TcpStream = writer.as_ref();
    let mut offset = slice.pos;
    let end = slice.pos + slice.len as u64;
    while offset < end {
        let count = (end - offset).min(SENDFILE_CHUNK) as usize;
        stream.writable().await?;
        let sent = stream.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(stream, fd, Some(&mut offset), count).map_err(io::Error::from)
        });
        match sent {
            // The file ended before the range did: a segment truncated under a fetch. The
            // frame's size was already promised, so the connection cannot go on.
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{} ended at {offset}, inside a fetched range ending at {end}",
                        slice.path.display()
                    ),
                ))
            }
            Ok(n) => {
                SENDFILE_BYTES.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
