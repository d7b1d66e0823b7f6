/**
 * Logging: pino underneath, written as one human-readable line per event in
 * the spirit of PyBal's `[text ProxyFetch] WARN: ...`, or as pino's JSON.
 *
 * Components bind context with child loggers:
 *   log.child({ component: 'bgp' })
 *   log.child({ service: 'text_80', server: 'mw1001', monitor: 'ProxyFetch' })
 * and the text line shows those bindings as the bracketed "system".
 */
import { once } from 'node:events';
import { fstatSync, writeSync } from 'node:fs';
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';
import { wallNow } from './clock.js';
import { LevelLogger } from './line-logger.js';

export type Logger = PinoLogger;
export type LogFormat = 'text' | 'json';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface LogOptions {
  /** A file path, or '-' for standard error. */
  readonly file: string;
  readonly format: LogFormat;
  readonly level: LogLevel;
  /**
   * Every line to standard error too (the journal, under systemd), besides
   * the file. When standard error is the journal, each line there starts
   * with its syslog priority (`<3>` for an error), which journald reads.
   */
  readonly alsoStderr?: boolean;
}

const DISCARD: DestinationStream = { write: () => undefined };

/** syslog priorities of pino's levels, as sd-daemon(3) prefixes take them. */
const SYSLOG_PRIORITY: Record<number, number> = { 10: 7, 20: 7, 30: 6, 40: 4, 50: 3, 60: 2 };

/** Whether standard error is the journal: systemd says so in JOURNAL_STREAM (device:inode of the stream). */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  const stream = env.JOURNAL_STREAM;
  if (stream === undefined) return false;
  try {
    const s = fstatSync(2);
    return stream === `${s.dev}:${s.ino}`;
  } catch {
    return false;
  }
}

export interface LogHandle {
  readonly logger: Logger;
  /**
   * Reopens the log file (after logrotate moved it); a no-op for stderr.
   * Lines logged before the returned promise settles may still land in the
   * old file.
   */
  reopen(): Promise<void>;
  /** Writes what is buffered, in order, and closes the file; log nothing after. */
  close(): Promise<void>;
}

/** Binding keys that make up the bracketed "system", in order. */
const SYSTEM_KEYS = ['service', 'server', 'monitor', 'component'] as const;
/** Keys pino adds that the text line shows in its own way or not at all. */
const HIDDEN_KEYS = new Set<string>(['level', 'time', 'pid', 'hostname', 'msg', 'err', ...SYSTEM_KEYS]);

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'CRITICAL',
};

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** The last timestamp formatted: a burst of lines shares its millisecond (the cached wall clock). */
let lastStamp = { epochMs: NaN, text: '' };

/** Local time as `2026-11-22 05:13:52.123`, the way operators read logs. */
export function formatTimestamp(epochMs: number): string {
  if (epochMs === lastStamp.epochMs) return lastStamp.text;
  const d = new Date(epochMs);
  const text =
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  lastStamp = { epochMs, text };
  return text;
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return JSON.stringify(value);
}

/**
 * Turns one pino JSON record into a text line (with its trailing newline).
 * Pure: used by the text destination and by tests.
 */
export function formatRecord(record: Record<string, unknown>): string {
  const time = typeof record.time === 'number' ? record.time : Date.now();
  const level = LEVEL_NAMES[Number(record.level)] ?? String(record.level);
  const system = SYSTEM_KEYS.map((k) => record[k])
    .filter((v): v is string | number => typeof v === 'string' || typeof v === 'number')
    .join(' ');
  let text = typeof record.msg === 'string' ? record.msg : '';
  const extras: string[] = [];
  for (const [key, value] of Object.entries(record)) {
    if (HIDDEN_KEYS.has(key) || value === undefined) continue;
    extras.push(`${key}=${formatValue(value)}`);
  }
  if (extras.length > 0) text += (text ? ' ' : '') + extras.join(' ');
  const err = record.err as { message?: unknown; stack?: unknown } | undefined;
  if (err && typeof err === 'object') {
    const detail = typeof err.stack === 'string' ? err.stack : String(err.message ?? '');
    if (detail) text += (text ? ': ' : '') + detail;
  }
  return textLine(time, level, system, text);
}

