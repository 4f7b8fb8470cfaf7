/** Formats the server decodes. */
export const ACCEPTED_FORMATS = ['png', 'jpeg', 'webp'] as const;
export type AcceptedFormat = (typeof ACCEPTED_FORMATS)[number];

export type SniffResult =
  | { kind: 'accepted'; format: AcceptedFormat }
  | { kind: 'unsupported'; format: string }
  | { kind: 'unknown' };

const startsWith = (bytes: Uint8Array, signature: number[], offset = 0) =>
  bytes.length >= offset + signature.length && signature.every((byte, i) => bytes[offset + i] === byte);

const ascii = (text: string) => Array.from(text, (character) => character.charCodeAt(0));

/**
 * Identifies an image format from the file's first bytes, never from a name or a declared type.
 * Other image formats are recognised so that they can be rejected as unsupported (415) rather than
 * as corrupt (400); SVG in particular is never rendered.
 */
export function sniffImageFormat(bytes: Uint8Array): SniffResult {
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return { kind: 'accepted', format: 'png' };
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return { kind: 'accepted', format: 'jpeg' };
  if (startsWith(bytes, ascii('RIFF')) && startsWith(bytes, ascii('WEBP'), 8)) return { kind: 'accepted', format: 'webp' };

  if (startsWith(bytes, ascii('GIF87a')) || startsWith(bytes, ascii('GIF89a'))) return { kind: 'unsupported', format: 'gif' };
  if (startsWith(bytes, [0x49, 0x49, 0x2a, 0x00]) || startsWith(bytes, [0x4d, 0x4d, 0x00, 0x2a])) {
    return { kind: 'unsupported', format: 'tiff' };
  }
  if (startsWith(bytes, ascii('BM'))) return { kind: 'unsupported', format: 'bmp' };
  if (startsWith(bytes, [0x00, 0x00, 0x01, 0x00])) return { kind: 'unsupported', format: 'ico' };
  if (startsWith(bytes, ascii('ftyp'), 4)) return { kind: 'unsupported', format: 'heif/avif' };
  if (startsWith(bytes, [0xff, 0x0a]) || startsWith(bytes, [0x00, 0x00, 0x00, 0x0c, 0x4a, 0x58, 0x4c, 0x20])) {
    return { kind: 'unsupported', format: 'jxl' };
  }
  if (looksLikeSvg(bytes)) return { kind: 'unsupported', format: 'svg' };
  return { kind: 'unknown' };
}

function looksLikeSvg(bytes: Uint8Array): boolean {
  const head = Buffer.from(bytes.subarray(0, 1024)).toString('utf8').replace(/^\uFEFF/, '').trimStart().toLowerCase();
  if (!head.startsWith('<')) return false;
  return head.startsWith('<svg') || ((head.startsWith('<?xml') || head.startsWith('<!doctype') || head.startsWith('<!--')) && head.includes('<svg'));
}
