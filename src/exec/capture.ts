/**
 * Output capture that is capped *while reading*: a command that prints a
 * gigabyte costs the agent at most `max` bytes of memory per stream.
 */
export class CappedBuffer {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  private dropped = 0;

  constructor(private readonly max: number) {}

  push(chunk: Buffer): void {
    const room = this.max - this.kept;
    if (room <= 0) {
      this.dropped += chunk.length;
      return;
    }
    const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
    // Copy a slice, so the kept bytes do not pin a large chunk's whole backing buffer.
    this.chunks.push(part === chunk ? chunk : Buffer.from(part));
    this.kept += part.length;
    this.dropped += chunk.length - part.length;
  }

  /** UTF-8 text, invalid bytes replaced, at most `max` bytes once encoded again. */
  result(): { text: string; truncated: boolean } {
    return decodeCapped(Buffer.concat(this.chunks, this.kept), this.max, this.dropped > 0);
  }
}

export function decodeCapped(
  bytes: Buffer,
  max: number,
  alreadyTruncated: boolean,
): { text: string; truncated: boolean } {
  let text = bytes.toString('utf8');
  let truncated = alreadyTruncated;
  // A replacement character is 3 bytes where the invalid byte was 1, and a cut may split a character:
  // re-measure, and cut at a character boundary so the contract's byte cap holds for the text we send.
  if (Buffer.byteLength(text, 'utf8') > max) {
    text = cutToBytes(text, max);
    truncated = true;
  } else if (alreadyTruncated) {
    // Drop a replacement char made only by cutting a multi-byte character in half.
    text = text.replace(/\uFFFD$/, '');
  }
  return { text, truncated };
}

export function cutToBytes(text: string, max: number): string {
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= max) return text;
  let end = max;
  // Step back over UTF-8 continuation bytes (10xxxxxx) to a character start.
  while (end > 0 && ((buf[end] ?? 0) & 0xc0) === 0x80) end--;
  return buf.subarray(0, end).toString('utf8');
}