/** The line of an event: PyBal folds continuation lines with "\n\t", so that every event starts a line. */
function textLine(epochMs: number, level: string, system: string, text: string): string {
  if (text.includes('\n')) text = text.replace(/\r?\n/g, '\n\t');
  return `${formatTimestamp(epochMs)} [${system || 'pybal'}] ${level}: ${text}\n`;
}

/** What a logger's bindings (a pino child's) put on its text lines: the system and the other fields. */
interface BoundText {
  /** pino's own string of the bindings these were made from: a logger re-bound since is read again. */
  readonly chindings: unknown;
  readonly bindings: Readonly<Record<string, unknown>>;
  readonly system: readonly unknown[];
  readonly extras: string;
}

const boundTexts = new WeakMap<object, BoundText>();

function boundText(logger: PinoLogger): BoundText {
  const chindings = (logger as unknown as Record<symbol, unknown>)[pino.symbols.chindingsSym];
  const kept = boundTexts.get(logger);
  if (kept !== undefined && kept.chindings === chindings) return kept;
  // As pino's record of a line has them: read back from its JSON (a key bound twice keeps its first place and last value).
  const bindings = logger.bindings();
  const extras: string[] = [];
  for (const [key, value] of Object.entries(bindings)) if (!HIDDEN_KEYS.has(key)) extras.push(`${key}=${formatValue(value)}`);
  const made = { chindings, bindings, system: SYSTEM_KEYS.map((k) => bindings[k]), extras: extras.join(' ') };
  boundTexts.set(logger, made);
  return made;
}

/** A field value whose text is the same whether read from the call or from pino's JSON of it. */
function plainValue(value: unknown): boolean {
  return typeof value === 'string' || typeof value === 'boolean' || value === null || (typeof value === 'number' && Number.isFinite(value));
}

/** A key an object orders before its other keys (an array index): "404", not "4x". */
function isIndexLike(key: string): boolean {
  const c = key.charCodeAt(0);
  return c >= 48 && c <= 57 && /^(0|[1-9]\d*)$/.test(key);
}

/** Keys of a line's fields that pino or its record treat apart: such a line goes the long way. */
const LONG_WAY_KEYS = new Set<string>(['err', 'level', 'time', 'pid', 'hostname', 'msg']);

/**
 * The text line of a log call, made from the call itself: exactly the line
 * formatRecord makes of the record pino writes for it, without the JSON and
 * its parse. Undefined for a call this does not take (an error, an object or
 * array value, a key also bound, a format argument): it goes through pino.
 * At a cold start of 10,000 servers the daemon writes some 24,000 lines; the
 * JSON and its parse made 40 % of what the main thread allocated then.
 */
export function quickLine(logger: PinoLogger, args: readonly unknown[], level: number): string | undefined {
  const first = args[0];
  let fields: Readonly<Record<string, unknown>> | undefined;
  let msg: unknown;
  if (args.length === 1 && typeof first === 'string') msg = first;
  else if ((args.length === 1 || args.length === 2) && typeof first === 'object' && first !== null && Object.getPrototypeOf(first) === Object.prototype) {
    fields = first as Readonly<Record<string, unknown>>;
    msg = args[1];
    if (msg !== undefined && typeof msg !== 'string') return undefined;
  } else return undefined;
  const bound = boundText(logger);
  let system = bound.system;
  let extras = bound.extras;
  if (fields !== undefined) {
    let own = '';
    let systemOwn: unknown[] | undefined;
    for (const key in fields) {
      if (!Object.hasOwn(fields, key)) continue;
      const value = fields[key];
      if (value === undefined) continue;
      // A key pino's record also has, or one that would take another place in it (an index: first).
      if (LONG_WAY_KEYS.has(key) || Object.hasOwn(bound.bindings, key) || !plainValue(value) || isIndexLike(key)) return undefined;
      const at = (SYSTEM_KEYS as readonly string[]).indexOf(key);
      if (at >= 0) (systemOwn ??= [...bound.system])[at] = value;
      else own += (own ? ' ' : '') + `${key}=${formatValue(value)}`;
    }
    if (systemOwn !== undefined) system = systemOwn;
    if (own) extras += (extras ? ' ' : '') + own;
  }
  let names = '';
  for (const v of system) if (typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v))) names += (names ? ' ' : '') + v;
  let text = typeof msg === 'string' ? msg : '';
  if (extras) text += (text ? ' ' : '') + extras;
  return textLine(wallNow(), LEVEL_NAMES[level] ?? String(level), names, text);
}

