/**
 * ProxyFetch's verdict rules (pure): which statuses pass, what a body must
 * hold, and how a verdict is worded. PyBal's semantics.
 */

/** Body bytes read at most; the rest is not waited for. */
export const BODY_CAP_BYTES = 1024 * 1024;

export interface FetchOptions {
  readonly httpStatus: number;
  readonly expectBody: string | undefined;
  readonly expectBodyRegex: RegExp | undefined;
  readonly verifyTls: boolean;
  readonly ca: Buffer | undefined;
}

/** PyBal expects a redirect only for http_status 301, 302 or 303. */
export function expectsRedirect(httpStatus: number): boolean {
  return httpStatus > 300 && httpStatus < 304;
}

/** Whether a status passes: 2xx normally, 301-303 (and nothing else) when a redirect is expected. */
export function statusPasses(status: number, httpStatus: number): boolean {
  if (expectsRedirect(httpStatus)) return status > 300 && status < 304;
  return status >= 200 && status < 300;
}

/** Why a body does not pass, or undefined when it does. */
export function bodyProblem(body: string, options: Pick<FetchOptions, 'expectBody' | 'expectBodyRegex'>): string | undefined {
  if (options.expectBody !== undefined && !body.includes(options.expectBody)) return `body does not contain ${JSON.stringify(options.expectBody)}`;
  if (options.expectBodyRegex !== undefined && !options.expectBodyRegex.test(body)) return `body does not match /${options.expectBodyRegex.source}/`;
  return undefined;
}

/** Whether the body must be kept to decide (else it is only read to its end). */
export function needsBody(options: Pick<FetchOptions, 'expectBody' | 'expectBodyRegex'>): boolean {
  return options.expectBody !== undefined || options.expectBodyRegex !== undefined;
}

/** The reason for a status that does not pass. */
export function statusFailure(status: number, statusText: string, httpStatus: number): string {
  const expected = expectsRedirect(httpStatus) ? 'a 301, 302 or 303 redirect' : 'a 2xx status';
  return `HTTP status ${status} ${statusText}`.trimEnd() + `, expected ${expected}`;
}
