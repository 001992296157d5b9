/**
 * Decides what an uploaded file is from its bytes, never from its name or the declared content type:
 * a ZIP (local file header magic) is treated as XLSX, valid UTF-8 text without NUL bytes as CSV, and
 * anything else — PDF, images, legacy .xls (OLE), random binary — is refused with 415 unsupported_file.
 */
import { UnsupportedFile } from './import-errors.ts';

export type FileFormat = 'csv' | 'xlsx';

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];

/** Known binary formats, named in the refusal so the caller knows what they sent. */
const KNOWN_BINARY: readonly { magic: readonly number[]; name: string }[] = [
  { magic: [0xd0, 0xcf, 0x11, 0xe0], name: 'a legacy Office (.xls/OLE) file' },
  { magic: [0x25, 0x50, 0x44, 0x46, 0x2d], name: 'a PDF document' },
  { magic: [0x89, 0x50, 0x4e, 0x47], name: 'a PNG image' },
  { magic: [0xff, 0xd8, 0xff], name: 'a JPEG image' },
  { magic: [0x47, 0x49, 0x46, 0x38], name: 'a GIF image' },
  { magic: [0x1f, 0x8b], name: 'a gzip archive' },
  { magic: [0x50, 0x4b, 0x05, 0x06], name: 'an empty zip archive' },
];

function startsWith(bytes: Uint8Array, magic: readonly number[]): boolean {
  return bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b);
}

/** Returns the file's format or throws UnsupportedFile. */
export function sniffFormat(bytes: Uint8Array): FileFormat {
  if (startsWith(bytes, ZIP_MAGIC)) return 'xlsx';
  const known = KNOWN_BINARY.find((k) => startsWith(bytes, k.magic));
  if (known) throw new UnsupportedFile(`the file is ${known.name}`);
  if (bytes.includes(0)) throw new UnsupportedFile('the file is binary (it contains NUL bytes)');
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new UnsupportedFile('the file is neither an XLSX workbook nor UTF-8 text');
  }
  return 'csv';
}