/** A pino destination that rewrites each JSON record as a text line, also handed to `copy` when given. */
function textStream(out: DestinationStream, copy?: (line: string, level: number) => void): DestinationStream {
  return {
    write(chunk: string): void {
      // pino may hand over several records at once.
      for (const line of chunk.split('\n')) {
        if (!line) continue;
        let record: Record<string, unknown>;
        try {
          record = JSON.parse(line) as Record<string, unknown>;
        } catch {
          out.write(line + '\n');
          continue;
        }
        const text = formatRecord(record);
        out.write(text);
        copy?.(text, typeof record.level === 'number' ? record.level : 30);
      }
    },
  };
}

/** pino's `time` field, as pino.stdTimeFunctions.epochTime writes it. */
const logTimestamp = (): string => `,"time":${wallNow()}`;

function pinoOptions(level: LogLevel, hooks?: pino.LoggerOptions['hooks']): pino.LoggerOptions {
  return {
    level,
    base: { pid: process.pid },
    // The cached wall clock (runtime/clock.ts): a burst of lines reads the time once.
    timestamp: logTimestamp,
    serializers: { err: pino.stdSerializers.err },
    ...(hooks === undefined ? {} : { hooks }),
  };
}

/**
 * The text format's log calls: those quickLine takes are written as text
 * straight away, to `out` and `copy` as textStream writes them; pino writes
 * the others, to textStream. One destination, in the order of the calls.
 */
function textHooks(out: DestinationStream, copy?: (line: string, level: number) => void): pino.LoggerOptions['hooks'] {
  return {
    logMethod(this: PinoLogger, args: Parameters<pino.LogFn>, method: pino.LogFn, level: number): void {
      const line = quickLine(this, args, level);
      if (line === undefined) return method.apply(this, args);
      out.write(line);
      copy?.(line, level);
    },
  };
}

/** Characters a TurnBatch gathers before it hands them over without waiting for the turn's end. */
const BATCH_CHARS = 8192;

/**
 * Lines for a file destination (pino's, sonic-boom), handed over as one
 * string a turn of the event loop, or sooner once BATCH_CHARS wait. While a
 * write is in flight sonic-boom appends each line to the string it gathers
 * and measures that string's UTF-8 length, which copies it whole: up to 16 KB
 * for every line, some 9 KB of garbage a line on average (a cold start of
 * 10,000 servers writes 24,000 lines). Order is kept: every line of the
 * logger goes through here. flush() before the destination is reopened or ended.
 */
class TurnBatch implements DestinationStream {
  private pending: string[] = [];
  private chars = 0;
  private scheduled = false;
  private readonly flushSoon = (): void => {
    this.scheduled = false;
    this.flush();
  };

  constructor(private readonly dest: DestinationStream) {}

  write(line: string): void {
    this.pending.push(line);
    this.chars += line.length;
    if (this.chars >= BATCH_CHARS) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushSoon);
    }
  }

  flush(): void {
    if (this.pending.length === 0) return;
    const text = this.pending.length === 1 ? this.pending[0]! : this.pending.join('');
    this.pending = [];
    this.chars = 0;
    this.dest.write(text);
  }
}

