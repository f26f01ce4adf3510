"""Just enough of the Kafka wire format, by hand, for tests that must send what no client
library would: record batches built byte by byte (a decompression bomb), raw Produce and
ListOffsets requests; and `call`, any request at any version through kafka-python's codec."""

import socket
import struct
import zlib

_CRC32C_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C_TABLE.append(_c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def zigzag_varint(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def gzip_bomb_batch(inflated_bytes: int, timestamp_ms: int) -> bytes:
    """A v2 record batch, gzip-compressed, holding one record whose value is
    `inflated_bytes` zeros: it inflates about 1000x."""
    value_prefix = (b"\x00" + zigzag_varint(0) + zigzag_varint(0) + zigzag_varint(-1)
                    + zigzag_varint(inflated_bytes))
    body_len = len(value_prefix) + inflated_bytes + 1  # + headers count
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip wrapper
    out = [comp.compress(zigzag_varint(body_len) + value_prefix)]
    chunk = b"\x00" * (1 << 20)
    left = inflated_bytes
    while left:
        n = min(left, len(chunk))
        out.append(comp.compress(chunk[:n]))
        left -= n
    out.append(comp.compress(zigzag_varint(0)))
    out.append(comp.flush())
    records = b"".join(out)
    # attributes (gzip) .. records count, then the compressed records: the CRC covers it.
    after_crc = (struct.pack(">hiqqqhii", 1, 0, timestamp_ms, timestamp_ms, -1, -1, -1, 1)
                 + records)
    crc = crc32c(after_crc)
    batch_len = 4 + 1 + 4 + len(after_crc)  # leader epoch, magic, crc, rest
    return struct.pack(">qiibI", 0, batch_len, -1, 2, crc) + after_crc


def kstr(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def request(api_key, version, correlation_id, body, client_id="raw"):
    payload = struct.pack(">hhi", api_key, version, correlation_id) + kstr(client_id) + body
    return struct.pack(">i", len(payload)) + payload


def read_response(sock) -> bytes:
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf
    size = struct.unpack(">i", exact(4))[0]
    return exact(size)


def produce_v7(port, topic, partition, batch, timeout=30.0) -> int:
    """Produce one record set with acks=all; returns the partition's error code."""
    body = (struct.pack(">hhi", -1, -1, 30000) + struct.pack(">i", 1) + kstr(topic)
            + struct.pack(">i", 1) + struct.pack(">i", partition)
            + struct.pack(">i", len(batch)) + batch)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request(0, 7, 1, body))
        resp = read_response(s)
    # correlation id, topics count, name, partitions count, index, error code
    pos = 4 + 4
    name_len = struct.unpack_from(">h", resp, pos)[0]
    pos += 2 + name_len + 4 + 4
    return struct.unpack_from(">h", resp, pos)[0]


def list_offsets_by_time_v4(port, topic, partition, timestamp_ms, timeout=60.0):
    """ListOffsets v4 for one timestamp: (error, timestamp, offset)."""
    body = (struct.pack(">ib", -1, 0) + struct.pack(">i", 1) + kstr(topic)
            + struct.pack(">i", 1) + struct.pack(">iiq", partition, -1, timestamp_ms))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request(2, 4, 2, body))
        resp = read_response(s)
    # correlation, throttle, topics count, name, partitions count, index, error, ts, offset
    pos = 4 + 4 + 4
    name_len = struct.unpack_from(">h", resp, pos)[0]
    pos += 2 + name_len + 4 + 4
    return struct.unpack_from(">hqq", resp, pos)


def record_batch(records, base_timestamp=None, codec=0) -> bytes:
    """An uncompressed v2 record batch (base offset 0, no producer id) of `records`, a list
    of (key, value, timestamp_ms); a None key or value is null."""
    def varbytes(b):
        return zigzag_varint(-1) if b is None else zigzag_varint(len(b)) + b

    base = records[0][2] if base_timestamp is None else base_timestamp
    body = b""
    for i, (key, value, ts) in enumerate(records):
        r = (b"\x00" + zigzag_varint(ts - base) + zigzag_varint(i) + varbytes(key)
             + varbytes(value) + zigzag_varint(0))
        body += zigzag_varint(len(r)) + r
    max_ts = max(ts for _, _, ts in records)
    after_crc = (struct.pack(">hiqqqhii", codec, len(records) - 1, base, max_ts, -1, -1, -1,
                             len(records)) + body)
    crc = crc32c(after_crc)
    return struct.pack(">qiibI", 0, 4 + 1 + 4 + len(after_crc), -1, 2, crc) + after_crc


def _nullable_str(resp, pos):
    n = struct.unpack_from(">h", resp, pos)[0]
    pos += 2
    if n < 0:
        return None, pos
    return resp[pos:pos + n].decode(), pos + n


def produce_v8(port, topic, partition, batch, timeout=30.0):
    """Produce v8 (KIP-467's record errors, not yet flexible) of one record set with
    acks=all: returns (error_code, base_offset, [(batch_index, message)], error_message)."""
    body = (struct.pack(">hhi", -1, -1, 30000) + struct.pack(">i", 1) + kstr(topic)
            + struct.pack(">i", 1) + struct.pack(">i", partition)
            + struct.pack(">i", len(batch)) + batch)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request(0, 8, 1, body))
        resp = read_response(s)
    pos = 4 + 4  # correlation id, topics count
    name_len = struct.unpack_from(">h", resp, pos)[0]
    pos += 2 + name_len + 4  # name, partitions count
    _index, error, base_offset, _append_time, _log_start, n = struct.unpack_from(">ihqqqi", resp, pos)
    pos += 4 + 2 + 8 + 8 + 8 + 4
    record_errors = []
    for _ in range(n):
        batch_index = struct.unpack_from(">i", resp, pos)[0]
        message, pos = _nullable_str(resp, pos + 4)
        record_errors.append((batch_index, message))
    error_message, pos = _nullable_str(resp, pos)
    return error, base_offset, record_errors, error_message


