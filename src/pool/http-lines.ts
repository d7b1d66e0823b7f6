/**
 * A streaming HTTP(S) request whose answer is read line by line, for etcd's
 * watch (newline-delimited JSON that never ends by itself). The deadline
 * covers the answer's headers only; after them the reader decides how long
 * a quiet stream may last. Lines are handed out in batches: everything that
 * arrived while the reader was busy comes at once, and the socket is paused
 * while that backlog is larger than a line may be, so a burst of changes
 * is read at the reader's pace, not buffered without bound.
 */
import type * as http from 'node:http';
import { HttpDeadlineError, startRequest, type HttpGetOptions } from './http-get.js';

export interface LineStreamOptions extends Pick<HttpGetOptions, 'clock' | 'timeoutMs' | 'ca' | 'headers'> {
  readonly signal: AbortSignal;
  /** The JSON document POSTed. */
  readonly json: string;
  /** A line longer than this (in characters) ends the stream with LineTooLongError. */
  readonly maxLineLength: number;
}

export interface LineStream {
  readonly status: number;
  readonly statusText: string;
  /**
   * The lines that have arrived since the last call (at least one; blank
   * lines are dropped), or undefined once the answer has ended. Rejects when
   * the stream breaks, after the lines that came before the break.
   */
  next(): Promise<string[] | undefined>;
  /** The whole answer as text, its lines joined (for an error status). */
  text(): Promise<string>;
  /** Closes the connection. */
  close(): void;
}

/** A line was longer than maxLineLength. */
export class LineTooLongError extends Error {
  constructor(maxLineLength: number) {
    super(`a line longer than ${maxLineLength} characters`);
    this.name = 'LineTooLongError';
  }
}

/** Resolves once the answer's headers are in (or rejects on failure, the signal or the deadline). */
export function openLineStream(url: URL, options: LineStreamOptions): Promise<LineStream> {
  return new Promise((resolve, reject) => {
    const deadline = new AbortController();
    const timer = options.clock.setTimeout(() => deadline.abort(new HttpDeadlineError(options.timeoutMs)), options.timeoutMs);
    const signal = AbortSignal.any([options.signal, deadline.signal]);
    const req = startRequest(url, options, signal, 'POST', options.json, (res) => {
      timer.cancel();
      resolve(new Lines(req, res, options.maxLineLength));
    });
    req.on('error', (e) => {
      timer.cancel();
      // Report the deadline, not the abort it caused (harmless once resolved).
      reject(deadline.signal.aborted ? (deadline.signal.reason as Error) : e);
    });
  });
}

class Lines implements LineStream {
  readonly status: number;
  readonly statusText: string;
  private ready: string[] = [];
  /** Characters in `ready`. */
  private readyLength = 0;
  /** The start of a line whose end has not arrived yet. */
  private partial = '';
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly req: http.ClientRequest,
    private readonly res: http.IncomingMessage,
    private readonly maxLineLength: number,
  ) {
    this.status = res.statusCode ?? 0;
    this.statusText = res.statusMessage ?? '';
    res.setEncoding('utf8');
    res.on('data', (text: string) => this.take(text));
    res.on('end', () => {
      this.push(this.partial);
      this.partial = '';
      this.ended = true;
      this.notify();
    });
    res.on('error', (e) => this.fail(e));
    res.on('close', () => {
      if (!res.complete) this.fail(new Error('connection closed before the answer was complete'));
    });
    req.on('error', (e) => this.fail(e));
  }

  async next(): Promise<string[] | undefined> {
    while (this.ready.length === 0) {
      if (this.failure !== undefined) throw this.failure;
      if (this.ended) return undefined;
      if (this.res.isPaused()) this.res.resume();
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    const lines = this.ready;
    this.ready = [];
    this.readyLength = 0;
    if (this.res.isPaused() && this.failure === undefined) this.res.resume();
    return lines;
  }

  async text(): Promise<string> {
    const lines: string[] = [];
    for (let batch = await this.next(); batch !== undefined; batch = await this.next()) lines.push(...batch);
    return lines.join('\n');
  }

  close(): void {
    this.ended = true;
    this.req.destroy();
    this.notify();
  }

  private take(text: string): void {
    let start = 0;
    for (let end = text.indexOf('\n'); end !== -1 && this.failure === undefined; end = text.indexOf('\n', start)) {
      this.push(this.partial + text.slice(start, end));
      this.partial = '';
      start = end + 1;
    }
    if (this.failure !== undefined) return;
    this.partial += text.slice(start);
    if (this.partial.length > this.maxLineLength) this.fail(new LineTooLongError(this.maxLineLength));
    else if (this.readyLength > this.maxLineLength) this.res.pause();
    this.notify();
  }

  private push(line: string): void {
    if (line.length > this.maxLineLength) {
      this.fail(new LineTooLongError(this.maxLineLength));
      return;
    }
    if (line.trim() === '') return;
    this.ready.push(line);
    this.readyLength += line.length;
  }

  private fail(error: Error): void {
    if (this.failure !== undefined || this.ended) return;
    this.failure = error;
    this.req.destroy();
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