/** Opens the log destination and returns a logger with its reopen and close hooks. */
export async function createLogger(options: LogOptions): Promise<LogHandle> {
  const toStderr = options.file === '-';
  const dest = pino.destination({
    dest: toStderr ? 2 : options.file,
    sync: toStderr,
    mkdir: !toStderr,
    append: true,
  });
  if (!toStderr) await once(dest, 'ready');
  // A file's lines go to it a batch a turn; standard error's as they come (sync).
  const batch = toStderr ? undefined : new TurnBatch(dest);
  const file: DestinationStream = batch ?? dest;
  const journal = stderrIsJournal();
  const prefix = (level: number): string => (journal ? `<${SYSLOG_PRIORITY[level] ?? 6}>` : '');
  // Text lines for the journal carry their priority: written here, line by line, instead of by dest.
  const toJournal = toStderr && journal;
  const copyToStderr =
    (options.alsoStderr === true && !toStderr) || toJournal ? (line: string, level: number) => void writeSync(2, prefix(level) + line) : undefined;
  const textOut = toJournal ? DISCARD : file;
  const stream =
    options.format === 'json'
      ? options.alsoStderr === true && !toStderr
        ? teeJson(file, (line) => void writeSync(2, line))
        : file
      : textStream(textOut, copyToStderr);
  const logger = pino(pinoOptions(options.level, options.format === 'text' ? textHooks(textOut, copyToStderr) : undefined), stream);
  return {
    logger,
    reopen: async () => {
      if (toStderr) return;
      const ready = once(dest, 'ready');
      batch?.flush();
      dest.reopen();
      await ready;
    },
    // end() waits for the write in flight; flushSync() would not, and would
    // put newer lines in the file before older ones.
    close: async () => {
      if (toStderr) return;
      const closed = once(dest, 'close');
      batch?.flush();
      dest.end();
      await closed;
    },
  };
}

export interface MemoryLog {
  readonly logger: Logger;
  /** Text lines written so far, without timestamps. */
  lines(): string[];
  /** Raw records written so far. */
  records(): Record<string, unknown>[];
}

/** A logger that keeps its records in memory, for tests. */
export function createMemoryLogger(level: LogLevel = 'debug'): MemoryLog {
  const records: Record<string, unknown>[] = [];
  const logger = pino(pinoOptions(level), {
    write(chunk: string): void {
      for (const line of chunk.split('\n')) if (line) records.push(JSON.parse(line) as Record<string, unknown>);
    },
  });
  return {
    logger,
    records: () => [...records],
    lines: () => records.map((r) => formatRecord(r).replace(/^\S+ \S+ /, '').trimEnd()),
  };
}

/**
 * The logging a component needs from its logger: a line at a level, with
 * fields or without, and whether a level is written at all (to skip
 * building a line nobody reads). A pino Logger is one; so is bindLogger's.
 */
export interface LineLogger {
  debug(msgOrFields: string | Readonly<Record<string, unknown>>, msg?: string): void;
  info(msgOrFields: string | Readonly<Record<string, unknown>>, msg?: string): void;
  warn(msgOrFields: string | Readonly<Record<string, unknown>>, msg?: string): void;
  error(msgOrFields: string | Readonly<Record<string, unknown>>, msg?: string): void;
  isLevelEnabled(level: LogLevel): boolean;
}

type LineLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * `logger` with `bindings` added to each line: the same records as
 * logger.child(bindings) writes, for a fraction of its memory. A pino child
 * keeps its bindings as a string built by concatenation (a tree of strings)
 * beside a logger object, about 250 bytes; one per monitor is 2.5 MB at
 * 10,000 servers, for loggers that write a line on a state change. This
 * keeps the bindings object and serialises it when a line is written.
 * Levels are the parent's, read at each line.
 */
export function bindLogger(logger: Logger, bindings: Readonly<Record<string, unknown>>): LineLogger {
  return new BoundLogger(logger, bindings);
}

class BoundLogger extends LevelLogger {
  constructor(
    private readonly parent: Logger,
    private readonly bindings: Readonly<Record<string, unknown>>,
  ) {
    super();
  }

  isLevelEnabled(level: LogLevel): boolean {
    return this.parent.isLevelEnabled(level);
  }

  protected write(level: LineLevel, msgOrFields: string | Readonly<Record<string, unknown>>, msg: string | undefined): void {
    const parent = this.parent;
    if (!parent.isLevelEnabled(level)) return;
    // Bindings first, then the line's own fields: the order a child writes them in.
    if (typeof msgOrFields === 'string') parent[level](this.bindings, msgOrFields);
    else parent[level]({ ...this.bindings, ...msgOrFields }, msg);
  }
}

/** A logger that discards everything. */
export function createSilentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** JSON records to `out` and, as they are, to `copy`. */
function teeJson(out: DestinationStream, copy: (line: string) => void): DestinationStream {
  return {
    write(chunk: string): void {
      out.write(chunk);
      copy(chunk);
    },
  };
}

