/**
 * Problems found in files operators write (pybal.conf, pool files): each one
 * names the file, the line and the key, and they are collected rather than
 * thrown one at a time.
 */

export interface Problem {
  readonly file: string;
  /** 1-based line number, when the problem belongs to one line. */
  readonly line?: number;
  /** The key as the operator spelled it, when the problem belongs to one key. */
  readonly key?: string;
  readonly message: string;
}

/** `file:line: key: message`, the form editors and grep understand. */
export function formatProblem(problem: Problem): string {
  const where = problem.line === undefined ? problem.file : `${problem.file}:${problem.line}`;
  return problem.key === undefined ? `${where}: ${problem.message}` : `${where}: ${problem.key}: ${problem.message}`;
}

/** Thrown when a file has one or more problems; carries all of them. */
export class ProblemsError extends Error {
  readonly problems: readonly Problem[];

  constructor(problems: readonly Problem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ProblemsError';
    this.problems = problems;
  }
}

const FILE_ERROR_REASONS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'is a directory',
  ENOTDIR: 'a parent of it is not a directory',
  ELOOP: 'too many levels of symbolic links',
  EMFILE: 'too many open files',
};

/** Why a file could not be opened or read, in words an operator can act on (`no such file`). */
export function fileErrorReason(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  return (typeof code === 'string' ? FILE_ERROR_REASONS[code] : undefined) ?? errorMessage(error);
}

/** The message of anything thrown, for logs. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
