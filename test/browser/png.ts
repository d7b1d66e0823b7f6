// A PNG's integrity, checked byte for byte without decoding it: the
// signature, IHDR first and IEND last, and every chunk's CRC-32 (computed
// here in plain JavaScript). A screenshot that passes is exactly what the
// encoder wrote: used on screenshots that travel from the host's Chromium to
// a lab guest (test/e2e/status-page.lab.test.ts), where nothing should
// depend on the guest's SIMD code (test/lab/README.md, "Hosts with AVX-512").

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

const CRC_TABLE = ((): Uint32Array => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export type PngInfo = { width: number; height: number; chunks: number; idatBytes: number };

/** Checks a PNG's structure and every chunk's CRC; throws saying what is wrong, or returns its size. */
export function checkPng(png: Uint8Array): PngInfo {
  if (png.length < 8 || SIGNATURE.some((b, i) => png[i] !== b)) throw new Error('png: no PNG signature');
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  let at = 8;
  let chunks = 0;
  let idatBytes = 0;
  let size: { width: number; height: number } | undefined;
  for (;;) {
    if (at + 12 > png.length) throw new Error(`png: truncated at byte ${at} (no IEND)`);
    const length = view.getUint32(at);
    const type = String.fromCharCode(...png.subarray(at + 4, at + 8));
    const end = at + 8 + length;
    if (!/^[A-Za-z]{4}$/.test(type)) throw new Error(`png: bad chunk type at byte ${at}`);
    if (end + 4 > png.length) throw new Error(`png: chunk ${type} at byte ${at} runs past the end`);
    const want = view.getUint32(end);
    const got = crc32(png, at + 4, end);
    if (want !== got) throw new Error(`png: chunk ${type} at byte ${at}: CRC ${got.toString(16)}, the file says ${want.toString(16)}`);
    if (chunks === 0) {
      if (type !== 'IHDR' || length !== 13) throw new Error('png: the first chunk is not IHDR');
      size = { width: view.getUint32(at + 8), height: view.getUint32(at + 12) };
    }
    chunks++;
    if (type === 'IDAT') idatBytes += length;
    at = end + 4;
    if (type === 'IEND') break;
  }
  if (at !== png.length) throw new Error(`png: ${png.length - at} bytes after IEND`);
  if (size === undefined || size.width === 0 || size.height === 0 || idatBytes === 0) throw new Error('png: no image');
  return { ...size, chunks, idatBytes };
}
