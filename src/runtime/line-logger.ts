/**
 * The level methods of a LineLogger, each passing its line to write(): what
 * a logger that binds fields (logger.ts) and one that sends its records to
 * another thread (monitors/check-worker.ts) share. No pino here: the checks
 * thread loads this without it.
 */
import type { LineLogger, LogLevel } from './logger.js';

type Fields = Readonly<Record<string, unknown>>;

export abstract class LevelLogger implements LineLogger {
  debug(msgOrFields: string | Fields, msg?: string): void {
    this.write('debug', msgOrFields, msg);
  }
  info(msgOrFields: string | Fields, msg?: string): void {
    this.write('info', msgOrFields, msg);
  }
  warn(msgOrFields: string | Fields, msg?: string): void {
    this.write('warn', msgOrFields, msg);
  }
  error(msgOrFields: string | Fields, msg?: string): void {
    this.write('error', msgOrFields, msg);
  }
  abstract isLevelEnabled(level: LogLevel): boolean;
  protected abstract write(level: LogLevel, msgOrFields: string | Fields, msg: string | undefined): void;
}
