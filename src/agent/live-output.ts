/**
 * Live output of a running command on P/H/output/ID (not retained): lines as
 * they come, batched (at most one message per stream every 100 ms) and capped
 * like results (max_output bytes per stream, then a last `truncated` message).
 */
import type { OutputMessage } from '../core/formats.js';

export type { OutputMessage } from '../core/formats.js';

const FLUSH_MS = 100;

export class LiveOutput {
  private readonly pending = { stdout: '', stderr: '' };
  private readonly sent = { stdout: 0, stderr: 0 };
  private readonly capped = { stdout: false, stderr: false };
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly id: string,
    private readonly maxBytes: number,
    private readonly send: (msg: OutputMessage) => void,
  ) {}

  push(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    if (this.capped[stream]) return;
    this.pending[stream] += chunk.toString('utf8');
    // Never hold more than the cap: a gigabyte without a newline must not grow the agent.
    if (this.pending[stream].length > this.maxBytes - this.sent[stream])
      return this.flushStream(stream, true);
    this.timer ??= setTimeout(() => this.flush(false), FLUSH_MS);
  }

  /** Sends what is complete (all of it when `final`, the command having ended). */
  flush(final: boolean): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flushStream('stdout', final);
    this.flushStream('stderr', final);
    // A partial line stays pending; it goes out with the next newline or at the end.
    if (!final && (this.pending.stdout !== '' || this.pending.stderr !== ''))
      this.timer = setTimeout(() => this.flush(false), FLUSH_MS);
  }

  private flushStream(stream: 'stdout' | 'stderr', all: boolean): void {
    let text = this.pending[stream];
    const cut = all ? text.length : text.lastIndexOf('\n') + 1;
    if (cut === 0 || this.capped[stream]) return;
    this.pending[stream] = text.slice(cut);
    text = text.slice(0, cut);
    const room = this.maxBytes - this.sent[stream];
    let truncated = false;
    if (Buffer.byteLength(text) > room) {
      text = Buffer.from(text)
        .subarray(0, Math.max(0, room))
        .toString('utf8')
        .replace(/\uFFFD$/, '');
      truncated = true;
      this.capped[stream] = true;
      this.pending[stream] = '';
    }
    this.sent[stream] += Buffer.byteLength(text);
    const msg: OutputMessage = {
      id: this.id,
      stream,
      seq: this.seq++,
      lines: text.replace(/\n$/, '').split('\n'),
    };
    if (truncated) msg.truncated = true;
    if (text !== '' || truncated) this.send(msg);
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}
