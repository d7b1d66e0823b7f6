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

/** Local time as `2026-11-22 05:13:52.123`, the way operators read logs. */
export function formatTimestamp(epochMs: number): string {
  const d = new Date(epochMs);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
  );
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
  // PyBal folds continuation lines with "\n\t" so that every event starts a line.
  text = text.replace(/\r?\n/g, '\n\t');
  return `${formatTimestamp(time)} [${system || 'pybal'}] ${level}: ${text}\n`;
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

function pinoOptions(level: LogLevel): pino.LoggerOptions {
  return {
    level,
    base: { pid: process.pid },
    // The cached wall clock (runtime/clock.ts): a burst of lines reads the time once.
    timestamp: logTimestamp,
    serializers: { err: pino.stdSerializers.err },
  };
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
  const journal = stderrIsJournal();
  const prefix = (level: number): string => (journal ? `<${SYSLOG_PRIORITY[level] ?? 6}>` : '');
  // Text lines for the journal carry their priority: written here, line by line, instead of by dest.
  const toJournal = toStderr && journal;
  const copyToStderr =
    (options.alsoStderr === true && !toStderr) || toJournal ? (line: string, level: number) => void writeSync(2, prefix(level) + line) : undefined;
  const stream =
    options.format === 'json'
      ? options.alsoStderr === true && !toStderr
        ? teeJson(dest, (line) => void writeSync(2, line))
        : dest
      : textStream(toJournal ? DISCARD : dest, copyToStderr);
  const logger = pino(pinoOptions(options.level), stream);
  return {
    logger,
    reopen: async () => {
      if (toStderr) return;
      const ready = once(dest, 'ready');
      dest.reopen();
      await ready;
    },
    // end() waits for the write in flight; flushSync() would not, and would
    // put newer lines in the file before older ones.
    close: async () => {
      if (toStderr) return;
      const closed = once(dest, 'close');
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

