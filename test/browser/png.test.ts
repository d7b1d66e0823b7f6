// PNG integrity without decoding: signature, chunk order, every CRC.
import { readFileSync } from 'node:fs';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { checkPng, crc32 } from './png.js';

const README_PNG = readFileSync('docs/images/status-page.png');

describe('checkPng', () => {
  it('accepts an intact PNG and reads its size', () => {
    const info = checkPng(README_PNG);
    expect(info.width).toBe(README_PNG.readUInt32BE(16));
    expect(info.height).toBe(README_PNG.readUInt32BE(20));
    expect(info.chunks).toBeGreaterThanOrEqual(3);
    expect(info.idatBytes).toBeGreaterThan(0);
  });

  it('finds one flipped bit anywhere in the image data', () => {
    for (const at of [40, Math.floor(README_PNG.length / 2), README_PNG.length - 20]) {
      const damaged = Buffer.from(README_PNG);
      damaged[at] = damaged[at]! ^ 0x10;
      expect(() => checkPng(damaged), `bit flipped at byte ${at}`).toThrow(/png:/);
    }
  });

  it('finds a truncated file, trailing bytes and a file that is no PNG', () => {
    expect(() => checkPng(README_PNG.subarray(0, README_PNG.length - 12))).toThrow(/truncated|past the end|no IEND/);
    expect(() => checkPng(Buffer.concat([README_PNG, Buffer.from([0])]))).toThrow(/after IEND/);
    expect(() => checkPng(Buffer.from('<html></html>'))).toThrow(/no PNG signature/);
  });

  it("computes CRC-32 as zlib does", () => {
    const bytes = Buffer.from('IEND and some more bytes \u00ff');
    expect(crc32(bytes)).toBe(zlibCrc32(bytes));
    expect(crc32(Buffer.alloc(0))).toBe(0);
  });
});
