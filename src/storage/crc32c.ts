// CRC32C (Castagnoli), the checksum of every record the stores write. Castagnoli rather than the
// zlib CRC32 because it detects more error patterns at the record sizes we use and because it is
// the usual choice for storage formats (iSCSI, ext4, LevelDB), which makes files checkable by
// other tools.
//
// Table-driven, slicing-by-8: eight 256-entry tables let the loop fold eight input bytes per
// step with independent table lookups instead of one dependent lookup per byte.

/** The reflected Castagnoli polynomial. */
const POLYNOMIAL_REFLECTED = 0x82f63b78;

/** TABLES[k * 256 + b] is the CRC register after byte b followed by k zero bytes. Signed 32-bit
 * so that V8 keeps the loaded values as small integers instead of boxing those >= 2^31. */
const TABLES = buildTables();

function buildTables(): Int32Array {
  const tables = new Int32Array(8 * 256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ POLYNOMIAL_REFLECTED : crc >>> 1;
    tables[byte] = crc;
  }
  for (let byte = 0; byte < 256; byte++) {
    let crc = tables[byte]!;
    for (let k = 1; k < 8; k++) {
      crc = tables[crc & 0xff]! ^ (crc >>> 8);
      tables[k * 256 + byte] = crc;
    }
  }
  return tables;
}

const T0 = TABLES.subarray(0, 256);
const T1 = TABLES.subarray(256, 512);
const T2 = TABLES.subarray(512, 768);
const T3 = TABLES.subarray(768, 1024);
const T4 = TABLES.subarray(1024, 1280);
const T5 = TABLES.subarray(1280, 1536);
const T6 = TABLES.subarray(1536, 1792);
const T7 = TABLES.subarray(1792, 2048);

/**
 * Extends a finished CRC32C value with more bytes: crc32cUpdate(crc32c(a), b) === crc32c(a ++ b).
 * Start from 0 for a fresh checksum. `start`/`end` select a byte range of `data` without copying.
 */
export function crc32cUpdate(crc: number, data: Uint8Array, start = 0, end = data.length): number {
  if (start < 0 || end > data.length || start > end) throw new RangeError(`crc32c: bad range [${start}, ${end}) of ${data.length} bytes`);
  let c = ~crc;
  let i = start;
  const fastEnd = end - 8;
  while (i <= fastEnd) {
    const lo = c ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24));
    const hi = data[i + 4]! | (data[i + 5]! << 8) | (data[i + 6]! << 16) | (data[i + 7]! << 24);
    c =
      T7[lo & 0xff]! ^
      T6[(lo >>> 8) & 0xff]! ^
      T5[(lo >>> 16) & 0xff]! ^
      T4[lo >>> 24]! ^
      T3[hi & 0xff]! ^
      T2[(hi >>> 8) & 0xff]! ^
      T1[(hi >>> 16) & 0xff]! ^
      T0[hi >>> 24]!;
    i += 8;
  }
  while (i < end) c = T0[(c ^ data[i++]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** The CRC32C of `data` (or of its byte range [start, end)), as an unsigned 32-bit integer. */
export function crc32c(data: Uint8Array, start = 0, end = data.length): number {
  return crc32cUpdate(0, data, start, end);
}
