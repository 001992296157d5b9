/**
 * Inspects an XLSX (a zip) before exceljs is allowed to touch it. From the central directory: refuse
 * macro workbooks (VBA project, Excel 4 macro sheets, macroEnabled content types), too many entries,
 * a total declared uncompressed size over the limit, and entries compressed suspiciously well. Then it
 * checks that the entries tile the file (no overlaps, nothing hidden between them — exceljs reads the
 * local headers in sequence, yauzl the central directory, and both must see the same entries) and
 * finally inflates every entry once with yauzl's size validation, counting bytes, so a header that lies
 * about its size is caught while inflating instead of being trusted.
 */
import yauzl, { type Entry, type ZipFile } from 'yauzl';
import { MacroFile, UnsupportedFile, ZipBomb } from './import-errors.ts';
import type { ImportLimits } from './limits.ts';

type GuardLimits = Pick<ImportLimits, 'maxUnzippedBytes' | 'maxZipEntries' | 'maxCompressionRatio' | 'ratioFloorBytes'>;

const DATA_DESCRIPTOR_FLAG = 0x0008;
/** data descriptor lengths: crc + sizes (32- or 64-bit), with or without its optional signature */
const DESCRIPTOR_LENGTHS = new Set([12, 16, 20, 24]);
const MAX_CONTENT_TYPES_BYTES = 1024 * 1024;

function macroIn(name: string): string | undefined {
  const lower = name.toLowerCase();
  if (lower.endsWith('vbaproject.bin')) return name;
  if (lower.startsWith('xl/macrosheets/')) return name;
  return undefined;
}

async function openZip(bytes: Buffer): Promise<ZipFile> {
  try {
    return await yauzl.fromBufferPromise(bytes, { lazyEntries: true, autoClose: false, validateEntrySizes: true, strictFileNames: false });
  } catch (err) {
    throw new UnsupportedFile(`the zip structure is damaged (${(err as Error).message})`);
  }
}

async function listEntries(zip: ZipFile, limits: GuardLimits): Promise<Entry[]> {
  if (zip.entryCount > limits.maxZipEntries) throw new ZipBomb(`${zip.entryCount} zip entries (at most ${limits.maxZipEntries})`);
  const entries: Entry[] = [];
  let declared = 0;
  try {
    for await (const entry of zip.eachEntry()) {
      const macro = macroIn(entry.fileName);
      if (macro) throw new MacroFile(macro);
      if (entry.isEncrypted()) throw new UnsupportedFile('the zip has encrypted entries');
      if (entry.compressionMethod !== 0 && entry.compressionMethod !== 8) {
        throw new UnsupportedFile(`zip entry ${entry.fileName} uses compression method ${entry.compressionMethod}`);
      }
      declared += entry.uncompressedSize;
      if (declared > limits.maxUnzippedBytes) throw new ZipBomb(`it would inflate to more than ${limits.maxUnzippedBytes} bytes`);
      const ratio = entry.uncompressedSize / Math.max(entry.compressedSize, 1);
      if (entry.uncompressedSize > limits.ratioFloorBytes && ratio > limits.maxCompressionRatio) {
        throw new ZipBomb(`entry ${entry.fileName} is compressed ${Math.round(ratio)}:1 (at most ${limits.maxCompressionRatio}:1)`);
      }
      entries.push(entry);
    }
  } catch (err) {
    if (err instanceof ZipBomb || err instanceof MacroFile || err instanceof UnsupportedFile) throw err;
    throw new UnsupportedFile(`the zip directory is damaged (${(err as Error).message})`);
  }
  return entries;
}

/** Entries must follow each other from offset 0 to the central directory: no overlap, no hidden bytes. */
async function assertEntriesTile(zip: ZipFile, entries: readonly Entry[], centralDirectoryOffset: number): Promise<void> {
  const spans = await Promise.all(entries.map(async (entry) => {
    const { fileDataStart } = await zip.readLocalFileHeaderPromise(entry, { minimal: true });
    return { entry, start: entry.relativeOffsetOfLocalHeader, dataEnd: fileDataStart + entry.compressedSize };
  }));
  spans.sort((a, b) => a.start - b.start);
  let cursor = 0;
  let slackAllowed = false;
  for (const span of [...spans, { entry: undefined, start: centralDirectoryOffset, dataEnd: centralDirectoryOffset }]) {
    const gap = span.start - cursor;
    if (gap < 0) throw new ZipBomb(`zip entries overlap${span.entry ? ` at ${span.entry.fileName}` : ''}`);
    if (gap > 0 && !(slackAllowed && DESCRIPTOR_LENGTHS.has(gap))) {
      throw new UnsupportedFile('the zip holds data its directory does not list');
    }
    cursor = span.dataEnd;
    slackAllowed = span.entry ? (span.entry.generalPurposeBitFlag & DATA_DESCRIPTOR_FLAG) !== 0 : false;
  }
}

/** Inflates every entry with size validation and a running byte count; returns [Content_Types].xml. */
async function inflateAll(zip: ZipFile, entries: readonly Entry[], limits: GuardLimits): Promise<string | undefined> {
  let total = 0;
  let contentTypes: string | undefined;
  for (const entry of entries) {
    const keep = entry.fileName === '[Content_Types].xml';
    const chunks: Buffer[] = [];
    let stream;
    try {
      stream = await zip.openReadStreamPromise(entry);
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > limits.maxUnzippedBytes) throw new ZipBomb(`it inflates to more than ${limits.maxUnzippedBytes} bytes`);
        if (keep && total <= MAX_CONTENT_TYPES_BYTES) chunks.push(chunk);
      }
    } catch (err) {
      stream?.destroy();
      if (err instanceof ZipBomb) throw err;
      const message = (err as Error).message;
      if (/too many bytes|bytes in the stream/.test(message)) throw new ZipBomb(`entry ${entry.fileName} inflates to another size than it declares`);
      throw new UnsupportedFile(`zip entry ${entry.fileName} is damaged (${message})`);
    }
    if (keep) contentTypes = Buffer.concat(chunks).toString('utf8');
  }
  return contentTypes;
}

/** Throws unless `bytes` is a plain, reasonably sized XLSX workbook that is safe to hand to exceljs. */
export async function assertSafeXlsx(bytes: Buffer, limits: GuardLimits): Promise<void> {
  const zip = await openZip(bytes);
  try {
    const centralDirectoryOffset = zip.readEntryCursor as unknown as number;
    const entries = await listEntries(zip, limits);
    if (!entries.some((e) => e.fileName === 'xl/workbook.xml')) throw new UnsupportedFile('the zip archive is not an XLSX workbook');
    await assertEntriesTile(zip, entries, centralDirectoryOffset);
    const contentTypes = await inflateAll(zip, entries, limits);
    if (contentTypes !== undefined && /macroEnabled|vbaProject/i.test(contentTypes)) {
      throw new MacroFile('[Content_Types].xml declares macro-enabled content');
    }
  } finally {
    zip.close();
  }
}