def segment_batches(partition_dir):
    """(base_offset, attributes, record_count) of every batch stored in a partition's
    segment files, in offset order: what is on disk, not what a fetch re-encodes."""
    import pathlib
    out = []
    for seg in sorted(pathlib.Path(partition_dir).glob("*.log")):
        data = seg.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            base_offset, length = struct.unpack_from(">qi", data, pos)
            if length <= 0:
                break
            attributes = struct.unpack_from(">h", data, pos + 21)[0]
            count = struct.unpack_from(">i", data, pos + 57)[0]
            out.append((base_offset, attributes, count))
            pos += 12 + length
    return out


def call(port, request, version, correlation_id=1, timeout=30.0, sock=None):
    """Send one request built with kafka-python's protocol classes (generated from Kafka's
    own JSON schemas) at exactly `version`, and decode the response at that version. For
    tests that need a version, or a field, that no client library would pick by itself
    (Produce v13 by topic id, Fetch v18, ListOffsets v10 and v11 specials). With `sock`, uses that
    connection and leaves it open."""
    request.with_header(correlation_id=correlation_id, client_id="raw")
    frame = bytes(request.encode(version=version, header=True, framed=True))
    response_class = _response_class(request)

    def exchange(s):
        s.sendall(frame)
        return response_class.decode(read_response(s), version=version, header=True)

    if sock is not None:
        return exchange(sock)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        return exchange(s)


def _response_class(request):
    import importlib
    module = importlib.import_module(type(request).__module__)
    return getattr(module, type(request).__name__.replace("Request", "Response"))


def values_batch(values, base_timestamp_ms=1_700_000_000_000):
    """An uncompressed v2 record batch holding `values` (bytes), one record each, with
    timestamps base, base+1, ..."""
    from kafka.record.default_records import DefaultRecordBatchBuilder
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                  producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                  batch_size=1 << 20)
    for i, v in enumerate(values):
        b.append(i, timestamp=base_timestamp_ms + i, key=None, value=v, headers=[])
    return bytes(b.build())


def batch_values(records):
    """The values of every record in a record set (as a Fetch returns it), in order, with
    their offsets: [(offset, value), ...]."""
    from kafka.record import MemoryRecords
    out = []
    mr = MemoryRecords(bytes(records))
    while True:
        batch = mr.next_batch()
        if batch is None:
            return out
        for r in batch:
            out.append((r.offset, r.value))
